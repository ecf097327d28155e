"""The TF-IDF + logistic-regression baseline, run for real on the data mirror."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fingpt_hf.evaluation.results import load_results
from fingpt_hf.metrics.scores import compute_sentiment_metrics

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "tfidf_baseline.py"
COMMITTED = REPO / "benchmarks" / "results" / "tfidf_logreg" / "results.json"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def test_small_run_writes_standard_output_dir(tmp_path, data_dir):
    out = tmp_path / "run"
    proc = _run("--limit", "150", "--output-dir", str(out), "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert "nwgi train skipped" in proc.stderr  # the mirror has no NWGI train split

    aggregate = load_results(out)  # validates schema version and keys
    assert list(aggregate["results"]) == ["fpb", "fiqa", "tfns", "nwgi"]
    assert aggregate["run"]["train"]["datasets"] == ["fpb", "fiqa", "tfns"]
    assert aggregate["run"]["train"]["rows"] == 450
    assert "Model: `tfidf-logreg`. Metrics x100." in (out / "results.md").read_text()  # no prompt style: none used
    for name, result in aggregate["results"].items():
        assert result["model"]["name_or_path"] == "tfidf-logreg"
        assert result["num_rows"] == 150
        assert json.loads((out / name / "result.json").read_text()) == result
        records = [json.loads(line) for line in (out / name / "predictions.jsonl").read_text().splitlines()]
        assert [r["index"] for r in records] == list(range(150))
        recomputed = compute_sentiment_metrics([r["prediction"] for r in records], [r["gold"] for r in records])
        assert recomputed == result["metrics"]
        # The printed table shows the same numbers, x100.
        assert f"{100 * result['metrics']['f1_weighted']:.2f}" in proc.stdout


def _module():
    spec = importlib.util.spec_from_file_location("tfidf_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv", [["--datasets", "fpb,nope"], ["--train", ""], ["--limit", "0"]])
def test_bad_option_exits_2(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        _module().main([*argv, "--output-dir", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_committed_results_reproduce(tmp_path, data_dir):
    """Full training data, FiQA test: the committed results.json is what the script produces with the
    C it chose on validation (the choice itself is checked in test_readme_figures)."""
    aggregate = load_results(COMMITTED)
    committed, chosen = aggregate["results"], aggregate["run"]["classifier"]["C"]
    out = tmp_path / "full"
    proc = _run("--datasets", "fiqa", "--c", str(chosen), "--no-predictions", "--output-dir", str(out),
                "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert not (out / "fiqa" / "predictions.jsonl").exists()
    fresh = load_results(out)["results"]["fiqa"]
    assert fresh["num_rows"] == committed["fiqa"]["num_rows"] == 275
    assert fresh["metrics"] == committed["fiqa"]["metrics"]


def test_c_is_chosen_on_validation_rows_only(tmp_path, data_dir):
    """Several --c values: each is fit without the validation rows and scored on them; the record keeps
    every tried value, and the best mean is the C the test sets are then scored with."""
    out = tmp_path / "run"
    proc = _run("--limit", "150", "--c", "0.1,10", "--datasets", "fpb", "--no-predictions", "--output-dir", str(out),
                "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    run = load_results(out)["run"]
    tried = run["c_selection"]["tried"]
    assert set(tried) == {"0.1", "10.0"} and set(tried["10.0"]) == {"fpb", "fiqa", "tfns", "mean"}
    assert run["classifier"]["C"] == max((0.1, 10.0), key=lambda c: tried[str(c)]["mean"])
    assert "C=0.1: validation weighted F1" in proc.stderr
