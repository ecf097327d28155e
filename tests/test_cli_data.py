"""`fingpt-hf data` as a user runs it: a real process, offline, on the real mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import pytest

from fingpt_hf.data.stats import format_stats


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "data", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def stats_json(data_dir) -> dict:
    result = run_cli("stats", "--json", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stats_text_shows_counts_mixture_and_leakage(data_dir, stats_json):
    result = run_cli("stats", env_extra={"FINGPT_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.strip() == format_stats(stats_json)
    for line in ("fpb (Financial PhraseBank (sentences_50agree))",
                 "  train: 3634 rows  negative 459 (12.6%)  neutral 2150 (59.2%)  positive 1025 (28.2%)",
                 "  test: 1212 rows  negative 145 (12.0%)  neutral 729 (60.1%)  positive 338 (27.9%)",
                 "  train: 938 rows", "  test: 275 rows", "  train: 9543 rows", "  test: 2388 rows",
                 "  train: not in mirror",
                 "  test: 4047 rows  negative 808 (20.0%)  neutral 1671 (41.3%)  positive 1568 (38.7%)",
                 "  fpb train x6: 3634 -> 21804 rows", "  fiqa train x21: 938 -> 19698 rows",
                 "  tfns train x2: 9543 -> 19086 rows", "  left out nwgi: train split not in mirror",
                 "  total: 60588 rows"):
        assert line in out, line
    assert "fpb test: 5/1212 rows also in training data (fpb train 5, fiqa train 0, tfns train 0); " \
           "2 duplicate rows within the test set" in out


def test_stats_json_numbers(stats_json):
    bench = stats_json["benchmarks"]
    assert {n: (bench[n]["train"].get("rows"), bench[n]["test"]["rows"]) for n in bench} == {
        "fpb": (3634, 1212), "fiqa": (938, 275), "tfns": (9543, 2388), "nwgi": (None, 4047)}
    assert bench["nwgi"]["train"]["missing"] == "not in mirror"
    assert stats_json["mixture"]["total_rows"] == 60588
    leaks = {t["name"]: t["leaked_rows"] for t in stats_json["leakage"]["tests"]}
    assert leaks == {"fpb": 5, "fiqa": 36, "tfns": 2, "nwgi": 0}


def test_bad_data_dir_is_one_line_and_exit_2(tmp_path):
    result = run_cli("stats", "--data-dir", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("fingpt-hf: error: --data-dir points to")


def test_build_default_arrow(tmp_path, data_dir):
    out = tmp_path / "mix"
    result = run_cli("build", "--output", str(out), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "left out nwgi train (x1)" in result.stdout
    assert "total: 60588 rows" in result.stdout
    assert "fpb test: 5/1212 rows also in training data" in result.stdout
    loaded = datasets.load_from_disk(str(out))
    assert len(loaded) == 60588
    report = json.loads((out / "mixture_report.json").read_text())
    assert report["total_rows"] == 60588 and report["skipped"][0]["name"] == "nwgi"
    assert report["content_hash"].startswith("sha256:")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mix")]  # no temp folder left
    again = run_cli("build", "--output", str(out), "--data-dir", str(data_dir))
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr


def test_build_parquet_with_weights(tmp_path, data_dir):
    out = tmp_path / "small"
    result = run_cli("build", "--output", str(out), "--format", "parquet", "--weights", "fpb=0.5,fiqa=2",
                     "--seed", "3", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    table = datasets.load_dataset("parquet", data_files=str(out / "train.parquet"),
                                  cache_dir=str(tmp_path / "cache"))["train"]
    assert len(table) == 1817 + 1876
    report = json.loads((out / "mixture_report.json").read_text())
    assert report["seed"] == 3 and report["skipped"] == []
    bad = run_cli("build", "--output", str(tmp_path / "x"), "--weights", "fpb=lots", "--data-dir", str(data_dir))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--weights" in bad.stderr
