"""benchmarks/validation_margin.py: the paired bootstrap behind a round's validation margin, and the committed record
of round 21's margin, whose predictions score to the selection records' validation figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark_scripts import load_benchmark_script

REPO = Path(__file__).resolve().parents[1]
SELECTION = REPO / "benchmarks" / "results" / "cpu_recipe_selection"


def _script():
    return load_benchmark_script("validation_margin")


def _write_run(directory: Path, gold: dict[str, list[str]], predicted: dict[str, list[str | None]]) -> None:
    for name, labels in gold.items():
        (directory / name).mkdir(parents=True)
        rows = [{"index": i, "gold": g, "prediction": p} for i, (g, p) in enumerate(zip(labels, predicted[name]))]
        (directory / name / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _scored(record: dict, predicted: dict[str, str]) -> dict[str, float]:
    """One run's weighted F1 per set of the record's split, x100 to two decimals as the selection records keep it,
    computed from the letters alone."""
    script = _script()
    sets = script.SETS[record.get("split", "validation")]  # the records made before --split are validation's
    return {s: round(script.weighted_f1(record["gold"][s], predicted[s]), 2) for s in sets}


def _assert_observed_inside_every_interval(record: dict) -> None:
    for margin in (*record["margin"].values(), *record["margin_rows_and_seeds"].values()):
        low, high = margin["interval_95"]
        assert low <= margin["observed"] <= high


def _gold() -> dict[str, list[str]]:
    return {name: (["negative"] * 5 + ["neutral"] * 10 + ["positive"] * 7) for name in ("fpb", "fiqa", "tfns")}


def test_identical_runs_have_a_zero_margin_and_a_better_run_a_positive_interval(tmp_path):
    """Two runs with the same predictions differ by exactly 0 on every draw; a run right on every row against one that
    calls every neutral row positive leads on every draw, and swapping them negates the margin."""
    script = _script()
    gold = _gold()
    wrong = {name: ["positive" if g == "neutral" else g for g in labels] for name, labels in gold.items()}
    for role, predicted in (("right", gold), ("wrong", wrong), ("also-wrong", wrong)):
        for seed in (42, 43):
            _write_run(tmp_path / role / f"seed{seed}" / "validation", gold, predicted)
    same = script.record_from_runs("wrong", tmp_path, "also-wrong", tmp_path, [42, 43])
    runs = same["predictions"]
    result = script.bootstrap(same["gold"], runs, resamples=50, seed=0)
    assert all(r["observed"] == 0 and r["interval_95"] == [0, 0] and r["share_at_or_below_zero"] == 1 for r in result.values())
    assert script.bootstrap(same["gold"], runs, resamples=50, seed=0, seeds_too=True) == result
    better = script.record_from_runs("right", tmp_path, "wrong", tmp_path, [42, 43])
    runs = better["predictions"]
    ahead = script.bootstrap(better["gold"], runs, resamples=50, seed=0)
    assert ahead["mean"]["observed"] > 0 and ahead["mean"]["interval_95"][0] > 0 and ahead["mean"]["share_at_or_below_zero"] == 0
    swapped = script.bootstrap(better["gold"], {"candidate": runs["against"], "against": runs["candidate"]}, 50, 0)
    assert swapped["mean"]["observed"] == -ahead["mean"]["observed"]
    assert swapped["mean"]["interval_95"] == [-ahead["mean"]["interval_95"][1], -ahead["mean"]["interval_95"][0]]


def test_drawing_seeds_too_puts_the_seeds_spread_in_the_interval(tmp_path):
    """A candidate right on every row with one seed and as wrong as the other recipe with its other seed leads on every
    draw of rows alone; when the seeds are drawn too, about a quarter of the draws take its wrong seed twice, a margin of
    exactly 0."""
    script = _script()
    gold = _gold()
    wrong = {name: ["positive" if g == "neutral" else g for g in labels] for name, labels in gold.items()}
    for role, by_seed in (("mixed", {42: gold, 43: wrong}), ("wrong", {42: wrong, 43: wrong})):
        for seed, predicted in by_seed.items():
            _write_run(tmp_path / role / f"seed{seed}" / "validation", gold, predicted)
    record = script.record_from_runs("mixed", tmp_path, "wrong", tmp_path, [42, 43])
    runs = record["predictions"]
    rows = script.bootstrap(record["gold"], runs, resamples=200, seed=0)["mean"]
    both = script.bootstrap(record["gold"], runs, resamples=200, seed=0, seeds_too=True)["mean"]
    assert rows["observed"] == both["observed"] > 0 and rows["share_at_or_below_zero"] == 0
    assert 0.15 < both["share_at_or_below_zero"] < 0.35 and both["interval_95"][0] == 0


def test_runs_that_did_not_score_the_same_rows_are_refused_naming_the_file(tmp_path):
    script = _script()
    gold = _gold()
    _write_run(tmp_path / "a" / "seed42" / "validation", gold, gold)
    other = {**gold, "fiqa": list(reversed(gold["fiqa"]))}
    _write_run(tmp_path / "b" / "seed42" / "validation", other, other)
    with pytest.raises(SystemExit, match=r"b/seed42/validation/fiqa/predictions.jsonl: its gold labels"):
        script.record_from_runs("a", tmp_path, "b", tmp_path, [42])
    with pytest.raises(SystemExit, match=r"c/seed42/validation/fpb/predictions.jsonl is missing"):
        script.record_from_runs("a", tmp_path, "c", tmp_path, [42])
    odd = {**gold, "tfns": ["bullish", *gold["tfns"][1:]]}
    _write_run(tmp_path / "d" / "seed42" / "validation", gold, odd)
    with pytest.raises(SystemExit, match=r"d/seed42/validation/tfns/predictions.jsonl: row 0: prediction 'bullish'"):
        script.record_from_runs("d", tmp_path, "a", tmp_path, [42])


def test_a_kept_controls_predictions_give_the_margin_its_directories_give(tmp_path, capsys):
    """A round's control trained first is kept as a record of its predictions alone (``--candidate --out --json``);
    the margin read against that record (``--against-from-json``) is the one read against its directories, and a
    record of other rows, another recipe or missing seeds is refused, naming what differs."""
    script = _script()
    gold = _gold()
    wrong = {name: ["positive" if g == "neutral" else g for g in labels] for name, labels in gold.items()}
    control, candidate = "xeon28-loraplus-control", "loraplus-neftune5-fpb"
    for name, by_seed in ((control, {42: wrong, 43: gold}), (candidate, {42: gold, 43: gold})):
        for seed, predicted in by_seed.items():
            _write_run(tmp_path / name / f"seed{seed}" / "validation", gold, predicted)
    kept = tmp_path / "control.json"
    assert script.main(["--candidate", control, "--out", str(tmp_path), "--seeds", "42", "43", "--json", str(kept)]) == 0
    record = json.loads(kept.read_text())
    assert record["against"] is None and set(record["predictions"]) == {"candidate"}
    common = ["--candidate", candidate, "--out", str(tmp_path), "--against", control, "--seeds", "42", "43",
              "--resamples", "50"]
    script.main([*common, "--against-out", str(tmp_path), "--json", str(tmp_path / "from_dirs.json")])
    script.main([*common, "--against-from-json", str(kept), "--json", str(tmp_path / "from_record.json")])
    from_dirs, from_record = (json.loads((tmp_path / f).read_text()) for f in ("from_dirs.json", "from_record.json"))
    for key in ("gold", "predictions", "margin", "margin_rows_and_seeds"):
        assert from_record[key] == from_dirs[key], key
    assert from_dirs["margin"]["mean"]["observed"] > 0
    with pytest.raises(SystemExit, match="not 'mlp-rows112'"):
        script.main([*common[:4], "--against", "mlp-rows112", "--against-from-json", str(kept)])
    with pytest.raises(SystemExit, match=r"no predictions of 'xeon28-loraplus-control' for seeds \[44\]"):
        script.main([*common[:6], "--seeds", "42", "44", "--against-from-json", str(kept)])
    other = {**record, "gold": {**record["gold"], "fiqa": record["gold"]["fiqa"][::-1]}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match=r"loraplus-neftune5-fpb/seed42/validation/fiqa/predictions.jsonl: its gold"):
        script.main([*common, "--against-from-json", str(tmp_path / "other.json")])
    with pytest.raises(SystemExit):
        script.main([*common])  # neither --against-out nor --against-from-json
    assert "one of --against-out and --against-from-json" in capsys.readouterr().err


def test_a_name_that_is_no_candidate_is_refused_before_any_path_is_read(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _script().main(["--candidate", "../../etc", "--out", str(tmp_path), "--against", "mlp-rows112",
                        "--against-out", str(tmp_path)])
    assert "invalid choice: '../../etc'" in capsys.readouterr().err


@pytest.mark.parametrize("record_name, seeds", [("margin_round20.json", [42, 43, 44]), ("margin_round21.json", [42, 43, 44]),
                                                ("margin_round22.json", [42, 43]),  # round 22's probe ran two seeds
                                                ("margin_round23.json", [42, 43, 44]),
                                                ("margin_round28.json", [42, 43, 44]),  # their control from the
                                                ("margin_round29.json", [42, 43, 44]),  # kept letters
                                                ("margin_round31.json", [42, 43, 44])])
def test_committed_predictions_score_to_the_selection_records_validation_figures(record_name, seeds):
    """The committed predictions are the runs the rounds recorded: scored here from the letters alone, each
    run's weighted F1 is its selection record's (computed by the evaluation pipeline from the adapters), and the
    observed margin is the difference of the two three-seed means the round's rule compared."""
    script, select = _script(), load_benchmark_script("select_cpu_recipe")
    record = json.loads((SELECTION / record_name).read_text())
    means = {}
    for role in ("candidate", "against"):
        name = record[role]
        runs = {r["seed"]: r for r in json.loads(select.record_path(name).read_text())["runs"] if r["candidate"] == name}
        assert sorted(int(seed) for seed in record["predictions"][role]) == record["seeds"] == seeds
        for seed, predicted in record["predictions"][role].items():
            assert _scored(record, predicted) == runs[int(seed)]["validation_f1_weighted"], (role, seed)
        means[role] = sum(runs[s]["validation_mean"] for s in record["seeds"]) / len(record["seeds"])
    assert record["margin"]["mean"]["observed"] == pytest.approx(means["candidate"] - means["against"], abs=0.015)
    assert [len(record["gold"][s]) for s in script.VALIDATION_SETS] == [363, 94, 954]
    assert record["margin_rows_and_seeds"]["mean"]["observed"] == record["margin"]["mean"]["observed"]
    _assert_observed_inside_every_interval(record)


