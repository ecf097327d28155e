"""benchmarks/rerun_seeds.py: every input is checked before the first training starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark_scripts import load_benchmark_script

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cpu_default_round13"


def _main(args: list[str], capsys, monkeypatch) -> str:
    script = load_benchmark_script("rerun_seeds")

    def no_training(*args, **kwargs):
        raise AssertionError("trained before every input was checked")

    monkeypatch.setattr(script, "rerun", no_training)
    with pytest.raises(SystemExit) as stopped:
        script.main(args)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_a_seed_without_a_committed_recipe_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    """Seed 43 has a recipe, seed 45 none: nothing runs, not even seed 43's training."""
    err = _main(["--results", str(RESULTS), "--seeds", "43", "45", "--out", str(tmp_path / "runs"),
                 "--json-name", "seed{seed}_x.json"], capsys, monkeypatch)
    assert "cpu_default_round13/seed45/recipe.yaml: no committed recipe for seed 45" in err
    assert not (tmp_path / "runs").exists()


def test_an_existing_run_directory_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "seed44").mkdir()
    err = _main(["--results", str(RESULTS), "--seeds", "43", "44", "--out", str(tmp_path),
                 "--json-name", "seed{seed}_x.json"], capsys, monkeypatch)
    assert f"{tmp_path / 'seed44'} exists; each rerun must write a fresh directory" in err
    assert not (tmp_path / "seed43").exists()


@pytest.mark.parametrize("name", ["seed_x.json", "../seed{seed}.json", "sub/seed{seed}.json"])
def test_the_record_name_must_be_a_file_name_holding_the_seed(tmp_path, capsys, monkeypatch, name):
    """Names from the command line never become paths outside ``<results>/reproduction/``."""
    err = _main(["--results", str(RESULTS), "--seeds", "43", "--out", str(tmp_path), "--json-name", name], capsys, monkeypatch)
    assert f"--json-name {name!r} must be a file name holding {{seed}}" in err


ROUND21 = RESULTS.parent / "cpu_default_round21"


def _finished_rerun(out: Path, results: Path, seed: int, committed_seed: int | None = None) -> None:
    """A rerun as ``rerun`` leaves it (round 21's committed files for ``seed``), and the committed recipe beside it."""
    source = ROUND21 / f"seed{seed}"
    (out / f"seed{seed}" / "eval").mkdir(parents=True)
    shutil.copyfile(source / "fingpt_run.json", out / f"seed{seed}" / "fingpt_run.json")
    shutil.copyfile(source / "recipe.yaml", out / f"seed{seed}" / "recipe.yaml")
    shutil.copyfile(source / "results.json", out / f"seed{seed}" / "eval" / "results.json")
    (results / f"seed{seed}").mkdir(parents=True)
    shutil.copyfile(ROUND21 / f"seed{committed_seed or seed}" / "recipe.yaml", results / f"seed{seed}" / "recipe.yaml")


def test_collect_lays_reruns_out_as_select_cpu_recipe_test_does(tmp_path):
    """The per-seed figures and spread ``--collect`` writes are the ones ``select_cpu_recipe.py test`` wrote for the
    same runs (round 21's committed summary)."""
    out, results = tmp_path / "runs", tmp_path / "results"
    for seed in (42, 43, 44):
        _finished_rerun(out, results, seed)
    script = load_benchmark_script("rerun_seeds")
    assert script.main(["--results", str(results), "--seeds", "42", "43", "44", "--out", str(out), "--collect"]) == 0
    summary, committed = (json.loads((d / "summary.json").read_text()) for d in (results, ROUND21))
    assert summary["test_f1_weighted"] == committed["test_f1_weighted"]
    assert summary["test_f1_weighted_over_seeds"] == committed["test_f1_weighted_over_seeds"]
    assert summary["command"].endswith(f"--out {out} --collect") and summary["seeds"] == [42, 43, 44]
    for seed in (42, 43, 44):
        for name in ("results.json", "fingpt_run.json"):
            assert (results / f"seed{seed}" / name).read_bytes() == (ROUND21 / f"seed{seed}" / name).read_bytes()


def test_collect_refuses_an_unfinished_run_or_another_recipe(tmp_path):
    script = load_benchmark_script("rerun_seeds")
    out, results = tmp_path / "runs", tmp_path / "results"
    _finished_rerun(out, results, 43, committed_seed=44)  # seed 44's recipe committed where seed 43 ran
    with pytest.raises(SystemExit, match="seed43/recipe.yaml is not .*seed43/recipe.yaml's recipe"):
        script.main(["--results", str(results), "--seeds", "43", "--out", str(out), "--collect"])
    info = out / "seed43" / "fingpt_run.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "status": "running"}))
    with pytest.raises(SystemExit, match="is not a finished rerun"):
        script.main(["--results", str(results), "--seeds", "43", "--out", str(out), "--collect"])
    assert not (results / "summary.json").exists() and not (results / "seed43" / "results.json").exists()
