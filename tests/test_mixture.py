"""FinGPT's training mixture rebuilt from the real mirror."""

from __future__ import annotations

import csv
import re
from collections import Counter

import datasets
import numpy as np
import pytest
import yaml

from fingpt_hf.data.benchmarks import load_benchmark, load_train_rows
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.mixture import (
    FINGPT_WEIGHTS,
    MixtureConfig,
    MixtureSource,
    build_mixture,
    parse_weights,
    weighted_count,
)
from fingpt_hf.errors import FinGPTError

# The offline FinGPT mixture (no NWGI train); a change in data, weights or shuffling changes it.
DEFAULT_HASH = "sha256:67404f9ee23bf4f5291df8beff6ab4e94cc9b4c991c3b9954eb40af06db3fda8"


@pytest.fixture(scope="module")
def default_build(data_dir):
    return build_mixture(MixtureConfig.fingpt_default(), data_dir)


@pytest.fixture(scope="module")
def train_splits(data_dir) -> dict[str, datasets.Dataset]:
    return {name: load_benchmark(name, "train", data_dir) for name in ("fpb", "fiqa", "tfns")}


def rows_of(ds: datasets.Dataset) -> list[tuple]:
    return list(zip(ds["instruction"], ds["input"], ds["output"], ds["dataset"]))


def test_default_mixture_offline(default_build, train_splits):
    mixture, report = default_build
    assert len(mixture) == report.total_rows == 60588
    assert mixture.column_names == ["instruction", "input", "output", "dataset"]
    assert [(s.name, s.rows_in, s.rows_out) for s in report.sources] == [
        ("fpb", 3634, 21804), ("fiqa", 938, 19698), ("tfns", 9543, 19086)]
    assert Counter(mixture["dataset"]) == {"fpb": 21804, "fiqa": 19698, "tfns": 19086}
    [skipped] = report.skipped
    assert (skipped.name, skipped.split) == ("nwgi", "train") and "not in the local data mirror" in skipped.reason
    assert report.content_hash == DEFAULT_HASH
    labels = Counter(mixture["output"])
    expected = Counter()
    for name, weight in (("fpb", 6), ("fiqa", 21), ("tfns", 2)):
        for label, n in Counter(train_splits[name]["output"]).items():
            expected[label] += weight * n
    assert labels == expected


def test_default_mixture_is_fingpt_concatenation_shuffled_with_the_seed(default_build, train_splits):
    mixture, _ = default_build
    # FinGPT: concatenate fpb x6, fiqa x21, tfns x2 (then nwgi) and Dataset.shuffle(seed=42), i.e.
    # row i is concatenated[default_rng(42).permutation(n)[i]].
    concatenated = (rows_of(train_splits["fpb"]) * 6 + rows_of(train_splits["fiqa"]) * 21
                    + rows_of(train_splits["tfns"]) * 2)
    permutation = np.random.default_rng(42).permutation(len(concatenated))
    assert rows_of(mixture) == [concatenated[i] for i in permutation]


def test_same_seed_same_hash_other_seed_other_order(data_dir):
    config = {"datasets": [{"name": "fpb", "weight": 1}, {"name": "fiqa", "weight": 1.5}], "seed": 42,
              "exclude_validation": False}
    first, r1 = build_mixture(MixtureConfig.from_dict(config), data_dir)
    second, r2 = build_mixture(MixtureConfig.from_dict(config), data_dir)
    other, r3 = build_mixture(MixtureConfig.from_dict({**config, "seed": 7}), data_dir)
    assert r1.content_hash == r2.content_hash and rows_of(first) == rows_of(second)
    assert r3.content_hash != r1.content_hash
    assert r1.total_rows == r3.total_rows == 3634 + 938 + 469


def test_fractional_weights(data_dir, train_splits):
    config = MixtureConfig([MixtureSource("fpb", 0.5), MixtureSource("fiqa", 1.25), MixtureSource("tfns", 0)],
                           exclude_validation=False)
    mixture, report = build_mixture(config, data_dir)
    out = {s.name: s.rows_out for s in report.sources}
    assert out == {"fpb": 1817, "fiqa": 938 + 235, "tfns": 0}
    assert weighted_count(3634, 0.25) == 909  # 908.5 rounds half up
    fpb_rows = [r for r in rows_of(mixture) if r[3] == "fpb"]
    # a sample without replacement of real fpb train rows: no row more often than in the split
    assert Counter(fpb_rows) <= Counter(rows_of(train_splits["fpb"]))
    fiqa_rows = Counter(r for r in rows_of(mixture) if r[3] == "fiqa")
    assert Counter(rows_of(train_splits["fiqa"])) <= fiqa_rows  # the whole copy is there
    assert sum(fiqa_rows.values()) == 1173


