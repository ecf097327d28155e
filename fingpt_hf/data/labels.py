"""The three sentiment labels every benchmark is mapped to, and each source's label maps."""

from __future__ import annotations

from statistics import NormalDist

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
INVALID = "invalid"

# financial_phrasebank (Hub ClassLabel order) and the mirror's text labels.
FPB_HUB_LABELS = {0: "negative", 1: "neutral", 2: "positive"}
# zeroshot/twitter-financial-news-sentiment: 0 Bearish, 1 Bullish, 2 Neutral.
TFNS_LABELS = {0: "negative", 1: "positive", 2: "neutral"}
# oliverwang15/news_with_gpt_instructions: FinGPT's nwgi.py collapses the seven labels to three;
# "mildly" counts as neutral there, and we keep that so numbers stay comparable.
NWGI_LABELS = {
    "strong negative": "negative",
    "moderately negative": "negative",
    "mildly negative": "neutral",
    "neutral": "neutral",
    "mildly positive": "neutral",
    "moderately positive": "positive",
    "strong positive": "positive",
}


# FinGPT's fiqa.py cuts FiQA-2018's continuous sentiment score (-1 to 1) at these two points.
FIQA_NEGATIVE_BELOW = -0.1
FIQA_NEUTRAL_BELOW = 0.1


def fiqa_label(score: float) -> str:
    """FinGPT's fiqa.py ``make_label``: < -0.1 negative, < 0.1 neutral, else positive."""
    if score < FIQA_NEGATIVE_BELOW:
        return "negative"
    if score < FIQA_NEUTRAL_BELOW:
        return "neutral"
    return "positive"


def fiqa_label_probabilities(score: float, noise: float) -> tuple[float, float, float]:
    """P(negative), P(neutral), P(positive) of ``fiqa_label(score + e)`` with e ~ N(0, noise^2).

    FiQA-2018's scores are annotators' judgements on a continuous scale, and the neutral band is
    only 0.2 wide: a post scored 0.11 is "positive" and one scored 0.09 "neutral". Reading the
    score as known only to within ``noise`` gives such rows a share of each side's label instead
    of one hard label (rows far from both cuts keep theirs almost surely).
    """
    read = NormalDist(score, noise)
    below_negative, below_neutral = read.cdf(FIQA_NEGATIVE_BELOW), read.cdf(FIQA_NEUTRAL_BELOW)
    return below_negative, below_neutral - below_negative, 1 - below_neutral
