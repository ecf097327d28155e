"""The answer parser: FinGPT's substring rule reproduced exactly, and the strict rule's edge cases."""

from __future__ import annotations

import pytest

from fingpt_hf.errors import FinGPTError
from fingpt_hf.metrics import PARSER_MODES, parse_answer

# (raw answer, strict, fingpt)
CASES = [
    ("positive", "positive", "positive"),
    ("Positive.", "positive", "positive"),
    ("The sentiment is negative", "negative", "negative"),
    ("**NEUTRAL**", "neutral", "neutral"),
    ("  neutral  ", "neutral", "neutral"),
    ("{negative}", "negative", "negative"),
    ("positive, positive", "positive", "positive"),
    ("mildly positive", "positive", "positive"),
    ("neutral/positive", None, "positive"),
    ("negative or neutral", None, "negative"),
    ("Positive. The outlook is negative", None, "positive"),
    ("", None, "neutral"),
    ("   \n\t", None, "neutral"),
    ("I don't know", None, "neutral"),
    ("not positive", None, "positive"),
    ("It isn't negative", None, "negative"),
    ("never neutral", None, "neutral"),
    ("non-negative", None, "negative"),
    ("negatively", None, "negative"),
    ("Positively", None, "positive"),
    ("nonpositive", None, "positive"),
    ("Bearish", None, "neutral"),
    ("Bullish", None, "neutral"),
    ("POSITIVE", "positive", "neutral"),  # FinGPT only checks 'positive' and 'Positive'
    ("NEGATIVE", "negative", "neutral"),
    # A model that does not stop: strict reads the first non-empty line only; FinGPT reads it all.
    ("negative\nInstruction: choose from {negative/neutral/positive}", "negative", "positive"),
    ("\n\n neutral\nInput: shares fell, a negative sign", "neutral", "negative"),
    ("Answer: negative", "negative", "negative"),
]


@pytest.mark.parametrize(("text", "strict", "fingpt"), CASES)
def test_both_modes(text: str, strict: str | None, fingpt: str) -> None:
    assert parse_answer(text, "strict") == strict
    assert parse_answer(text, "fingpt") == fingpt


def _fingpt_change_target(x):
    # Copied from AI4Finance-Foundation/FinGPT fingpt/FinGPT_Benchmark/benchmarks/fpb.py.
    if "positive" in x or "Positive" in x:
        return "positive"
    elif "negative" in x or "Negative" in x:
        return "negative"
    else:
        return "neutral"


def test_fingpt_mode_matches_fingpt_on_real_text(data_dir) -> None:
    """Every real FPB sentence (with its label text, as a chatty model might echo) parses as FinGPT's rule does."""
    lines = (data_dir / "financial_phrasebank" / "Sentences_50Agree.txt").read_text("iso-8859-1").splitlines()
    texts = [line for line in lines if line] + [line.replace("@", " Answer: ") for line in lines if line]
    got = [parse_answer(text, "fingpt") for text in texts]
    assert got == [_fingpt_change_target(text) for text in texts]
    assert set(got) == {"negative", "neutral", "positive"}


def test_strict_default_and_modes() -> None:
    assert PARSER_MODES == ("strict", "fingpt")
    assert parse_answer("neutral/positive") is None  # strict is the default


@pytest.mark.parametrize("mode", ["lenient", "", "STRICT", None])
def test_unknown_mode_is_a_clear_error(mode) -> None:
    with pytest.raises(FinGPTError, match="parser mode"):
        parse_answer("positive", mode)


@pytest.mark.parametrize("text", [None, 1, b"positive"])
def test_non_string_answer_is_a_clear_error(text) -> None:
    with pytest.raises(FinGPTError, match="must be a string"):
        parse_answer(text, "strict")