def test_max_samples_takes_the_first_rows_after_shuffling(data_dir):
    full, _ = build_mixture(MixtureConfig([MixtureSource("fiqa", 2)]), data_dir)
    cut, report = build_mixture(MixtureConfig([MixtureSource("fiqa", 2)], max_samples=100), data_dir)
    assert rows_of(cut) == rows_of(full)[:100]
    # FiQA's 938 train rows less its 94 validation rows, twice.
    assert (report.rows_before_max_samples, report.total_rows) == (2 * (938 - 94), 100)


def test_custom_source_in_a_mixture(tmp_path, data_dir):
    tweets = load_benchmark("tfns", "test", data_dir).select(range(40))
    words = {"negative": "Bearish", "positive": "Bullish", "neutral": "Neutral"}
    path = tmp_path / "desk.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["headline", "call"])
        writer.writerows((r["input"], words[r["output"]]) for r in tweets)
    recipe = yaml.safe_load(f"""
dataset_mixture:
  datasets:
    - name: fiqa
      weight: 1
    - name: desk
      path: {path}
      text_column: headline
      label_column: call
      label_map: {{Bearish: negative, Bullish: positive, Neutral: neutral}}
      weight: 3
  seed: 42
""")
    mixture, report = build_mixture(MixtureConfig.from_dict(recipe), data_dir)
    # FiQA without its validation rows; a custom file has none.
    assert [(s.name, s.rows_in, s.rows_out) for s in report.sources] == [("fiqa", 844, 844), ("desk", 40, 120)]
    desk = Counter((r[1], r[2]) for r in rows_of(mixture) if r[3] == "desk")
    assert desk == Counter({(r["input"], r["output"]): 3 for r in tweets})


def test_unknown_keys_are_errors():
    with pytest.raises(FinGPTError, match="unknown key\\(s\\) sed"):
        MixtureConfig.from_dict({"datasets": [{"name": "fpb"}], "sed": 1})
    with pytest.raises(FinGPTError, match="datasets\\[1\\]: unknown key\\(s\\) wieght"):
        MixtureConfig.from_dict({"datasets": [{"name": "fpb"}, {"name": "fiqa", "wieght": 2}]})
    with pytest.raises(FinGPTError, match="unknown data set 'fbp'"):
        MixtureConfig.from_dict({"datasets": [{"name": "fbp"}]})
    with pytest.raises(FinGPTError, match="weight must be a finite number >= 0"):
        MixtureSource("fpb", -1)
    with pytest.raises(FinGPTError, match="listed twice: fpb"):
        MixtureConfig([MixtureSource("fpb"), MixtureSource("fpb", 2)])
    with pytest.raises(FinGPTError, match="on_missing must be"):
        MixtureConfig([MixtureSource("fpb")], on_missing="ignore")


def test_on_missing_error_raises_for_nwgi(data_dir):
    config = MixtureConfig.from_dict({"datasets": [{"name": "fiqa"}, {"name": "nwgi"}], "on_missing": "error"})
    with pytest.raises(MissingSplitError, match="nwgi split 'train' is not in the local data mirror"):
        build_mixture(config, data_dir)
    with pytest.raises(FinGPTError, match="no rows left to train on"):
        build_mixture(MixtureConfig([MixtureSource("nwgi")]), data_dir)


def test_defaults_and_weight_parsing():
    config = MixtureConfig.fingpt_default()
    assert {s.name: s.weight for s in config.sources} == FINGPT_WEIGHTS and config.seed == 42
    assert parse_weights("fpb=6, fiqa=21,tfns=0.5") == {"fpb": 6.0, "fiqa": 21.0, "tfns": 0.5}
    with pytest.raises(FinGPTError, match="'fpb' is 'six'"):
        parse_weights("fpb=six")
    with pytest.raises(FinGPTError, match="'fpb' is not NAME=WEIGHT"):
        parse_weights("fpb")
    assert MixtureConfig.from_dict(config.to_dict()) == config


