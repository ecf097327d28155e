"""fin_sentiment: FinGPT-style financial sentiment metrics as a Hugging Face ``evaluate`` module.

Load it offline with ``fingpt_hf.metrics.load_metric()`` or
``evaluate.load("/path/to/fingpt_hf/metrics/fin_sentiment")``. The arithmetic lives in
``fingpt_hf.metrics`` (scikit-learn), so this module and the CLI always agree.
"""

import datasets
import evaluate

from fingpt_hf.errors import FinGPTError
from fingpt_hf.metrics.parsing import PARSER_MODES, parse_answer
from fingpt_hf.metrics.scores import compute_sentiment_metrics

_DESCRIPTION = """\
Accuracy, macro/micro/weighted F1, per-class precision/recall/F1 and the confusion matrix for
three-way financial sentiment (negative/neutral/positive), computed with scikit-learn as in
FinGPT's benchmark scripts. Predictions may be raw model answers, turned into labels by the
"strict" parser (an answer must name exactly one label, else it is invalid and counts as wrong)
or the "fingpt" parser (FinGPT's change_target substring rule, never invalid).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): model answers (the text after "Answer: "), or labels when
        `parser="none"` (then "invalid" marks an unparsed answer; use the string, not `None`,
        which `evaluate` rejects as the first item of a batch).
    references (`list` of `str`): gold labels, each one of "negative", "neutral", "positive".
    parser (`str`, defaults to "strict"): "strict", "fingpt" or "none".
Returns:
    accuracy, f1_macro, f1_micro, f1_weighted, invalid_rate (floats in [0, 1]),
    per_class ({label: {precision, recall, f1, support}}),
    confusion_matrix ({labels, matrix}; rows gold, columns predicted, "invalid" last).
Examples:
    >>> metric = evaluate.load("fingpt_hf/metrics/fin_sentiment")
    >>> metric.compute(predictions=["Positive.", "neutral/positive"], references=["positive", "neutral"])["accuracy"]
    0.5
"""

_CITATION = """\
@article{wang2023fingptbenchmark,
  title={FinGPT: Instruction Tuning Benchmark for Open-Source Large Language Models in Financial Datasets},
  author={Wang, Neng and Yang, Hongyang and Wang, Christina Dan},
  journal={arXiv preprint arXiv:2310.04793},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FinSentiment(evaluate.Metric):
    """FinGPT-style sentiment metrics over raw answers or labels."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/AI4Finance-Foundation/FinGPT/tree/master/fingpt/FinGPT_Benchmark"],
        )

    def _compute(self, predictions, references, parser="strict"):
        if parser == "none":
            labels = list(predictions)
        elif parser in PARSER_MODES:
            labels = [parse_answer(answer, parser) for answer in predictions]
        else:
            raise FinGPTError(f"unknown parser {parser!r}; choose one of {', '.join(PARSER_MODES)}, none")
        return compute_sentiment_metrics(labels, references)
