#!/usr/bin/env python
"""How long FinGPT's prompts are in a model's tokens, and how many rows a ``max_length`` cuts.

A lever for the CPU recipe is a longer ``max_length`` (FiQA-SA's posts were thought to be cut). This
measures it instead of training on it: every row of every benchmark split, as training and scoring
build it (``fingpt_hf.families.tokenization.prompt_ids`` with the recipe's prompt style), counted
against the recipe's ``max_length`` less the room kept for the longest answer (``answer_room``).
Reading the test rows here looks at their texts' lengths only, never at labels or scores.

    python benchmarks/prompt_lengths.py --json benchmarks/results/prompt_lengths/smollm2-135m.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES, load_benchmark, load_train_rows
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.prompts import adds_special_tokens, format_prompt
from fingpt_hf.families.tokenization import answer_room, prompt_ids
from fingpt_hf.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "smollm2-135m" / "sft_lora.yaml"
SPLITS = ("train", "validation", "test")  # train: the rows the mixture draws from (less validation)


def split_lengths(rows, tokenizer, family, style: str, limit: int) -> dict[str, Any]:
    """Prompt lengths of one split, and how many prompts are longer than ``limit`` tokens (the cut)."""
    special = adds_special_tokens(style)
    lengths = sorted(len(prompt_ids(format_prompt(row, style=style, tokenizer=tokenizer), tokenizer, family, special))
                     for row in rows)
    return {"rows": len(lengths), "median": statistics.median_high(lengths),
            "p95": lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))], "max": lengths[-1],
            "cut": sum(n > limit for n in lengths)}


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoConfig, AutoTokenizer

    from fingpt_hf.families.default_model import resolve_model_path
    from fingpt_hf.families.registry import get_family
    from fingpt_hf.families.tokenization import prepare_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the training recipe (model, prompt style, max_length)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    args = parser.parse_args(argv)
    recipe = yaml.safe_load(args.recipe.read_text())
    model = resolve_model_path(recipe["model_name_or_path"])
    family = get_family(AutoConfig.from_pretrained(model))
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model), family)
    style, max_length = recipe.get("prompt_style") or family.prompt_style, int(recipe["max_length"])
    room = answer_room(tokenizer, family)
    sets: dict[str, dict[str, Any]] = {name: {} for name in BENCHMARK_NAMES}
    for name in BENCHMARK_NAMES:
        for split in SPLITS:
            try:
                rows = load_train_rows(name) if split == "train" else load_benchmark(name, split)
            except MissingSplitError as err:
                sets[name][split] = {"missing": str(err)}
            else:
                sets[name][split] = split_lengths(rows, tokenizer, family, style, max_length - room)
    result = {"schema_version": 1, "recipe": str(args.recipe.resolve().relative_to(ROOT)),
              "model": recipe["model_name_or_path"], "prompt_style": style, "max_length": max_length,
              "answer_room": room, "prompt_limit": max_length - room, "sets": sets,
              "command": "python benchmarks/prompt_lengths.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    atomic_write_json(args.json, result)
    for name, splits in sets.items():
        for split, figures in splits.items():
            print(name, split, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
