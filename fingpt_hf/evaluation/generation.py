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


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 8,
    add_special_tokens: bool = True,
    progress: Callable | None = None,
) -> list[str]:
    """Greedy answers (the generated text only, special tokens removed) in input order.

    Prompts are sorted by length and left-padded per batch, so every prompt ends at the same
    column and generation continues right after it.
    """
    if not prompts:
        return []
    tokenizer.padding_side = "left"
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i], reverse=True)
    config = greedy_config(tokenizer, max_new_tokens)
    mask = newline_token_mask(tokenizer)
    answers: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        enc = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True,
                        add_special_tokens=add_special_tokens).to(model.device)
        width = enc["input_ids"].shape[1]
        out = model.generate(**enc, generation_config=config,
                             stopping_criteria=StoppingCriteriaList([NewlineStoppingCriteria(mask, width)]))
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        for i, text in zip(chunk, texts):
            answers[i] = text
        if progress is not None:
            progress(len(chunk))
    return answers  # type: ignore[return-value]
