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
