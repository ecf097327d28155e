"""FinGPT-compatible answers: greedy generation after FinGPT's prompt, stopped at a newline or EOS.

FinGPT's benchmark generates up to ``max_length=512`` tokens and keeps whatever follows
``"Answer: "``; a tuned model answers with one word and EOS, an untuned one rambles on. We stop
at the first newline or EOS and after ``max_new_tokens`` (default 8), which leaves the first line
of the answer unchanged, the only part the strict parser reads. FinGPT's substring parser
(``--parser fingpt``) reads the whole answer, so with it a rambling untuned model can score
differently than under FinGPT's 512 tokens; tuned models stop by themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList


_NEWLINE_MASKS: dict[int, torch.Tensor] = {}


def newline_token_mask(tokenizer) -> torch.Tensor:
    """Boolean mask over the vocabulary: tokens whose text contains a newline (cached per tokenizer)."""
    key = id(tokenizer)
    if key not in _NEWLINE_MASKS:
        vocab_size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
        pieces = tokenizer.batch_decode([[i] for i in range(vocab_size)])
        _NEWLINE_MASKS[key] = torch.tensor(["\n" in piece for piece in pieces], dtype=torch.bool)
    return _NEWLINE_MASKS[key]


class NewlineStoppingCriteria(StoppingCriteria):
    """Stop a sequence once a generated token contains a newline (EOS is handled by generate)."""

    def __init__(self, newline_mask: torch.Tensor, prompt_length: int):
        self.newline = newline_mask
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        flags = self.newline.to(input_ids.device)
        generated = input_ids[:, self.prompt_length:].clamp(max=flags.numel() - 1)
        return flags[generated].any(dim=-1)


def greedy_config(tokenizer, max_new_tokens: int) -> GenerationConfig:
    """Plain greedy decoding, whatever sampling defaults the model's generation_config has."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def left_padded(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of prompts padded on the left, so all end at one column."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids):] = torch.tensor(list(ids), dtype=torch.long)
        attention[row, width - len(ids):] = 1
    return input_ids, attention


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 8,
    add_special_tokens: bool = True,
    progress: Callable | None = None,
    family=None,
    max_length: int | None = None,
) -> list[str]:
    """Greedy answers (the generated text only, special tokens removed) in input order.

    Prompts are encoded by ``fingpt_hf.families.tokenization.prompt_ids`` (the ids training and
    scoring use, family prefix tokens included), sorted by length and left-padded per batch, so
    every prompt ends at the same column and generation continues right after it. The
    tokenizer is not changed.
    """
    from fingpt_hf.families.catalog import GENERIC
    from fingpt_hf.families.tokenization import answer_room, prompt_ids

    if not prompts:
        return []
    family = family or GENERIC
    room = answer_room(tokenizer, family) if max_length is not None else 0  # the cut training made
    encoded = [prompt_ids(p, tokenizer, family, add_special_tokens, max_length, answer_length=room) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
    config = greedy_config(tokenizer, max_new_tokens)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mask = newline_token_mask(tokenizer)
    answers: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        input_ids, attention = left_padded([encoded[i] for i in chunk], pad_id)
        width = input_ids.shape[1]
        out = model.generate(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
                             generation_config=config,
                             stopping_criteria=StoppingCriteriaList([NewlineStoppingCriteria(mask, width)]))
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        for i, text in zip(chunk, texts):
            answers[i] = text
        if progress is not None:
            progress(len(chunk))
    return answers  # type: ignore[return-value]
