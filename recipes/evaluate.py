#!/usr/bin/env python
"""Evaluate a model or LoRA adapter on FinGPT's sentiment benchmarks from a YAML recipe.

    python recipes/evaluate.py --config recipes/smollm2-135m/eval.yaml [--any_field value ...]

Every key is a field of fingpt_hf.evaluation.config.EvalConfig, the dataclass behind
`fingpt-hf eval`, so the recipe and the command take the same options; command-line values
override the YAML. An unknown key is an error. The logic lives in fingpt_hf.evaluation.runner.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from trl import TrlParser

    from fingpt_hf.errors import FinGPTError
    from fingpt_hf.evaluation.config import EvalConfig
    from fingpt_hf.evaluation.runner import run_evaluation

    try:
        (config,) = TrlParser(EvalConfig).parse_args_and_config(args=argv)
        run_evaluation(config)
    except FinGPTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
