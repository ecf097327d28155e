"""`fingpt-hf export`: merge a LoRA adapter into its base; write safetensors or a GGUF file."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from fingpt_hf.export import DTYPES, FORMATS, GGUF_TYPES

    parser = subparsers.add_parser(
        "export",
        help="merge an adapter into its base model: a plain transformers checkpoint, or GGUF for llama.cpp/Ollama",
        description=(
            "Merge ADAPTER into BASE (peft merge_and_unload) and write DIR: sharded safetensors, tokenizer, "
            "generation config and a README card (loads with AutoModelForCausalLM.from_pretrained(DIR), no peft), "
            "or with --format gguf one GGUF file DIR/model-TYPE.gguf (Llama-architecture models only). "
            "DIR is written beside itself and renamed into place."
        ),
    )
    parser.add_argument("--model", required=True, metavar="BASE",
                        help="base model: local path, Hub id or embedded:smollm2-135m-instruct")
    parser.add_argument("--adapter", required=True, metavar="ADAPTER", help="LoRA adapter directory (or Hub id)")
    parser.add_argument("--output", required=True, metavar="DIR", help="output directory (must be empty or absent)")
    parser.add_argument("--dtype", default="auto", metavar="|".join(DTYPES),
                        help="precision of the merge and of the saved weights; auto keeps the base checkpoint's "
                             "(fp32 merges exactly)")
    parser.add_argument("--format", default="safetensors", metavar="|".join(FORMATS), help="output format (default: safetensors)")
    parser.add_argument("--gguf-type", "--gguf_type", dest="gguf_type", default="f16", metavar="|".join(GGUF_TYPES),
                        help="GGUF tensor type (default: f16; norms are always f32)")
    parser.add_argument("--device", default="cpu", help="device to merge on (default: cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fingpt_hf.export import export_model

    result = export_model(args.model, args.adapter, args.output, dtype=args.dtype, format=args.format,
                          gguf_type=args.gguf_type, overwrite=args.overwrite, device=args.device,
                          echo=lambda line: print(line, file=sys.stderr))
    print(f"wrote {result.output} ({result.dtype}): {', '.join(result.files)}")
    return 0
