"""`fingpt-hf compare` / `leaderboard` on real results files made by the TF-IDF baseline."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from fingpt_hf.cli import main
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.published import DEFAULT_PUBLISHED_PATH, load_published

REPO = Path(__file__).resolve().parent.parent
BENCH_TITLES = {"fpb": "FPB", "fiqa": "FiQA-SA", "tfns": "TFNS", "nwgi": "NWGI"}
METRIC_TITLES = {"accuracy": "Acc", "f1_macro": "F1 macro", "f1_weighted": "F1 weighted"}


def _baseline():
    spec = importlib.util.spec_from_file_location("tfidf_baseline", REPO / "benchmarks" / "tfidf_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Two real runs: all four benchmarks (120 rows each) and FPB+TFNS only (200 rows each)."""
    root = tmp_path_factory.mktemp("runs")
    baseline = _baseline()
    full, partial = root / "board" / "full", root / "board" / "nested" / "partial"
    common = ["--data-dir", str(data_dir), "--train", "fpb,fiqa,tfns", "--no-predictions"]
    assert baseline.main([*common, "--limit", "120", "--output-dir", str(full)]) == 0
    assert baseline.main([*common, "--limit", "200", "--datasets", "fpb,tfns", "--output-dir", str(partial)]) == 0
    return {"full": full, "partial": partial, "board": root / "board"}


def _metrics(run_dir: Path) -> dict[str, dict]:
    data = json.loads((run_dir / "results.json").read_text())
    return {name: r["metrics"] for name, r in data["results"].items()}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _markdown(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]  # noqa: E731
    headers = split(lines[0])
    assert set(lines[1].replace("|", "").replace("-", "").replace(":", "")) <= {""}
    return [dict(zip(headers, split(line))) for line in lines[2:]]


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def test_compare_csv_values_equal_files(capsys, runs):
    code, out, err = _cli(capsys, "compare", str(runs["full"]), str(runs["partial"] / "results.json"),
                          "--format", "csv")
    assert code == 0, err
    rows = _csv(out)
    assert [r["Origin"] for r in rows[:2]] == ["run", "run"]
    assert rows[0]["Model"] == "tfidf-logreg" and rows[0]["Source"] == str(runs["full"])
    for row, run in zip(rows[:2], (runs["full"], runs["partial"])):
        metrics = _metrics(run)
        for bench, title in BENCH_TITLES.items():
            for metric, mtitle in METRIC_TITLES.items():
                expected = _pct(metrics[bench][metric]) if bench in metrics else "-"
                assert row[f"{title} {mtitle}"] == expected, (run, bench, metric)

    # Published rows carry exactly what the YAML file prints, converted to x100.
    raw = yaml.safe_load(DEFAULT_PUBLISHED_PATH.read_text())
    published = {r["Model"]: r for r in rows[2:]}
    assert set(published) == {m["name"] for m in raw["models"]}
    for model in raw["models"]:
        factor = 100.0 if model["scale"] == "fraction" else 1.0
        for bench, title in BENCH_TITLES.items():
            for metric, mtitle in METRIC_TITLES.items():
                value = model["values"].get(bench, {}).get(metric)
                cell = published[model["name"]][f"{title} {mtitle}"]
                assert cell == ("-" if value is None else f"{value * factor:.2f}")
    assert published["FinGPT v3.3"]["FPB F1 weighted"] == "88.20"
    assert published["Baichuan2-7B LoRA (seed)"]["NWGI Acc"] == "65.65"
    assert published["GPT-4"]["NWGI F1 weighted"] == "-"


def test_compare_markdown_metric_choice_and_output(capsys, runs, tmp_path):
    target = tmp_path / "table.md"
    code, out, err = _cli(capsys, "compare", str(runs["full"]), "--metric", "f1_weighted", "--no-published",
                          "--output", str(target))
    assert code == 0 and out == "" and str(target) in err
    text = target.read_text()
    rows = _markdown(text)
    assert len(rows) == 1
    assert [h for h in rows[0] if h not in ("Model", "Origin", "Source")] == [
        f"{t} F1 weighted" for t in BENCH_TITLES.values()]
    metrics = _metrics(runs["full"])
    for bench, title in BENCH_TITLES.items():
        assert rows[0][f"{title} F1 weighted"] == _pct(metrics[bench]["f1_weighted"])
    assert "github.com/AI4Finance-Foundation/FinGPT" not in text  # no published rows, no sources


def test_compare_accepts_single_result_file(capsys, runs):
    code, out, _ = _cli(capsys, "compare", str(runs["full"] / "fiqa" / "result.json"), "--no-published",
                        "--format", "csv")
    assert code == 0
    (row,) = _csv(out)
    assert row["FiQA-SA Acc"] == _pct(_metrics(runs["full"])["fiqa"]["accuracy"])
    assert "FPB Acc" not in row


def _with_version(src: Path, dst: Path, version) -> Path:
    data = json.loads((src / "results.json").read_text())
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    dst.write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize("version, words", [(99, "newer"), (0, "older"), (None, "no 'schema_version'")])
def test_compare_schema_errors_name_the_file(capsys, runs, tmp_path, version, words):
    bad = _with_version(runs["full"], tmp_path / "old_results.json", version)
    code, out, err = _cli(capsys, "compare", str(runs["full"]), str(bad))
    assert code == 2 and out == ""
    assert str(bad) in err and words in err
    assert "Traceback" not in err


