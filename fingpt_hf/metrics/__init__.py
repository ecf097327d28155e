"""Answer parsing and FinGPT-style sentiment metrics (scikit-learn), plus the `evaluate` module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingpt_hf.metrics.parsing import PARSER_MODES, fingpt_change_target, parse_answer
from fingpt_hf.metrics.scores import compute_sentiment_metrics

METRIC_PATH = Path(__file__).resolve().parent / "fin_sentiment"

__all__ = [
    "METRIC_PATH",
    "PARSER_MODES",
    "compute_sentiment_metrics",
    "fingpt_change_target",
    "load_metric",
    "parse_answer",
]


def load_metric(**kwargs: Any):
    """``evaluate.load`` the packaged fin_sentiment module (a local path, so it works offline)."""
    import evaluate  # imported here: `evaluate` is slow to import and only this helper needs it

    return evaluate.load(str(METRIC_PATH), **kwargs)
