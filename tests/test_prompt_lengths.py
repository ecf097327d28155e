"""benchmarks/prompt_lengths.py: its committed figures come out again, and its "cut" is the cut training makes."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark_script
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "benchmarks" / "results" / "prompt_lengths" / "smollm2-135m.json"


def test_committed_prompt_lengths_are_measured_again(data_dir, default_model_path, tmp_path):
    script = load_benchmark_script("prompt_lengths")
    out = tmp_path / "lengths.json"
    assert script.main(["--json", str(out)]) == 0
    fresh, committed = json.loads(out.read_text()), json.loads(COMMITTED.read_text())
    assert {k: v for k, v in fresh.items() if k != "command"} == {k: v for k, v in committed.items() if k != "command"}


def test_cut_rows_are_the_rows_training_shortens(data_dir, default_model_path):
    """A row counts as cut exactly when the training tokenization at max_length drops prompt tokens from it."""
    from fingpt_hf.data.benchmarks import load_benchmark, load_train_rows
    from fingpt_hf.families.registry import family_by_name
    from fingpt_hf.families.tokenization import prepare_tokenizer
    from fingpt_hf.training.sft import build_training_rows

    committed = json.loads(COMMITTED.read_text())
    family = family_by_name("llama")  # SmolLM2's
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(default_model_path), family)
    for name, split, rows in (("fpb", "train", load_train_rows("fpb", data_dir)),
                              ("nwgi", "test", load_benchmark("nwgi", "test", data_dir))):
        whole = build_training_rows(rows, tokenizer, family, "fingpt", None)
        cut = build_training_rows(rows, tokenizer, family, "fingpt", committed["max_length"])
        shortened = sum(len(a["input_ids"]) != len(b["input_ids"]) for a, b in zip(whole, cut))
        assert max(len(b["input_ids"]) for b in cut) <= committed["max_length"]
        assert shortened == committed["sets"][name][split]["cut"] > 0, (name, split)
