"""The three sentiment labels every benchmark is mapped to, and each source's label maps."""

from __future__ import annotations

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


def fiqa_label(score: float) -> str:
    """FinGPT's fiqa.py ``make_label``: < -0.1 negative, < 0.1 neutral, else positive."""
    if score < -0.1:
        return "negative"
    if score < 0.1:
        return "neutral"
    return "positive"
