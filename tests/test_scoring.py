"""Label scoring equals a brute-force full forward pass per label, on tiny and real models."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.prompts import format_prompt
from fingpt_hf.evaluation.scoring import pick_labels, score_labels, shared_prefix_length, tokenize_labels
from fingpt_hf.families.registry import get_family
from fingpt_hf.families.tokenization import tokenize_prompt_completion
from tiny_models import tiny_llama


@pytest.fixture(scope="module")
def tokenizer(default_model_path):
    tok = AutoTokenizer.from_pretrained(default_model_path)
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    return tiny_llama(len(tokenizer), hidden_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)


def brute_force(model, tokenizer, prompt: str, labels, add_special_tokens=True) -> list[float]:
    """log P(label tokens | prompt), one unpadded full forward per label, no cache.

    Prompt and label are tokenized separately, as the trainer does (``tokenize_prompt_completion``).
    """
    context = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
    out = []
    for label in labels:
        ids = context + tokenizer(label, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        out.append(sum(float(logp[t - 1, ids[t]]) for t in range(len(context), len(ids))))
    return out


def fpb_prompts(n: int) -> list[str]:
    return [format_prompt(row) for row in load_benchmark("fpb", "test").select(range(n))]


def test_scoring_sees_exactly_the_training_tokens(tokenizer):
    prompts = fpb_prompts(2)
    family = get_family("llama")
    items = tokenize_labels(tokenizer, prompts, LABELS, family=family)
    for prompt, item in zip(prompts, items):
        # The prompt keeps its trailing space token and each label is tokenized on its own, exactly
        # as the trainer encodes prompt + completion (minus the EOS it trains on).
        assert tokenizer.decode(item.context).endswith("Answer: ")
        assert [tokenizer.decode(t) for t in item.tails] == list(LABELS)
        trained = tokenize_prompt_completion({"prompt": prompt, "completion": "positive"}, tokenizer, family)
        assert item.context + item.tails[2] + [tokenizer.eos_token_id] == trained["input_ids"]
        assert trained["completion_mask"].index(1) == len(item.context)
    assert shared_prefix_length(items) >= 20  # FinGPT's instruction is shared


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("batch_size", [3, 8])
def test_multi_token_labels_match_brute_force(tiny_model, tokenizer, share_prefix, batch_size):
    labels = ["strongly negative", "neutral-ish", "positive outlook for shareholders"]
    prompts = fpb_prompts(3) + ["Instruction: short\nInput: x\nAnswer: "]
    scores = score_labels(tiny_model, tokenizer, prompts, labels, batch_size=batch_size, share_prefix=share_prefix)
    for prompt, row in zip(prompts, scores):
        expected = brute_force(tiny_model, tokenizer, prompt, labels)
        assert row == pytest.approx(expected, abs=2e-4)


def test_chat_prompts_match_brute_force(tiny_model, tokenizer):
    rows = load_benchmark("tfns", "test").select(range(4))
    prompts = [format_prompt(r, style="chat", tokenizer=tokenizer) for r in rows]
    scores = score_labels(tiny_model, tokenizer, prompts, LABELS, batch_size=4, add_special_tokens=False)
    for prompt, row in zip(prompts, scores):
        assert row == pytest.approx(brute_force(tiny_model, tokenizer, prompt, LABELS, False), abs=2e-4)


def test_real_default_model_matches_brute_force(default_model_path, tokenizer):
    model = LlamaForCausalLM.from_pretrained(default_model_path, dtype=torch.float32).eval()
    prompts = fpb_prompts(2)
    scores = score_labels(model, tokenizer, prompts, LABELS, batch_size=2)
    for prompt, row in zip(prompts, scores):
        assert row == pytest.approx(brute_force(model, tokenizer, prompt, LABELS), abs=1e-3)
    assert all(p in LABELS for p in pick_labels(scores, LABELS))


def test_pick_labels_takes_the_highest_and_first_on_ties():
    assert pick_labels([[-3.0, -1.0, -2.0], [-1.0, -1.0, -5.0]], LABELS) == ["neutral", "negative"]
