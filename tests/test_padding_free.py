"""padding_free: rows laid end to end give the loss of the padded batch, and a recipe trains with it."""

from __future__ import annotations

import math

import pytest
import transformers
import yaml
from transformers import AutoTokenizer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.prompts import format_prompt
from fingpt_hf.errors import FinGPTError
from fingpt_hf.families import family_by_name
from fingpt_hf.training.answer_logits import add_answer_only_lm_head
from fingpt_hf.families.tokenization import tokenize_prompt_completion
from fingpt_hf.training.collator import AnswerOnlyCollator
from fingpt_hf.training.recipe import parse_sft_args
from fingpt_hf.training.run_info import read_run_info
from fingpt_hf.training.sft import check_padding_free
from tiny_models import save_tiny_llama, sft_script, tiny_llama, tiny_sft_recipe


@pytest.fixture(scope="module")
def features(default_model_path, data_dir):
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    rows = [*load_benchmark("fpb", "train", data_dir=data_dir).select(range(3)),
            *load_benchmark("tfns", "train", data_dir=data_dir).select(range(3))]
    out = []
    for row in rows:
        ids = tokenize_prompt_completion({"prompt": format_prompt(row), "completion": row["output"]},
                                         tokenizer, family_by_name("llama"))
        ids["labels"] = [t if m else -100 for t, m in zip(ids["input_ids"], ids["completion_mask"])]
        out.append(ids)
    return tokenizer, out


@pytest.mark.parametrize("answer_only_head", [False, True])
def test_padding_free_batch_gives_the_padded_loss(features, answer_only_head):
    tokenizer, rows = features
    model = tiny_llama(len(tokenizer), seed=3)
    padded = AnswerOnlyCollator(pad_token_id=tokenizer.pad_token_id)(rows)
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(
        [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
    assert flat["input_ids"].shape[0] == 1 and "attention_mask" not in flat
    assert int((flat["labels"] != -100).sum()) == int((padded["labels"] != -100).sum())
    if answer_only_head:
        add_answer_only_lm_head(model)
        losses = [model(**batch, fused_lm_head=True).loss.item() for batch in (padded, flat)]
    else:
        # SFTTrainer.compute_loss passes use_cache=False; transformers reads packed rows from the
        # position ids only without a cache (with one, generation-style, it would not)
        losses = [model(**batch, use_cache=False).loss.item() for batch in (padded, flat)]
    assert math.isclose(losses[0], losses[1], rel_tol=1e-5), losses


def test_recipe_trains_padding_free(tmp_path, default_model_path):
    model = save_tiny_llama(tmp_path / "llama", default_model_path, tie_word_embeddings=True)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(tiny_sft_recipe(model, padding_free=True)), encoding="utf-8")
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "out")])
    out = sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit)
    losses = [e["loss"] for e in read_run_info(out)["log_history"] if "loss" in e]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    assert (out / "adapter_model.safetensors").is_file()


def test_models_that_cannot_tell_packed_rows_apart_are_refused():
    bloom = transformers.BloomForCausalLM(transformers.BloomConfig(vocab_size=64, hidden_size=32, n_layer=2, n_head=4))
    with pytest.raises(FinGPTError, match=r"padding_free: BloomForCausalLM \(bloom\) .* \(no position ids\)"):
        check_padding_free(bloom, family_by_name("bloom"))
    check_padding_free(tiny_llama(64), family_by_name("llama"))  # a native RoPE model is fine
