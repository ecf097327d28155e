"""Per-family tokenizer fixes: a pad token (and EOS) taken from the existing vocabulary.

FinGPT adds a ``[PAD]`` token and resizes the embeddings when pad is missing or equals EOS.
We never add tokens: the answer-only collator builds labels and attention masks from lengths,
not from token ids, so a pad that equals EOS is harmless and the vocabulary stays that of the
published model (adapters stay loadable on the base model).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.families.spec import FamilySpec

logger = logging.getLogger(__name__)


def token_id(tokenizer: Any, token: str) -> int | None:
    """The id of ``token`` if it is a real vocabulary entry (not mapped to unk), else None."""
    try:
        ids = tokenizer.convert_tokens_to_ids([token])
    except (KeyError, ValueError, TypeError):
        return None
    tid = ids[0] if ids else None
    if not isinstance(tid, int) or tid < 0:
        return None
    unk = getattr(tokenizer, "unk_token", None)
    if tid == getattr(tokenizer, "unk_token_id", None) and token != unk:
        return None
    return tid


def _first_in_vocab(tokenizer: Any, candidates: Iterable[str]) -> str | None:
    return next((tok for tok in candidates if token_id(tokenizer, tok) is not None), None)


def prepare_tokenizer(tokenizer: Any, family: FamilySpec) -> Any:
    """Give ``tokenizer`` an EOS and a pad token from its own vocabulary (in place; returned).

    Pad: the family's candidates in order, then EOS. Raises FinGPTError when neither exists,
    since padding would otherwise need a new token and an embedding resize.
    """
    if getattr(tokenizer, "eos_token", None) is None and family.eos_token_candidates:
        eos = _first_in_vocab(tokenizer, family.eos_token_candidates)
        if eos is not None:
            tokenizer.eos_token = eos
            logger.info("family %s: EOS token set to %r", family.name, eos)
    if getattr(tokenizer, "pad_token", None) is None:
        pad = _first_in_vocab(tokenizer, family.pad_token_candidates) or getattr(tokenizer, "eos_token", None)
        if pad is None:
            raise FinGPTError(
                f"the {family.name} tokenizer has no pad token, none of "
                f"{list(family.pad_token_candidates)} and no EOS token; add a pad token to the "
                "tokenizer (and resize the model's embeddings) before training"
            )
        tokenizer.pad_token = pad
        logger.info("family %s: pad token set to %r", family.name, pad)
    return tokenizer


def special_prefix_length(tokenizer: Any) -> int:
    """How many special tokens the tokenizer puts before a text (BOS: 1, ChatGLM: 2, Qwen: 0)."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start : start + len(plain)] == plain:
            return start
    return 0
