"""benchmarks/reproduce_default.py: the record of a main-command run is read from the layout the main
command writes (OUT/fingpt_run.json, OUT/eval/results.json), and bad input stops it before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark_scripts import load_benchmark_script

SEED42 = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cpu_default_round7" / "seed42"


def _main_command_output(tmp_path: Path) -> Path:
    """Round 7's committed seed 42 files, laid out as `OUT=... bash scripts/run_default.sh` writes them."""
    out = tmp_path / "out"
    (out / "eval").mkdir(parents=True)
    shutil.copy(SEED42 / "fingpt_run.json", out / "fingpt_run.json")
    shutil.copy(SEED42 / "results.json", out / "eval" / "results.json")
    return out


def test_record_holds_the_runs_hash_time_cpu_and_results(tmp_path):
    script = load_benchmark_script("reproduce_default")
    out = _main_command_output(tmp_path)
    record_path = tmp_path / "record.json"
    assert script.main(["--out", str(out), "--json", str(record_path), "--recorded-wall-seconds", "1337.6"]) == 0
    record = json.loads(record_path.read_text())
    run = json.loads((SEED42 / "fingpt_run.json").read_text())
    main_command = json.loads((SEED42.parent / "reproduction" / "seed42_main_command.json").read_text())
    assert record["mixture_content_hash"] == run["mixture"]["content_hash"] == main_command["mixture_content_hash"]
    selection = json.loads((SEED42.parents[1] / "cpu_recipe_selection" / "selection_round7.json").read_text())
    assert record["train_runtime"] == next(r["train_runtime_seconds"] for r in selection["runs"] if r["seed"] == 42) == 1180.8
    assert record["wall_seconds_whole_command"] == 1338
    assert record["cpu"]["amx"] and record["command"] == f"OUT={out} bash scripts/run_default.sh"
    assert record["results"] == json.loads((SEED42 / "results.json").read_text())
    assert f"OUT={out}" in record["what"]


def test_unfinished_run_and_reused_output_directory_are_refused(tmp_path, capsys):
    script = load_benchmark_script("reproduce_default")
    out = _main_command_output(tmp_path)
    run = json.loads((out / "fingpt_run.json").read_text())
    (out / "fingpt_run.json").write_text(json.dumps({**run, "status": "running"}))
    with pytest.raises(SystemExit, match="no completed training run"):
        script.main(["--out", str(out), "--json", str(tmp_path / "r.json"), "--recorded-wall-seconds", "1"])
    with pytest.raises(SystemExit):  # running the main command into a directory that exists would mix two runs
        script.main(["--out", str(out), "--json", str(tmp_path / "r.json")])
    assert "must write a fresh directory" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
