"""The figures the README states are those of the committed JSON files under benchmarks/results/
(each written by the command the README gives), so the docs cannot drift from the measurements.

Each check reads the JSON itself and finds the README's table row or sentence for it; nothing
here renders the README from the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
RESULTS = REPO / "benchmarks" / "results"


def table_rows(marker: str) -> list[list[str]]:
    """The body rows of the first Markdown table between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    assert f"<!-- {marker} -->" in README, f"README has no <!-- {marker} --> block"
    block = README.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def test_recipe_selection_table_is_the_record():
    record = json.loads((RESULTS / "cpu_recipe_selection" / "selection.json").read_text())
    rows = table_rows("cpu-recipe-selection")
    assert len(rows) == len(record["runs"]) >= 2
    for run in record["runs"]:
        [row] = [r for r in rows if r[0] == f"`{run['candidate']}`" and r[2] == str(run["seed"])]
        assert number(row[1]) == run["changes"]["learning_rate"]
        figures = run["validation_f1_weighted"]
        assert [number(c) for c in row[3:7]] == [figures["fpb"], figures["fiqa"], figures["tfns"],
                                                 run["validation_mean"]]
    # Nothing in the record looked at a test row unless its test phase ran, for one candidate.
    assert record["test"] is None or set(record["test"]) >= {"candidate", "seeds"}


def test_tfidf_floor_row_is_its_results():
    results = json.loads((RESULTS / "tfidf_logreg" / "results.json").read_text())["results"]
    rows = table_rows("cpu-default-table")
    [row] = [r for r in rows if r[0] == "tfidf-logreg"]
    expected = [round(100 * results[name]["metrics"][metric], 2)
                for name in ("fpb", "fiqa", "tfns", "nwgi") for metric in ("accuracy", "f1_macro", "f1_weighted")]
    assert [number(c) for c in row[3:15]] == expected


def test_tfidf_c_was_chosen_on_validation():
    run = json.loads((RESULTS / "tfidf_logreg" / "results.json").read_text())["run"]
    selection = run["c_selection"]
    best = max(selection["tried"], key=lambda c: selection["tried"][c]["mean"])
    assert float(best) == selection["chosen"] == run["classifier"]["C"]
    assert f"C={selection['chosen']:g}" in README


def test_vllm_agreement_sentence_is_its_json():
    data = json.loads((RESULTS / "vllm_backend" / "cpu_fpb100_agreement.json").read_text())
    agree = round(data["label_agreement"] * data["rows"])
    gap = f"{data['max_log_likelihood_gap']:.1e}".replace("e-0", "e-")  # 1.0e-4, as the README writes it
    sentence = (f"**{agree}/{data['rows']} labels agree**, max log-likelihood gap {gap}, "
                f"transformers {data['rows_per_s']['transformers']:.2f} rows/s, vLLM {data['rows_per_s']['vllm']:.2f} rows/s")
    assert sentence in README.replace("\n  ", " ")
    assert f"server start {data['server_startup_s']:.0f} s" in README


@pytest.mark.parametrize("name", ["cpu_200_rows"])
def test_predict_throughput_rows_are_their_json(name):
    path = RESULTS / "predict_throughput" / f"{name}.json"
    data = json.loads(path.read_text())
    rows = table_rows("predict-throughput")
    [row] = [r for r in rows if number(r[1]) == data["rows"]]
    for column, mode in ((2, "score"), (3, "generate")):
        if mode in data["modes"]:
            assert row[column] == f"{data['modes'][mode]['rows_per_second']:.1f} rows/s"
        else:
            assert row[column] == "-"
    if "score" in data["modes"]:
        assert number(row[4]) == round(data["modes"]["score"]["wall_seconds"], 1)
    assert re.search(rf"`benchmarks/results/predict_throughput/{name}\.json`", README)


BENCHMARKS = ("fpb", "fiqa", "tfns", "nwgi")
METRICS = ("accuracy", "f1_macro", "f1_weighted")


def test_default_rows_are_the_committed_seed_runs():
    """Each seed's row is its committed results.json; the mean row is their mean (computed here)."""
    summary = json.loads((RESULTS / "cpu_default" / "summary.json").read_text())
    rows = table_rows("cpu-default-table")
    per_seed = []
    for seed in summary["seeds"]:
        results = json.loads((RESULTS / "cpu_default" / f"seed{seed}" / "results.json").read_text())["results"]
        assert all(results[name]["split"] == "test" for name in BENCHMARKS)
        values = [100 * results[name]["metrics"][metric] for name in BENCHMARKS for metric in METRICS]
        per_seed.append(values)
        [row] = [r for r in rows if r[0] == f"default, seed {seed}"]
        assert [number(c) for c in row[3:15]] == [round(v, 2) for v in values]
        run = json.loads((RESULTS / "cpu_default" / f"seed{seed}" / "fingpt_run.json").read_text())
        recipe = yaml.safe_load((RESULTS / "cpu_default" / f"seed{seed}" / "recipe.yaml").read_text())
        assert recipe["seed"] == run["mixture"]["seed"] == seed and run["status"] == "completed"
        # Trained on the train splits less their validation rows (FPB 3,634 - 363, FiQA 938 - 94, TFNS 9,543 - 954).
        assert {s["name"]: s["rows_in"] for s in run["mixture"]["sources"]} == {"fpb": 3271, "fiqa": 844, "tfns": 8589}
    [row] = [r for r in rows if r[0] == f"default, mean of {len(per_seed)} seeds"]
    means = [sum(column) / len(column) for column in zip(*per_seed)]
    assert [number(c) for c in row[3:15]] == pytest.approx([round(m, 2) for m in means], abs=0.005001)
    assert len(per_seed) >= 3


def test_the_shipped_cpu_recipe_is_the_chosen_candidate():
    """The main command trains what was chosen on validation and tested: the record's candidate, seed 42."""
    record = json.loads((RESULTS / "cpu_recipe_selection" / "selection.json").read_text())
    chosen = record["test"]["candidate"]
    changes = next(r["changes"] for r in record["runs"] if r["candidate"] == chosen)
    recipe = yaml.safe_load((REPO / "recipes" / "smollm2-135m" / "sft_lora.yaml").read_text())
    assert recipe["learning_rate"] == changes["learning_rate"]
    assert recipe["dataset_mixture"] == {**changes["dataset_mixture"], "seed": 42} and recipe["seed"] == 42