def test_round_28s_kept_control_predictions_score_to_its_records_figures(data_dir):
    """Round 28's control, trained first, is kept as its predictions alone: scored here from the letters, each seed's
    weighted F1 is round 28's record of it, and the gold labels are the validation rows' own labels (data files)."""
    from fingpt_hf.data.benchmarks import load_benchmark

    script, select = _script(), load_benchmark_script("select_cpu_recipe")
    record = json.loads((SELECTION / "reproduction" / "round28_control_predictions.json").read_text())
    name = record["candidate"]
    assert name == "xeon28-loraplus-control" and record["against"] is None and record["seeds"] == [42, 43, 44]
    runs = {r["seed"]: r for r in json.loads(select.record_path(name).read_text())["runs"] if r["candidate"] == name}
    for seed, predicted in record["predictions"]["candidate"].items():
        assert _scored(record, predicted) == runs[int(seed)]["validation_f1_weighted"], seed
    for s in script.VALIDATION_SETS:
        rows = load_benchmark(s, "validation", data_dir=data_dir)
        assert "".join(script.LETTER[o] for o in rows["output"]) == record["gold"][s]


def test_test_margin_predictions_score_to_the_committed_test_figures():
    """The test-set record sizes a difference already reported (round 21's recipe against round 20's): its predictions,
    scored here from the letters alone, give each committed seed's test weighted F1 (summary.json, from the evaluation
    pipeline), over all four sets."""
    record = json.loads((REPO / "benchmarks" / "results" / "cpu_default_round21" / "test_margin_against_round20.json").read_text())
    assert record["split"] == "test" and (record["candidate"], record["against"]) == ("mlp-rows112", "epyc-fiqa8-mlp")
    for role, directory in (("candidate", "cpu_default_round21"), ("against", "cpu_default_round20")):
        summary = json.loads((REPO / "benchmarks" / "results" / directory / "summary.json").read_text())
        assert summary["candidate"] == record[role]
        for seed, predicted in record["predictions"][role].items():
            assert _scored(record, predicted) == summary["test_f1_weighted"][seed], (role, seed)
    _assert_observed_inside_every_interval(record)



