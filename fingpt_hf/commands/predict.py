"""`fingpt-hf predict`: label the rows of a CSV, JSONL or Parquet file (or JSONL on stdin).

The options are generated from ``PredictConfig`` (``HfArgumentParser``), like ``fingpt-hf eval``'s
from ``EvalConfig``; both ``--chunk-size`` and ``--chunk_size`` spellings work.
"""

from __future__ import annotations

import argparse
import dataclasses


def register(subparsers: argparse._SubParsersAction) -> None:
    from transformers import HfArgumentParser

    from fingpt_hf.prediction.config import PredictConfig

    parser = subparsers.add_parser(
        "predict",
        help="label your own rows (CSV/JSONL/Parquet) with a model or LoRA adapter",
        description="Add label, prob_negative, prob_neutral, prob_positive (and raw_answer in generate mode) "
                    "to every row of --input and write them to --output, rows in input order. Finished chunks "
                    "are kept in OUTPUT.partial/; re-running the same command after an interruption resumes there.",
        parents=[HfArgumentParser(PredictConfig, add_help=False)],
    )
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from fingpt_hf.prediction.config import PredictConfig
    from fingpt_hf.prediction.runner import run_prediction

    config = PredictConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PredictConfig)})
    run_prediction(config)
    return 0
