"""The four benchmarks on the real mirror: split sizes, order, labels, and Hub-path equivalence."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from fingpt_hf.data import sources
from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.labels import LABELS, NWGI_LABELS
from fingpt_hf.data.prompts import NEWS_INSTRUCTION, TWEET_INSTRUCTION

FPB_FIRST_TEST = ("L&T has also made a commitment to redeem the remaining shares by the end of 2011 .", "neutral")
FPB_LAST_TEST = ("The company expects its net sales in the first half of 2008 to reach the previous year 's level .",
                 "positive")
# sha256 of "input\toutput" lines of the 1212-row FPB test split, joined with "\n".
FPB_TEST_SHA256 = "fc2fc9529f931bacd4ef3a167e27601dc47ea86984733954e14482154c4470f6"


def distribution(ds: datasets.Dataset) -> dict[str, int]:
    counts = Counter(ds["output"])
    return {label: counts[label] for label in LABELS}


def raw_fpb_rows(data_dir: Path) -> list[tuple[str, str]]:
    """The mirror file read without the project's reader: ISO-8859-1, split at the last '@'."""
    text = (data_dir / "financial_phrasebank" / "Sentences_50Agree.txt").read_bytes().decode("iso-8859-1")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    rows = []
    for line in lines:
        sentence, label = line.rsplit("@", 1)
        rows.append((sentence, label.strip()))
    return rows


# --- FPB ---------------------------------------------------------------------------------------

def test_fpb_split_matches_an_independent_numpy_permutation(data_dir):
    raw = raw_fpb_rows(data_dir)
    assert len(raw) == 4846
    # datasets' train_test_split: test_size defaults to 0.25, n_test = ceil(0.25 * n),
    # permutation = default_rng(seed).permutation(n), test = permutation[:n_test], train = the rest.
    n_test = math.ceil(0.25 * len(raw))
    permutation = np.random.default_rng(42).permutation(len(raw))
    expected_test = [raw[i] for i in permutation[:n_test]]
    expected_train = [raw[i] for i in permutation[n_test:]]

    test = load_benchmark("fpb", "test", data_dir)
    train = load_benchmark("fpb", "train", data_dir)
    assert (len(train), len(test)) == (3634, 1212)
    assert list(zip(test["input"], test["output"])) == expected_test
    assert list(zip(train["input"], train["output"])) == expected_train
    assert set(test["instruction"]) == {NEWS_INSTRUCTION} and set(test["dataset"]) == {"fpb"}


def test_fpb_test_split_is_pinned(data_dir):
    test = load_benchmark("fpb", "test", data_dir)
    assert (test[0]["input"], test[0]["output"]) == FPB_FIRST_TEST
    assert (test[-1]["input"], test[-1]["output"]) == FPB_LAST_TEST
    joined = "\n".join(f"{a}\t{b}" for a, b in zip(test["input"], test["output"]))
    assert hashlib.sha256(joined.encode("utf-8")).hexdigest() == FPB_TEST_SHA256
    assert distribution(test) == {"negative": 145, "neutral": 729, "positive": 338}
    assert distribution(load_benchmark("fpb", "train", data_dir)) == {
        "negative": 459, "neutral": 2150, "positive": 1025}


# --- FiQA --------------------------------------------------------------------------------------

def test_fiqa_split_sizes_order_and_labels(data_dir):
    rows = []
    for split in ("train", "validation", "test"):
        with open(data_dir / "fiqa-2018" / f"{split}.csv", encoding="utf-8", newline="") as handle:
            rows += list(csv.DictReader(handle))
    assert len(rows) == 1213
    n_test = math.ceil(0.226 * len(rows))
    permutation = np.random.default_rng(42).permutation(len(rows))

    def label(score: str) -> str:
        value = float(score)
        return "negative" if value < -0.1 else "neutral" if value < 0.1 else "positive"

    test, train = load_benchmark("fiqa", "test", data_dir), load_benchmark("fiqa", "train", data_dir)
    assert (len(train), len(test)) == (938, 275)
    expected = [rows[i] for i in permutation[:n_test]]
    assert test["input"] == [r["sentence"] for r in expected]
    assert test["output"] == [label(r["sentiment_score"]) for r in expected]
    assert test["instruction"] == [TWEET_INSTRUCTION if r["format"] == "post" else NEWS_INSTRUCTION
                                   for r in expected]
    assert train["input"] == [rows[i]["sentence"] for i in permutation[n_test:]]
    assert distribution(train) == {"negative": 291, "neutral": 95, "positive": 552}
    assert distribution(test) == {"negative": 88, "neutral": 21, "positive": 166}