def test_weighted_f1_is_sklearns_f1_score_on_any_rows_and_draw():
    """The bootstrap's weighted F1 (counted from the weighted confusion matrix) is sklearn's ``f1_score`` (weighted, over
    FinGPT's three labels, ``zero_division=0``) to the last bit: random rows with invalid answers, whole draws with
    rows taken 0-n times, a label no row has or predicts, every answer invalid, and one row."""
    import numpy as np
    from sklearn.metrics import f1_score

    script = _script()
    label_of = {letter: label for label, letter in script.LETTER.items()}

    def sklearn_f1(gold: str, predicted: str, weights) -> float:
        return 100 * float(f1_score([label_of[c] for c in gold], [label_of[c] for c in predicted],
                                    labels=["negative", "neutral", "positive"], average="weighted",
                                    sample_weight=weights, zero_division=0))

    rng = np.random.default_rng(7)
    cases = []
    for rows in (1, 5, 94, 400):
        gold = "".join(rng.choice(list("nup"), rows))
        predicted = "".join(rng.choice(list("nupx"), rows, p=[0.3, 0.3, 0.3, 0.1]))
        cases += [(gold, predicted, None), (gold, predicted, rng.multinomial(rows, np.full(rows, 1 / rows)))]
    cases += [("nnpp", "nppx", None), ("nnpp", "xxxx", None), ("uuuu", "uupp", np.array([0, 3, 1, 0]))]
    for gold, predicted, weights in cases:
        assert script.weighted_f1(gold, predicted, weights) == sklearn_f1(gold, predicted, weights), (gold, predicted)


