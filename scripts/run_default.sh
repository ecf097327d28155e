#!/usr/bin/env bash
# The main job on the embedded default: set up, show the data, train SmolLM2-135M-Instruct with
# LoRA on FinGPT's mixture (CPU), evaluate it on the four benchmarks, compare with published rows.
# Everything runs offline on the local data mirror. OUT overrides the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export FINGPT_DATA_DIR=${FINGPT_DATA_DIR:-$(cd .. && pwd)/shared/fingpt-data}
OUT=${OUT:-outputs/smollm2-135m-fingpt-lora}
BIN=.venv/bin

$BIN/fingpt-hf data stats
$BIN/fingpt-hf model prepare-default
$BIN/python recipes/sft.py --config recipes/smollm2-135m/sft_lora.yaml --output_dir "$OUT"
$BIN/python recipes/evaluate.py --config recipes/smollm2-135m/eval.yaml --adapter "$OUT" --output_dir "$OUT/eval"
$BIN/fingpt-hf compare "$OUT/eval" benchmarks/results/tfidf_logreg