def test_compare_missing_file_exits_2(capsys, tmp_path):
    missing = tmp_path / "nope" / "results.json"
    code, out, err = _cli(capsys, "compare", str(missing))
    assert code == 2 and out == "" and str(missing) in err


def test_compare_bad_metric_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--metric", "f1_micro"])
    assert exit_info.value.code == 2
    assert "--metric" in capsys.readouterr().err


def test_leaderboard_ranks_by_mean_of_present_benchmarks(capsys, runs):
    code, out, err = _cli(capsys, "leaderboard", str(runs["board"]), "--format", "csv")
    assert code == 0, err
    rows = _csv(out)
    assert len(rows) == 2  # both results.json files, one of them nested two levels down
    by_path = {r["Path"]: r for r in rows}
    assert set(by_path) == {"full/results.json", str(Path("nested/partial/results.json"))}
    means = {}
    for path, run in (("full/results.json", runs["full"]), ("nested/partial/results.json", runs["partial"])):
        metrics = _metrics(run)
        means[path] = sum(m["f1_weighted"] for m in metrics.values()) / len(metrics)
        row = by_path[path]
        assert row["Mean F1 weighted"] == _pct(means[path])
        assert row["Benchmarks"] == f"{len(metrics)}/4"
        for bench, title in BENCH_TITLES.items():
            assert row[f"{title} F1 weighted"] == (_pct(metrics[bench]["f1_weighted"]) if bench in metrics else "-")
    assert [r["Path"] for r in rows] == sorted(means, key=lambda p: -means[p])
    assert [r["Rank"] for r in rows] == ["1", "2"]


def test_leaderboard_sort_require_all_published_and_output(capsys, runs, tmp_path):
    # Sorting by a benchmark the partial run lacks puts it last.
    code, out, _ = _cli(capsys, "leaderboard", str(runs["board"]), "--format", "csv", "--sort-by", "nwgi")
    assert code == 0
    assert [r["Benchmarks"] for r in _csv(out)] == ["4/4", "2/4"]
    # --require-all drops the run missing benchmarks.
    code, out, _ = _cli(capsys, "leaderboard", str(runs["board"]), "--format", "csv", "--require-all")
    assert [r["Path"] for r in _csv(out)] == ["full/results.json"]
    # Published rows join the ranking; FinGPT v3.3 beats a 120-row TF-IDF model.
    target = tmp_path / "board.md"
    code, out, err = _cli(capsys, "leaderboard", str(runs["board"]), "--published", "--metric", "accuracy",
                          "--output", str(target))
    assert code == 0 and out == ""
    rows = _markdown(target.read_text())
    names = [r["Model"] for r in rows]
    assert names.index("FinGPT v3.3") < names.index("tfidf-logreg")
    v33 = next(r for r in rows if r["Model"] == "FinGPT v3.3")
    expected = next(m for m in load_published() if m.name == "FinGPT v3.3").scores
    assert v33["Mean Acc"] == _pct(sum(s["accuracy"] for s in expected.values()) / 4)


def test_leaderboard_user_errors(capsys, runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _cli(capsys, "leaderboard", str(empty))
    assert code == 2 and str(empty) in err and "results.json" in err
    code, _, err = _cli(capsys, "leaderboard", str(tmp_path / "missing"))
    assert code == 2 and "not a directory" in err
    code, _, err = _cli(capsys, "leaderboard", str(runs["board"]), "--sort-by", "bogus")
    assert code == 2 and "--sort-by" in err
    # One stale file under the directory is named, not skipped silently, and the rest still rank.
    board = tmp_path / "board"
    shutil.copytree(runs["board"], board)
    stale = _with_version(runs["full"], board / "nested" / "results.json", 0)
    code, out, err = _cli(capsys, "leaderboard", str(board))
    assert code == 0 and str(stale) in err and "older" in err
    assert "| 1 |" in out and "Not ranked" in out and str(stale) in out


def test_published_file_converts_scale_and_keeps_sources():
    models = {m.name: m for m in load_published()}
    seed = models["Baichuan2-7B LoRA (seed)"]
    assert seed.origin == "seed"
    assert seed.scores["fpb"] == pytest.approx({"accuracy": 0.8531, "f1_macro": 0.8428, "f1_weighted": 0.8528})
    assert "nwgi" not in models["GPT-4"].scores
    for model in models.values():
        for source in model.sources.values():
            assert source.url is None or source.url.startswith("https://github.com/AI4Finance-Foundation/FinGPT/")
        if model.origin == "published":
            assert model.sources["f1_weighted"].url.endswith("/README.md")


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["models"][0].update(scale="percent", values={"fpb": {"accuracy": 0.8}}), None),
    (lambda d: d["models"][1].update(scale="percent", values={"fpb": {"accuracy": 188.2}}), "out of range"),
    (lambda d: d["models"][1].update(scale="per mille"), "scale"),
    (lambda d: d["models"][1]["values"]["fpb"].update(f1_micro=0.8), "unknown metric"),
    (lambda d: d["models"][1]["source"].update(f1_weighted="nowhere"), "nowhere"),
])
def test_published_file_errors_name_file_and_model(tmp_path, edit, words):
    data = yaml.safe_load(DEFAULT_PUBLISHED_PATH.read_text())
    edit(data)
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(data))
    if words is None:  # a valid edit: 0.8 percent is 0.008
        assert load_published(path)[0].scores["fpb"]["accuracy"] == pytest.approx(0.008)
        return
    with pytest.raises(FinGPTError) as err:
        load_published(path)
    assert str(path) in str(err.value) and words in str(err.value)