# --- TFNS --------------------------------------------------------------------------------------

def test_tfns_sizes_and_label_mapping(data_dir):
    folder = data_dir / "twitter-financial-news-sentiment"
    for split, file, size, dist in (
        ("train", "sent_train.csv", 9543, {"negative": 1442, "neutral": 6178, "positive": 1923}),
        ("test", "sent_valid.csv", 2388, {"negative": 347, "neutral": 1566, "positive": 475}),
    ):
        ds = load_benchmark("tfns", split, data_dir)
        with open(folder / file, encoding="utf-8", newline="") as handle:
            raw = list(csv.DictReader(handle))
        assert len(ds) == len(raw) == size
        # 0 Bearish -> negative, 1 Bullish -> positive, 2 Neutral -> neutral, in file order.
        mapping = {"0": "negative", "1": "positive", "2": "neutral"}
        assert ds["input"] == [r["text"] for r in raw]
        assert ds["output"] == [mapping[r["label"]] for r in raw]
        assert distribution(ds) == dist
        assert set(ds["instruction"]) == {TWEET_INSTRUCTION}


# --- NWGI --------------------------------------------------------------------------------------

def test_nwgi_test_collapses_seven_labels_to_three(data_dir):
    lines = (data_dir / "news_with_gpt_instructions" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    raw = [json.loads(line) for line in lines if line.strip()]
    ds = load_benchmark("nwgi", "test", data_dir)
    assert len(ds) == len(raw) == 4047
    assert ds["input"] == [r["news"] for r in raw]
    raw_counts = Counter(r["label"] for r in raw)
    assert set(raw_counts) == set(NWGI_LABELS)
    # FinGPT's nwgi.py: strong/moderately -> polar, mildly and neutral -> neutral.
    collapsed = {
        "negative": raw_counts["strong negative"] + raw_counts["moderately negative"],
        "neutral": raw_counts["mildly negative"] + raw_counts["neutral"] + raw_counts["mildly positive"],
        "positive": raw_counts["moderately positive"] + raw_counts["strong positive"],
    }
    assert distribution(ds) == collapsed == {"negative": 808, "neutral": 1671, "positive": 1568}
    for row, source in zip(ds.select(range(200)), raw[:200]):
        assert row["output"] == NWGI_LABELS[source["label"]]


def test_nwgi_train_offline_is_a_clear_missing_split_error(data_dir):
    with pytest.raises(MissingSplitError) as err:
        load_benchmark("nwgi", "train", data_dir)
    message = str(err.value)
    assert "not in the local data mirror" in message and "4,047-row test split" in message
    assert "oliverwang15/news_with_gpt_instructions" in message


# --- Hub path equivalence ----------------------------------------------------------------------
# The Hub path is tested against the file layouts the Hub serves for each data set, written here
# from the raw mirror files with the csv/json modules (not the project's readers), and loaded by
# `datasets.load_dataset` from a local directory exactly as it resolves a Hub repository:
#   financial_phrasebank: a script data set; datasets >= 4 reads its parquet export
#     (refs/convert/parquet: sentences_50agree/train/0000.parquet, label a ClassLabel);
#   pauri32/fiqa-2018: data/{train,validation,test}-00000-of-00001.parquet;
#   zeroshot/twitter-financial-news-sentiment: the two CSV files sent_train.csv, sent_valid.csv;
#   oliverwang15/news_with_gpt_instructions: data/test-00000-of-00001.parquet with more columns.

def _csv_records(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def hub_repos(data_dir, tmp_path_factory) -> Path:
    """Local copies of the four Hub repositories, in the layouts listed above."""
    root = tmp_path_factory.mktemp("hub-repos")
    fpb = root / "financial_phrasebank"
    (fpb / "sentences_50agree" / "train").mkdir(parents=True)
    sentences, labels = zip(*raw_fpb_rows(data_dir))
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    datasets.Dataset.from_dict({"sentence": list(sentences), "label": [features["label"].str2int(x) for x in labels]},
                               features=features).to_parquet(str(fpb / "sentences_50agree" / "train" / "0000.parquet"))
    # The parquet export's README declares one config per folder, as the Hub writes it.
    (fpb / "README.md").write_text("---\nconfigs:\n- config_name: sentences_50agree\n  data_files:\n"
                                   "  - split: train\n    path: sentences_50agree/train/*.parquet\n---\n")
    fiqa = root / "pauri32__fiqa-2018" / "data"
    fiqa.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        rows = _csv_records(data_dir / "fiqa-2018" / f"{split}.csv")
        columns = {key: [r[key] for r in rows] for key in rows[0]}
        columns["sentiment_score"] = [float(x) for x in columns["sentiment_score"]]
        columns["label"] = [int(x) for x in columns["label"]]
        datasets.Dataset.from_dict(columns).to_parquet(str(fiqa / f"{split}-00000-of-00001.parquet"))
    tfns = root / "zeroshot__twitter-financial-news-sentiment"
    tfns.mkdir()
    for name in ("sent_train.csv", "sent_valid.csv"):
        (tfns / name).write_bytes((data_dir / "twitter-financial-news-sentiment" / name).read_bytes())
    nwgi = root / "oliverwang15__news_with_gpt_instructions" / "data"
    nwgi.mkdir(parents=True)
    records = [json.loads(line) for line in (data_dir / "news_with_gpt_instructions" / "test.jsonl").open()]
    datasets.Dataset.from_dict({
        "prompt": [f"Instruction: ...\nInput: {r['news']}" for r in records], "out": [r["label"] for r in records],
        "news": [r["news"] for r in records], "label": [r["label"] for r in records],
    }).to_parquet(str(nwgi / "test-00000-of-00001.parquet"))
    return root


@pytest.fixture()
def hub_loader(hub_repos, tmp_path, monkeypatch) -> list[tuple]:
    """``datasets.load_dataset`` resolving Hub ids to the local repositories; returns its calls."""
    real = datasets.load_dataset
    calls: list[tuple] = []

    def load_dataset(repo_id, config=None, revision=None, **kwargs):
        calls.append((repo_id, config, revision))
        if repo_id == "financial_phrasebank" and revision != "refs/convert/parquet":
            raise RuntimeError("Dataset scripts are no longer supported, but found financial_phrasebank.py")
        return real(str(hub_repos / repo_id.replace("/", "__")), config, cache_dir=str(tmp_path / "cache"), **kwargs)

    monkeypatch.setattr("datasets.load_dataset", load_dataset)  # sources imports datasets where used
    monkeypatch.delenv("FINGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return calls


def test_hub_layouts_give_the_mirror_rows(hub_loader, data_dir):
    assert sources.resolve_data_dir(None) is None
    for name, split in [("fpb", "test"), ("fpb", "train"), ("fiqa", "train"), ("fiqa", "test"), ("tfns", "train"),
                        ("tfns", "test"), ("nwgi", "test")]:
        hub_rows = load_benchmark(name, split)
        mirror_rows = load_benchmark(name, split, data_dir)
        assert hub_rows.features == mirror_rows.features, (name, split)
        assert hub_rows.to_dict() == mirror_rows.to_dict(), (name, split)
    assert ("financial_phrasebank", "sentences_50agree", "refs/convert/parquet") in hub_loader
    assert ("oliverwang15/news_with_gpt_instructions", None, None) in hub_loader


def test_offline_without_a_data_dir_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("FINGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(sources.FinGPTError, match="no data directory given and the Hub is offline"):
        load_benchmark("fpb", "test")
