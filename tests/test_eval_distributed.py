"""Data-parallel evaluation with an existing launcher: ``torchrun --nproc_per_node 2 -m fingpt_hf.cli
eval ...`` (CPU; ``accelerate launch -m`` on GPUs) splits the rows across two real processes,
gathers the answers, and writes exactly the files one process writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("dp") / "llama", default_model_path, pad_token=True,
                           max_position_embeddings=1024)


def evaluate(command: list[str], model: Path, out: Path, mode: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([*command, "-m", "fingpt_hf.cli", "eval", "--model", str(model), "--datasets", "fpb,tfns",
                           "--limit", "21", "--batch-size", "4", "--dtype", "fp32", "--mode", mode,
                           "--max-new-tokens", "3", "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["score", "generate"])
def test_two_processes_give_the_one_process_results(mode, tiny_model, tmp_path):
    one = evaluate([sys.executable], tiny_model, tmp_path / "one", mode)
    port = str(29700 + os.getpid() % 200 + (mode == "generate"))
    two = evaluate([str(TORCHRUN), "--nproc_per_node", "2", "--master_port", port], tiny_model, tmp_path / "two", mode)
    for name in ("fpb", "tfns"):
        a, b = one["results"][name], two["results"][name]
        assert b["processes"] == 2 and "processes" not in a
        assert a["metrics"] == b["metrics"] and a["num_rows"] == b["num_rows"] == 21
        rows_a = [json.loads(line) for line in (tmp_path / "one" / name / "predictions.jsonl").open()]
        rows_b = [json.loads(line) for line in (tmp_path / "two" / name / "predictions.jsonl").open()]
        assert [r["index"] for r in rows_b] == list(range(21))
        for ra, rb in zip(rows_a, rows_b):
            assert (ra["text"], ra["gold"], ra["prediction"], ra["raw_answer"]) == \
                   (rb["text"], rb["gold"], rb["prediction"], rb["raw_answer"])
            if mode == "score":  # other batch mates, other padding: equal up to float rounding
                for label, value in ra["log_likelihoods"].items():
                    assert rb["log_likelihoods"][label] == pytest.approx(value, abs=1e-4)
