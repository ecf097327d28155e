"""Sentiment metrics, computed by scikit-learn exactly as FinGPT's benchmark scripts do.

FinGPT calls ``accuracy_score`` and ``f1_score(average="macro"|"micro"|"weighted")`` on label
strings. We do the same, with two choices that matter only when a prediction is invalid
(``None`` / ``"invalid"``, which FinGPT's parser never produces):

* An invalid prediction is its own class, ``"invalid"``: it is always wrong, it lowers accuracy
  and the recall of its gold class, and it is the last column of the confusion matrix.
* Every F1/precision/recall passes ``labels=LABELS`` to scikit-learn, so averages run over the
  three real labels only and ``"invalid"`` (never a gold label) is not averaged in as a class with
  F1 0. Consequence for ``f1_micro``: its recall is accuracy, but its precision counts only the
  valid answers, so with invalid answers ``f1_micro`` is above ``accuracy``; without them the two
  are equal, as in FinGPT.

``zero_division=0`` gives the value scikit-learn's default gives (0), without its warning. With
all three labels present in the gold labels (true for every FinGPT benchmark) macro F1 equals
FinGPT's, which averages over the labels seen in gold and predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from fingpt_hf.data.labels import INVALID, LABELS
from fingpt_hf.errors import FinGPTError


def _normalise(values: Sequence[Any], allowed: Sequence[str], name: str, allow_invalid: bool) -> list[str]:
    out = []
    for index, value in enumerate(values):
        if allow_invalid and (value is None or value == INVALID):
            out.append(INVALID)
        elif isinstance(value, str) and value in allowed:
            out.append(value)
        else:
            extra = f", None or {INVALID!r}" if allow_invalid else ""
            raise FinGPTError(f"{name}[{index}] is {value!r}; expected one of {list(allowed)}{extra}")
    return out


def compute_sentiment_metrics(
    predictions: Sequence[str | None],
    references: Sequence[str],
    labels: Sequence[str] = LABELS,
) -> dict[str, Any]:
    """Accuracy, F1 (macro/micro/weighted), per-class scores and the confusion matrix.

    ``predictions`` are labels, or ``None``/``"invalid"`` for unparsed answers; ``references``
    are gold labels. The result is the ``metrics`` block of the results schema, JSON-ready.
    """
    labels = list(labels)
    if len(predictions) != len(references):
        raise FinGPTError(f"got {len(predictions)} predictions but {len(references)} references")
    if not references:
        raise FinGPTError("cannot compute metrics on zero examples")
    y_pred = _normalise(predictions, labels, "predictions", allow_invalid=True)
    y_true = _normalise(references, labels, "references", allow_invalid=False)

    def f1(average: str) -> float:
        return float(f1_score(y_true, y_pred, labels=labels, average=average, zero_division=0))

    precision, recall, f1_per_class, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    matrix_labels = labels + [INVALID]
    matrix = confusion_matrix(y_true, y_pred, labels=matrix_labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": f1("macro"),
        "f1_micro": f1("micro"),
        "f1_weighted": f1("weighted"),
        "invalid_rate": y_pred.count(INVALID) / len(y_pred),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1_per_class[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        # Square so one label list names rows (gold) and columns (predicted); the "invalid" row is
        # always zeros because no gold label is invalid.
        "confusion_matrix": {"labels": matrix_labels, "matrix": matrix.astype(int).tolist()},
    }
