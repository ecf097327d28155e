#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite offline on the local data mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/check_versions.py
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export FINGPT_DATA_DIR=${FINGPT_DATA_DIR:-$(cd .. && pwd)/shared/fingpt-data}
exec .venv/bin/python -m pytest -n 2 --durations=15 "$@"
