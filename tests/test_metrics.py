"""Metrics against scikit-learn on real labels and real predictions, directly and through `evaluate`."""

from __future__ import annotations

import csv
import json
import math
import warnings

import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from fingpt_hf.data.labels import LABELS, TFNS_LABELS
from fingpt_hf.errors import FinGPTError
from fingpt_hf.metrics import compute_sentiment_metrics, load_metric, parse_answer

TOL = 1e-9


def _fpb(data_dir):
    lines = (data_dir / "financial_phrasebank" / "Sentences_50Agree.txt").read_text("iso-8859-1").splitlines()
    pairs = [line.rsplit("@", 1) for line in lines if line.strip()]
    return [text for text, _ in pairs], [label for _, label in pairs]


def _tfns(data_dir):
    with open(data_dir / "twitter-financial-news-sentiment" / "sent_valid.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [row["text"] for row in rows], [TFNS_LABELS[int(row["label"])] for row in rows]


def _model_like(label: str, i: int) -> str:
    """Rewrite a predicted label the way a generating LLM might answer."""
    if i % 13 == 0:
        return ""
    if i % 11 == 0:
        return "neutral/positive"
    if i % 7 == 0:
        return label.capitalize() + "."
    if i % 5 == 0:
        return f"The sentiment is {label}\nInstruction: choose from {{negative/neutral/positive}}"
    return label


@pytest.fixture(scope="module", params=["fpb", "tfns"])
def run(request, data_dir):
    """Gold labels of a held-out quarter and raw answers from a TF-IDF + logistic regression model."""
    texts, gold = {"fpb": _fpb, "tfns": _tfns}[request.param](data_dir)
    train = [i for i in range(len(texts)) if i % 4]
    test = [i for i in range(len(texts)) if i % 4 == 0]
    vectorizer = TfidfVectorizer(min_df=2)
    features = vectorizer.fit_transform([texts[i] for i in train])
    model = LogisticRegression(max_iter=1000).fit(features, [gold[i] for i in train])
    predicted = model.predict(vectorizer.transform([texts[i] for i in test])).tolist()
    raw = [_model_like(label, i) for i, label in enumerate(predicted)]
    return {"gold": [gold[i] for i in test], "predicted": predicted, "raw": raw}


def _sklearn_reference(y_true, y_pred):
    """The numbers straight from scikit-learn, with unparsed answers as the class 'invalid'."""
    y_pred = ["invalid" if p is None else p for p in y_pred]
    labels = list(LABELS)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "f1_macro": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "f1_micro": f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0),
        "f1_weighted": f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
        "invalid_rate": y_pred.count("invalid") / len(y_pred),
        "per_class": {
            label: {"precision": p[k], "recall": r[k], "f1": f[k], "support": int(s[k])}
            for k, label in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": labels + ["invalid"],
            "matrix": confusion_matrix(y_true, y_pred, labels=labels + ["invalid"]).tolist(),
        },
    }


