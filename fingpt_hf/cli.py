"""`fingpt-hf` command line: sub-commands in the style of huggingface-cli / accelerate.

This module only wires; each command group lives in ``fingpt_hf/commands/``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fingpt_hf import __version__
from fingpt_hf.errors import FinGPTError

# (module under fingpt_hf.commands, help text); each module has register(subparsers).
COMMAND_MODULES = (
    "data",
    "model",
    "eval",
    "compare",
    "push",
    "export",
    "predict",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fingpt-hf",
        description="LoRA instruction tuning and FinGPT-faithful benchmarks for financial sentiment.",
    )
    parser.add_argument("--version", action="version", version=f"fingpt-hf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"fingpt_hf.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except FinGPTError as err:
        print(f"fingpt-hf: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fingpt-hf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
