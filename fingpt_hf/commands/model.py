"""`fingpt-hf model ...`: manage the embedded default model."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="Manage models (the embedded default model).")
    commands = parser.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    prepare = commands.add_parser(
        "prepare-default",
        help="Convert the embedded SmolLM2-135M-Instruct GGUF into a safetensors checkpoint (once) and print its path.",
    )
    prepare.add_argument(
        "--cache-dir",
        default=None,
        help="Cache root (default: $FINGPT_HF_CACHE or ~/.cache/fingpt_hf); the model goes in a sub-folder.",
    )
    prepare.add_argument("--force", action="store_true", help="Convert again even if a current conversion exists.")
    prepare.set_defaults(func=_prepare_default)


def _prepare_default(args: argparse.Namespace) -> int:
    from fingpt_hf.families.default_model import prepare_default_model

    print(prepare_default_model(cache_dir=args.cache_dir, force=args.force))
    return 0
