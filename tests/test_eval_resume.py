"""An interrupted evaluation keeps finished data sets; the rerun skips them and finishes the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fingpt_hf.evaluation.results import load_results
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent


def eval_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fingpt_hf.cli", "eval", *args]


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(eval_command(*args), capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_interrupted_run_resumes(default_model_path, tmp_path):
    out = tmp_path / "eval"
    args = ("--model", str(default_model_path), "--datasets", "fpb,tfns", "--limit", "16", "--batch-size", "4",
            "--output-dir", str(out))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(eval_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    fpb_result = out / "fpb" / "result.json"
    deadline = time.monotonic() + 600
    while not fpb_result.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # a hard stop: no cleanup code runs
    proc.communicate(timeout=60)
    assert fpb_result.exists(), "the first data set never finished"
    assert not (out / "tfns" / "result.json").exists(), "tfns finished before the interruption"
    assert list(load_results(out)["results"]) == ["fpb"]
    assert not list(out.rglob("*.tmp")) or all(p.name.startswith(".") for p in out.rglob("*.tmp"))
    before = (fpb_result.stat().st_mtime_ns, fpb_result.read_bytes(),
              (out / "fpb" / "predictions.jsonl").read_bytes())

    rerun = run(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Skipping finished data set(s)" in rerun.stdout and "fpb" in rerun.stdout
    assert "fpb (score)" not in rerun.stderr  # no progress bar: fpb was not evaluated again
    after = (fpb_result.stat().st_mtime_ns, fpb_result.read_bytes(), (out / "fpb" / "predictions.jsonl").read_bytes())
    assert after == before
    aggregate = load_results(out)
    assert list(aggregate["results"]) == ["fpb", "tfns"]
    assert aggregate["results"]["tfns"]["num_rows"] == 16
    assert "| tfns |" in (out / "results.md").read_text() and "| fpb |" in (out / "results.md").read_text()

    # A different evaluation into the same directory is refused, before any model is loaded ...
    other = run(*args[:-2], "--mode", "generate", "--output-dir", str(out))
    assert other.returncode == 2
    assert str(out / "fpb" / "result.json") in other.stderr and "--overwrite" in other.stderr
    assert "mode: 'score' -> 'generate'" in other.stderr


def test_overwrite_replaces_a_different_result(default_model_path, tmp_path):
    model_dir = save_tiny_llama(tmp_path / "tiny", default_model_path, pad_token=True)
    out = tmp_path / "eval"
    base = ("--model", str(model_dir), "--datasets", "fiqa", "--dtype", "fp32", "--output-dir", str(out))
    assert run(*base, "--limit", "4").returncode == 0
    refused = run(*base, "--limit", "6")
    assert refused.returncode == 2 and "limit: 4 -> 6" in refused.stderr
    assert load_results(out)["results"]["fiqa"]["num_rows"] == 4
    replaced = run(*base, "--limit", "6", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    result = load_results(out)["results"]["fiqa"]
    assert result["num_rows"] == 6 and result["eval_config"]["limit"] == 6
    assert len((out / "fiqa" / "predictions.jsonl").read_text().splitlines()) == 6