@pytest.mark.parametrize("record_path", [SELECTION / "margin_round20.json", SELECTION / "margin_round21.json",
                                         SELECTION / "margin_round22.json", SELECTION / "margin_round23.json",
                                         SELECTION / "margin_round28.json", SELECTION / "margin_round29.json",
                                         SELECTION / "margin_round31.json",
                                         REPO / "benchmarks/results/cpu_default_round21/test_margin_against_round20.json",
                                         REPO / "benchmarks/results/cpu_default_round21_gqa/test_margin_against_round21.json",
                                         REPO / "benchmarks/results/cpu_default_round23/test_margin_against_round21_gqa.json"])
def test_committed_margins_are_recomputed_to_the_digit_from_their_predictions(record_path):
    """Every committed margin record, made when the bootstrap scored each draw with sklearn's ``f1_score``, comes out
    the same from its gold labels and predictions with the same resamples and generator seed: both intervals."""
    script = _script()
    record = json.loads(record_path.read_text())
    gold, runs = record["gold"], record["predictions"]
    assert script.bootstrap(gold, runs, record["resamples"], record["rng_seed"]) == record["margin"]
    assert script.bootstrap(gold, runs, record["resamples"], record["rng_seed"], seeds_too=True) == \
        record["margin_rows_and_seeds"]


@pytest.mark.parametrize("directory", ["cpu_default_round21", "cpu_default_round21_gqa", "cpu_default_round23"])
def test_committed_gaps_to_fingpt_v31_are_recomputed_to_the_digit(directory):
    """The committed gaps to FinGPT v3.1 come out the same from the test-margin record they were made from."""
    script = _script()
    record = json.loads((REPO / "benchmarks" / "results" / directory / "test_gap_to_fingpt_v31.json").read_text())
    again = script.gap_record(REPO / record["from_record"], record["published"]["name"], record["resamples"],
                              record["rng_seed"], record["command"])
    assert again["gap"] == record["gap"]