def _assert_close(got, want, path="metrics"):
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for key in want:
            _assert_close(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for k, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{path}[{k}]")
    elif isinstance(want, float):
        assert type(got) is float and math.isclose(got, want, rel_tol=0, abs_tol=TOL), (path, got, want)
    else:
        assert type(got) is type(want) and got == want, (path, got, want)


def test_strict_metrics_match_sklearn_on_real_predictions(run):
    parsed = [parse_answer(answer, "strict") for answer in run["raw"]]
    assert 0.05 < parsed.count(None) / len(parsed) < 0.3  # "" and "neutral/positive" answers are invalid
    metrics = compute_sentiment_metrics(parsed, run["gold"])
    _assert_close(metrics, _sklearn_reference(run["gold"], parsed))
    json.dumps(metrics)

    # Cross-checks from counts, independent of how the library computed them.
    matrix = metrics["confusion_matrix"]["matrix"]
    n, correct = len(parsed), sum(matrix[k][k] for k in range(len(LABELS)))
    invalid = sum(row[-1] for row in matrix)
    assert len(matrix) == 4 and all(len(row) == 4 for row in matrix) and matrix[-1] == [0, 0, 0, 0]
    assert sum(map(sum, matrix)) == n and invalid == parsed.count(None)
    assert math.isclose(metrics["accuracy"], correct / n, abs_tol=TOL)
    assert math.isclose(metrics["invalid_rate"], invalid / n, abs_tol=TOL)
    precision = correct / (n - invalid)  # micro precision: over valid answers only
    recall = metrics["accuracy"]  # micro recall: every gold label is a real label
    assert math.isclose(metrics["f1_micro"], 2 * precision * recall / (precision + recall), abs_tol=TOL)
    assert metrics["f1_micro"] > metrics["accuracy"]
    for k, label in enumerate(LABELS):
        assert metrics["per_class"][label]["support"] == sum(matrix[k]) == run["gold"].count(label)
    assert math.isclose(metrics["f1_macro"], sum(c["f1"] for c in metrics["per_class"].values()) / 3, abs_tol=TOL)


def test_fingpt_mode_reproduces_fingpt_scores(run):
    """FinGPT's pipeline: change_target on answers, then sklearn without a labels argument."""
    parsed = [parse_answer(answer, "fingpt") for answer in run["raw"]]
    metrics = compute_sentiment_metrics(parsed, run["gold"])
    _assert_close(metrics, _sklearn_reference(run["gold"], parsed))
    assert metrics["invalid_rate"] == 0.0
    assert math.isclose(metrics["accuracy"], accuracy_score(run["gold"], parsed), abs_tol=TOL)
    for average in ("macro", "micro", "weighted"):
        assert math.isclose(metrics[f"f1_{average}"], f1_score(run["gold"], parsed, average=average), abs_tol=TOL)
    assert math.isclose(metrics["f1_micro"], metrics["accuracy"], abs_tol=TOL)


def test_clean_labels_give_the_model_scores(run):
    metrics = compute_sentiment_metrics(run["predicted"], run["gold"])
    _assert_close(metrics, _sklearn_reference(run["gold"], run["predicted"]))
    assert metrics["accuracy"] > 0.6  # a real model, better than the majority class on both sets
    assert metrics["confusion_matrix"]["matrix"][-1] == [0, 0, 0, 0]
    assert [row[-1] for row in metrics["confusion_matrix"]["matrix"]] == [0, 0, 0, 0]


@pytest.fixture(scope="module")
def metric():
    return load_metric()


@pytest.mark.parametrize("parser", ["strict", "fingpt"])
def test_evaluate_module_matches_library(metric, run, parser):
    got = metric.compute(predictions=run["raw"], references=run["gold"], parser=parser)
    want = compute_sentiment_metrics([parse_answer(a, parser) for a in run["raw"]], run["gold"])
    _assert_close(got, want)
    _assert_close(got, _sklearn_reference(run["gold"], [parse_answer(a, parser) for a in run["raw"]]))


def test_evaluate_module_with_labels_and_batches(metric, run):
    labels = [parse_answer(a, "strict") for a in run["raw"]]
    as_text = ["invalid" if p is None else p for p in labels]  # how predictions.jsonl stores them
    half = len(labels) // 2
    metric.add_batch(predictions=as_text[:half], references=run["gold"][:half])
    metric.add_batch(predictions=as_text[half:], references=run["gold"][half:])
    _assert_close(metric.compute(parser="none"), _sklearn_reference(run["gold"], labels))


def test_evaluate_module_rejects_unknown_parser(metric):
    with pytest.raises(FinGPTError, match="unknown parser 'regex'"):
        metric.compute(predictions=["positive"], references=["positive"], parser="regex")


def test_missing_label_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compute_sentiment_metrics(["positive", "positive", None], ["positive", "neutral", "neutral"])
    assert metrics["per_class"]["negative"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["confusion_matrix"]["matrix"] == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert math.isclose(metrics["accuracy"], 1 / 3) and math.isclose(metrics["invalid_rate"], 1 / 3)


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        (["positive"], ["positive", "neutral"], "1 predictions but 2 references"),
        ([], [], "zero examples"),
        (["positive", "Positive."], ["positive", "neutral"], r"predictions\[1\] is 'Positive.'"),
        (["positive", "neutral"], ["positive", "invalid"], r"references\[1\] is 'invalid'"),
        (["positive"], [None], r"references\[0\] is None"),
        (["positive"], [2], r"references\[0\] is 2"),
    ],
)
def test_bad_input_names_the_row(predictions, references, message):
    with pytest.raises(FinGPTError, match=message):
        compute_sentiment_metrics(predictions, references)
