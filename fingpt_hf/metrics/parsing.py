"""Turn a model's generated answer into a sentiment label.

Two rules, both applied to the answer only (the text generated after ``"Answer: "``):

``"fingpt"``
    FinGPT's own ``change_target`` from ``fingpt/FinGPT_Benchmark/benchmarks/{fpb,fiqa,tfns,nwgi}.py``
    (AI4Finance-Foundation/FinGPT)::

        def change_target(x):
            if 'positive' in x or 'Positive' in x:
                return 'positive'
            elif 'negative' in x or 'Negative' in x:
                return 'negative'
            else:
                return 'neutral'

    It is a plain substring test over the whole answer, so it never fails: ``""`` and
    ``"I don't know"`` become ``neutral``, ``"neutral/positive"`` and ``"not positive"`` become
    ``positive``, ``"POSITIVE"`` becomes ``neutral``. Reproduced exactly, so our numbers compare with
    FinGPT's published ones.

``"strict"``
    An answer counts only if it clearly names one label:

    * only the first non-empty line is read, because a model that does not stop often goes on
      with a new ``Instruction: ... {negative/neutral/positive}`` block that names every label;
    * labels are whole words, any case (``"Positive."``, ``"The sentiment is negative"``,
      ``"**NEUTRAL**"``); ``"negatively"``, ``"Bearish"`` or ``"Bullish"`` name no label;
    * the line must name exactly one distinct label: ``"neutral/positive"`` is invalid,
      ``"positive, positive"`` is ``positive``;
    * a negated label (``"not positive"``, ``"isn't negative"``, ``"non-negative"``) is invalid,
      because it does not say which label the model means.

    Anything else is ``None`` (written ``"invalid"`` in files) and counts as wrong in the metrics.
"""

from __future__ import annotations

import re
from typing import Literal

from fingpt_hf.data.labels import LABELS
from fingpt_hf.errors import FinGPTError

ParserMode = Literal["strict", "fingpt"]
PARSER_MODES: tuple[str, ...] = ("strict", "fingpt")

_LABEL_RE = re.compile(r"\b(" + "|".join(LABELS) + r")\b", re.IGNORECASE)
_NEGATED_RE = re.compile(r"(?:(?:\bnot|\bnever|n't)\s+|\bnon-)(?:" + "|".join(LABELS) + r")\b", re.IGNORECASE)


def fingpt_change_target(text: str) -> str:
    """FinGPT's ``change_target``, verbatim in behaviour (see the module docstring)."""
    if "positive" in text or "Positive" in text:
        return "positive"
    elif "negative" in text or "Negative" in text:
        return "negative"
    else:
        return "neutral"


def _strict(text: str) -> str | None:
    line = next((line for line in text.splitlines() if line.strip()), "")
    if _NEGATED_RE.search(line):
        return None
    found = {match.lower() for match in _LABEL_RE.findall(line)}
    return found.pop() if len(found) == 1 else None


def parse_answer(text: str, mode: ParserMode = "strict") -> str | None:
    """Return the label in LABELS that ``text`` (a generated answer) names, or ``None`` if invalid."""
    if not isinstance(text, str):
        raise FinGPTError(f"parse_answer: the answer must be a string, got {type(text).__name__}: {text!r}")
    if mode == "strict":
        return _strict(text)
    if mode == "fingpt":
        return fingpt_change_target(text)
    raise FinGPTError(f"unknown parser mode {mode!r}; choose one of {', '.join(PARSER_MODES)}")
