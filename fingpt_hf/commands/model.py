"""`fingpt-hf model ...`: the embedded default model, and native conversions of the seed models."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="Manage models (the embedded default, seed-model conversion).")
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

    convert = commands.add_parser(
        "convert",
        help="Convert Baichuan2-7B, ChatGLM2-6B or Qwen (v1) from their original Hub layout into a native "
        "transformers checkpoint (no remote code is run, now or later).",
    )
    convert.add_argument("source", metavar="SRC", help="A local checkpoint directory or a Hub id (owner/name).")
    convert.add_argument("--output", required=True, help="Directory to write the native checkpoint to.")
    convert.add_argument("--revision", default=None, help="Hub commit, branch or tag (Hub ids only; recorded as the commit).")
    convert.add_argument("--dtype", default="auto", choices=("auto", "float16", "bfloat16", "float32"),
                         help="dtype of the written weights (auto: as stored in the source).")
    convert.add_argument("--max-shard-size", type=float, default=2.0, metavar="GB",
                         help="Largest output shard in GB (default 2); memory use is about one source and one output shard.")
    convert.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output directory.")
    convert.set_defaults(func=_convert)


def _prepare_default(args: argparse.Namespace) -> int:
    from fingpt_hf.families.default_model import prepare_default_model

    print(prepare_default_model(cache_dir=args.cache_dir, force=args.force))
    return 0


def _convert(args: argparse.Namespace) -> int:
    import logging

    from fingpt_hf.conversion.convert import convert_checkpoint
    from fingpt_hf.errors import FinGPTError

    if not args.max_shard_size > 0:
        raise FinGPTError(f"--max-shard-size {args.max_shard_size}: must be more than 0")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(convert_checkpoint(args.source, args.output, revision=args.revision, dtype=args.dtype,
                             overwrite=args.overwrite, max_shard_bytes=int(args.max_shard_size * 1024**3)))
    return 0
