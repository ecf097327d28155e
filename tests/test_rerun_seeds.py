"""benchmarks/rerun_seeds.py: every input is checked before the first training starts."""

from __future__ import annotations

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