def test_gap_to_a_published_figure_of_a_run_right_on_every_row_is_fixed_and_of_a_wrong_run_covers_its_draws(tmp_path):
    """A run right on every row scores 100 on every draw: its gap to a published 85 is exactly 15, with no spread. A run
    that calls every neutral row positive has a gap whose interval holds the observed one, and the share of draws that
    reach the figure moves from all to none as the figure moves from below every draw to above it."""
    script = _script()
    gold = _gold()
    wrong = {name: ["positive" if g == "neutral" else g for g in labels] for name, labels in gold.items()}
    for role, predicted in (("right", gold), ("wrong", wrong)):
        for seed in (42, 43):
            _write_run(tmp_path / role / f"seed{seed}" / "validation", gold, predicted)
    record = script.record_from_runs("right", tmp_path, "wrong", tmp_path, [42, 43])
    right = script.gap_to_published(record["gold"], record["predictions"]["candidate"], {"fpb": 85.0, "fiqa": 90.0}, 50, 0)
    assert set(right) == {"mean", "fpb", "fiqa"}  # only the sets with a published figure
    assert right["fpb"] == {"published": 85.0, "gap": {"observed": 15.0, "interval_95": [15.0, 15.0]},
                            "share_at_or_above_published": 1.0}
    assert right["mean"]["published"] == 87.5 and right["mean"]["gap"]["observed"] == 12.5
    observed = script.weighted_f1(record["gold"]["fpb"], record["predictions"]["against"]["42"]["fpb"])
    for figure, share in ((0.0, 1.0), (100.0, 0.0)):
        gap = script.gap_to_published(record["gold"], record["predictions"]["against"], {"fpb": figure}, 200, 0)["fpb"]
        low, high = gap["gap"]["interval_95"]
        assert gap["gap"]["observed"] == round(observed - figure, 2) and low < gap["gap"]["observed"] < high
        assert gap["share_at_or_above_published"] == share


def test_gap_to_fingpt_v31_is_the_committed_test_figures_less_the_published_ones():
    """The committed gap of the shipped recipe to FinGPT v3.1: its observed gaps are the seeds' mean test weighted F1
    (summary.json, from the evaluation pipeline) less v3.1's published figures (published_results.yaml), and every
    interval holds its observed gap."""
    import yaml

    results = REPO / "benchmarks" / "results" / "cpu_default_round21"
    record = json.loads((results / "test_gap_to_fingpt_v31.json").read_text())
    summary = json.loads((results / "summary.json").read_text())
    published = yaml.safe_load((REPO / "fingpt_hf" / "evaluation" / "published_results.yaml").read_text())
    [v31] = [m for m in published["models"] if m["name"] == "FinGPT v3.1"]
    assert record["candidate"] == summary["candidate"] == "mlp-rows112" and record["split"] == "test"
    assert record["from_record"] == "benchmarks/results/cpu_default_round21/test_margin_against_round20.json"
    for name in ("fpb", "fiqa", "tfns", "nwgi"):
        mean = summary["test_f1_weighted_over_seeds"][name]["mean"]
        gap = record["gap"][name]
        assert gap["published"] == round(100 * v31["values"][name]["f1_weighted"], 2)
        assert gap["gap"]["observed"] == pytest.approx(mean - gap["published"], abs=0.006), name
        low, high = gap["gap"]["interval_95"]
        assert low <= gap["gap"]["observed"] <= high


def test_a_gap_is_refused_for_validation_predictions_or_an_unknown_published_row(capsys):
    """Published figures are test figures: a record of validation predictions is refused, naming it, as is a name that
    is no published row (the known ones are listed); --published without a record is a usage error."""
    script = _script()
    with pytest.raises(SystemExit, match=r"margin_round21.json holds validation predictions; .*--split test"):
        script.main(["--from-json", str(SELECTION / "margin_round21.json"), "--published", "FinGPT v3.1"])
    test_record = REPO / "benchmarks" / "results" / "cpu_default_round21" / "test_margin_against_round20.json"
    with pytest.raises(SystemExit, match=r"--published 'FinGPT v9' is not a published row; known: .*'FinGPT v3.1'"):
        script.main(["--from-json", str(test_record), "--published", "FinGPT v9"])
    with pytest.raises(SystemExit):
        script.main(["--published", "FinGPT v3.1"])
    assert "give --from-json" in capsys.readouterr().err
