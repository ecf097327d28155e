"""`fingpt-hf eval`: evaluate a base model or adapter on the FinGPT benchmarks or a user data set.

The options are generated from ``EvalConfig`` (``HfArgumentParser``), the same dataclass that
``recipes/evaluate.py`` fills from YAML, so the two cannot drift apart. Options accept both
``--batch-size`` and ``--batch_size`` spellings.
"""

from __future__ import annotations

import argparse
import dataclasses


def register(subparsers: argparse._SubParsersAction) -> None:
    from transformers import HfArgumentParser

    from fingpt_hf.evaluation.config import EvalConfig

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model (and LoRA adapter) on FPB/FiQA/TFNS/NWGI or a custom data set",
        description="Evaluate a model on FinGPT's sentiment benchmarks. Results go to --output-dir: "
                    "NAME/result.json, NAME/predictions.jsonl, NAME/confusion_matrix.png, results.json, "
                    "results.md. Re-running the same command skips finished data sets.",
        parents=[HfArgumentParser(EvalConfig, add_help=False)],
    )
    parser.set_defaults(func=run_eval)


def config_from_args(args: argparse.Namespace):
    from fingpt_hf.evaluation.config import EvalConfig

    return EvalConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig)})


def run_eval(args: argparse.Namespace) -> int:
    from fingpt_hf.evaluation.runner import run_evaluation

    run_evaluation(config_from_args(args))
    return 0