def test_label_weights_multiply_a_sources_weight_for_their_labels(data_dir):
    """FiQA-SA's neutral rows 3 times as often as its others: each label's count is its own weighted count, the other
    sources are drawn as without label weights, and no validation row enters."""
    plain = MixtureConfig([MixtureSource("fiqa", 2.5), MixtureSource("fpb", 0.5)])
    balanced = MixtureConfig([MixtureSource("fiqa", 2.5, label_weights={"neutral": 3}), MixtureSource("fpb", 0.5)])
    (base, base_report), (mixture, report) = build_mixture(plain, data_dir), build_mixture(balanced, data_dir)
    rows = Counter(load_train_rows("fiqa", data_dir)["output"])  # FiQA-SA's train rows less validation
    fiqa = Counter(r[2] for r in rows_of(mixture) if r[3] == "fiqa")
    assert fiqa == {label: weighted_count(n, 2.5 * (3 if label == "neutral" else 1)) for label, n in rows.items()}
    assert fiqa["neutral"] == 3 * 2 * rows["neutral"] + weighted_count(rows["neutral"], 1.5)
    assert Counter(r for r in rows_of(mixture) if r[3] == "fpb") == Counter(r for r in rows_of(base) if r[3] == "fpb")
    validation = set(rows_of(load_benchmark("fiqa", "validation", data_dir)))
    train = set(rows_of(load_train_rows("fiqa", data_dir)))
    assert {r for r in rows_of(mixture) if r[3] == "fiqa"} <= train and not (validation - train) & set(rows_of(mixture))
    assert report.sources[0].label_weights == {"neutral": 3.0} and base_report.sources[0].label_weights is None
    assert "fiqa train x2.5 (neutral x3)" in "\n".join(report.summary_lines())
    assert MixtureConfig.from_dict(balanced.to_dict()) == balanced


@pytest.mark.parametrize("label_weights, message", [
    ({"neutrl": 2}, "fiqa: label_weights: unknown label 'neutrl'; choose among negative, neutral, positive"),
    ({"neutral": -1}, "fiqa: label_weights: neutral: must be a finite number >= 0, got -1"),
    ({"neutral": "x"}, "fiqa: label_weights: neutral: 'x' is not a number"),
    ([2], "fiqa: label_weights must map labels"),
])
def test_bad_label_weights_are_named(label_weights, message):
    with pytest.raises(FinGPTError, match=re.escape(message)):
        MixtureConfig.from_dict({"datasets": [{"name": "fiqa", "label_weights": label_weights}]})


def _raw_fiqa_scores(data_dir) -> dict[str, set[float]]:
    """Each FiQA-2018 sentence's sentiment scores, read from the mirror's CSVs with the csv module alone."""
    scores: dict[str, set[float]] = {}
    for split in ("train", "validation", "test"):
        with open(data_dir / "fiqa-2018" / f"{split}.csv", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                scores.setdefault(row["sentence"], set()).add(float(row["sentiment_score"]))
    return scores


def test_fiqa_rows_keep_their_scores_only_when_asked(data_dir):
    """``with_scores`` adds each FiQA-SA row's own score (the one its label was cut from) and nothing else."""
    plain, scored = load_train_rows("fiqa", data_dir), load_train_rows("fiqa", data_dir, with_scores=True)
    assert plain.column_names == ["instruction", "input", "output", "dataset"]
    assert scored.column_names == [*plain.column_names, "sentiment_score"]
    assert rows_of(scored) == rows_of(plain)
    raw = _raw_fiqa_scores(data_dir)
    for text, label, score in zip(scored["input"], scored["output"], scored["sentiment_score"]):
        assert score in raw[text]
        assert label == ("negative" if score < -0.1 else "neutral" if score < 0.1 else "positive")
    with pytest.raises(FinGPTError, match="tfns has no continuous sentiment score; only fiqa does"):
        load_benchmark("tfns", "test", data_dir, with_scores=True)


def test_fiqa_label_probabilities_are_the_noisy_scores_cut_at_fingpts_points():
    from scipy.stats import norm

    from fingpt_hf.data.labels import fiqa_label_probabilities

    for score in (-0.8, -0.12, -0.1, 0.0, 0.05, 0.1, 0.3):
        expected = (norm.cdf(-0.1, score, 0.1), norm.cdf(0.1, score, 0.1) - norm.cdf(-0.1, score, 0.1),
                    norm.sf(0.1, score, 0.1))
        assert fiqa_label_probabilities(score, 0.1) == pytest.approx(expected, abs=1e-12)
    assert fiqa_label_probabilities(0.0, 0.1)[1] == pytest.approx(0.682689, abs=1e-6)  # within one sigma
    assert fiqa_label_probabilities(0.9, 0.1)[2] == pytest.approx(1.0)


def test_score_noise_draws_each_copys_label_from_its_rows_score(data_dir):
    """FiQA-SA's rows x9 with score_noise 0.1: each row's nine copies carry each label within one copy of nine times
    its probability (scipy's normal distribution, not the code's), rows more than 5 sigma from both cuts keep their
    label on every copy, and the report counts the copies labelled otherwise."""
    from scipy.stats import norm

    from fingpt_hf.data.mixture import weight_scored_rows

    rows = load_train_rows("fiqa", data_dir, with_scores=True)
    source = MixtureSource("fiqa", 9, score_noise=0.1)
    columns, scores = rows.select_columns(["instruction", "input", "output", "dataset"]), list(rows["sentiment_score"])
    weighted, relabelled = weight_scored_rows(columns, source, 42, scores)
    n = len(rows)
    assert len(weighted) == 9 * n and list(weighted["input"]) == list(rows["input"]) * 9
    labels = list(weighted["output"])
    changed = 0
    for i, (score, own) in enumerate(zip(scores, rows["output"])):
        copies = Counter(labels[i + k * n] for k in range(9))
        below_negative, below_neutral = norm.cdf(-0.1, score, 0.1), norm.cdf(0.1, score, 0.1)
        for label, p in (("negative", below_negative), ("neutral", below_neutral - below_negative),
                         ("positive", 1 - below_neutral)):
            assert abs(copies[label] - 9 * p) < 1, (i, score, copies)
        if min(abs(score + 0.1), abs(score - 0.1)) > 0.5:
            assert copies == {own: 9}
        changed += 9 - copies[own]
    assert relabelled == changed > 0
    again, _ = weight_scored_rows(columns, source, 42, scores)
    other, _ = weight_scored_rows(columns, source, 43, scores)
    assert list(again["output"]) == labels != list(other["output"])


def test_score_noise_changes_only_fiqas_labels_in_a_mixture(data_dir):
    """The same rows in the same order as without score_noise; only FiQA-SA's labels differ, and the summary says
    how many copies."""
    weights = {"fpb": 1.68, "fiqa": 9.0, "tfns": 1.13}
    plain = MixtureConfig.from_weights(weights, exclude_scored_texts=True)
    noisy = MixtureConfig([MixtureSource("fpb", 1.68), MixtureSource("fiqa", 9.0, score_noise=0.1),
                           MixtureSource("tfns", 1.13)], exclude_scored_texts=True)
    (base, _), (mixture, report) = build_mixture(plain, data_dir), build_mixture(noisy, data_dir)
    assert mixture.column_names == base.column_names
    differ = 0
    for a, b in zip(rows_of(base), rows_of(mixture), strict=True):
        assert (a[0], a[1], a[3]) == (b[0], b[1], b[3])
        if a[2] != b[2]:
            assert a[3] == "fiqa"
            differ += 1
    [fiqa] = [s for s in report.sources if s.name == "fiqa"]
    assert fiqa.score_noise == 0.1 and fiqa.relabelled == differ > 0
    assert f"fiqa train x9: 794 rows -> 7146 (score noise 0.1: {differ} copies labelled otherwise)" in "\n".join(
        report.summary_lines())
    assert MixtureConfig.from_dict(noisy.to_dict()) == noisy


@pytest.mark.parametrize("entry, message", [
    ({"name": "fpb", "score_noise": 0.1}, "fpb: score_noise: only the fiqa benchmark has continuous scores"),
    ({"name": "fiqa", "score_noise": 0}, "fiqa: score_noise must be a number > 0 (the score's standard deviation), got 0"),
    ({"name": "fiqa", "score_noise": "wide"}, "fiqa: score_noise must be a number > 0"),
    ({"name": "fiqa", "score_noise": True}, "fiqa: score_noise must be a number > 0"),
    ({"name": "fiqa", "score_noise": float("nan")}, "fiqa: score_noise must be a number > 0"),
    ({"name": "fiqa", "score_noise": 0.1, "label_weights": {"neutral": 2}},
     "fiqa: score_noise: cannot be combined with label_weights"),
])
def test_bad_score_noise_is_named(entry, message):
    with pytest.raises(FinGPTError, match=re.escape(message)):
        MixtureConfig.from_dict({"datasets": [entry]})
