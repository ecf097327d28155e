"""Tokenization, in one place for training, label scoring and generation.

``encode_prompt`` / ``encode_completion`` turn a prompt and an answer into ids the same way
for all three (prompt and answer tokenized separately, as FinGPT trains; family prefix tokens
such as ChatGLM's ``[gMASK] sop``; EOS after the answer), so a model is scored and prompted on
exactly the context it was trained on. ``prepare_tokenizer`` applies the per-family fixes: a pad
token (and EOS) taken from the existing vocabulary.

FinGPT adds a ``[PAD]`` token and resizes the embeddings when pad is missing or equals EOS.
We never add tokens: the answer-only collator builds labels and attention masks from lengths,
not from token ids, so a pad that equals EOS is harmless and the vocabulary stays that of the
published model (adapters stay loadable on the base model).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
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


def _find(haystack: Sequence[int], needle: Sequence[int]) -> int | None:
    if not needle:
        return 0
    for start in range(len(haystack) - len(needle) + 1):
        if list(haystack[start : start + len(needle)]) == list(needle):
            return start
    return None


def encode_prompt(
    prompt: str, tokenizer: Any, family: FamilySpec, add_special_tokens: bool = True
) -> tuple[list[int], list[int], list[int]]:
    """A prompt's ids as ``(prefix, body, suffix)``: special tokens before and after its text.

    The prompt keeps the special tokens the tokenizer adds around it (BOS, ChatGLM's
    ``[gMASK] sop``; a trailing EOS is dropped since it would end the text before the answer),
    and a family's prefix tokens are added if the tokenizer left them out. Training and
    evaluation both encode prompts here, so a model is scored on exactly the context it was
    trained on.
    """
    with_special = list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    body = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    start = _find(with_special, body)
    if start is None:
        prefix, suffix, body = [], [], with_special
    else:
        prefix, suffix = with_special[:start], with_special[start + len(body) :]
    eos_id = getattr(tokenizer, "eos_token_id", None)
    suffix = [t for t in suffix if t != eos_id]
    if family.prefix_tokens:
        wanted = [token_id(tokenizer, tok) for tok in family.prefix_tokens]
        if any(i is None for i in wanted):
            raise FinGPTError(
                f"family {family.name!r} expects prefix tokens {list(family.prefix_tokens)}, "
                "which this tokenizer does not have; is it the model's own tokenizer?"
            )
        if _find(prefix + body + suffix, wanted) is None:
            prefix = wanted + prefix
    return prefix, body, suffix


def encode_completion(completion: str, tokenizer: Any, family: FamilySpec, add_eos: bool | None = None) -> list[int]:
    """The answer's ids: tokenized on its own (as FinGPT does), then EOS when the family wants it."""
    answer = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    eos_id = getattr(tokenizer, "eos_token_id", None)
    if family.add_eos if add_eos is None else add_eos:
        if eos_id is None:
            raise FinGPTError(
                f"the {family.name} tokenizer has no EOS token; call "
                "fingpt_hf.families.prepare_tokenizer first"
            )
        if not answer or answer[-1] != eos_id:
            answer.append(eos_id)
    if not answer:
        raise FinGPTError(f"the answer {completion!r} has no tokens")
    return answer


def answer_room(tokenizer: Any, family: FamilySpec) -> int:
    """Tokens a prompt leaves free under ``max_length``: the longest label with its EOS.

    Training, scoring and generation all cut prompts to ``max_length - answer_room`` so the
    model sees the same context whatever the row's answer (a cut that depended on the answer's
    length would show a model different prompts for "neutral" and "positive").
    """
    from fingpt_hf.data.labels import LABELS

    return max(len(encode_completion(label, tokenizer, family, add_eos=True)) for label in LABELS)


def prompt_ids(
    prompt: str,
    tokenizer: Any,
    family: FamilySpec,
    add_special_tokens: bool = True,
    max_length: int | None = None,
    answer_length: int = 0,
) -> list[int]:
    """The ids a model sees for ``prompt``, in training, label scoring and generation alike.

    With ``max_length``, prompt text is dropped from the left (after the prefix tokens) until
    prompt and ``answer_length`` answer tokens fit: the answer is what counts, and the end of the
    prompt ("Answer: ") sits next to it.
    """
    prefix, body, suffix = encode_prompt(prompt, tokenizer, family, add_special_tokens)
    if max_length is not None:
        room = max_length - len(prefix) - len(suffix) - answer_length
        if room < 0:
            raise FinGPTError(
                f"max_length {max_length} cannot hold the {answer_length} answer tokens plus "
                f"{len(prefix) + len(suffix)} special prompt tokens; raise max_length"
            )
        if len(body) > room:
            body = body[len(body) - room :] if room else []
    return prefix + body + suffix


def tokenize_prompt_completion(
    example: Mapping[str, Any],
    tokenizer: Any,
    family: FamilySpec,
    max_length: int | None = None,
    add_special_tokens: bool = True,
) -> dict[str, list[int]]:
    """Tokenize one ``{"prompt", "completion"}`` row into ``input_ids`` and ``completion_mask``.

    Prompt and completion are tokenized separately (``prompt_ids``, ``encode_completion``), as
    FinGPT's own training does, so the model learns the answer right after the prompt's last
    token, which is exactly what it sees when generating or scoring from that prompt.
    """
    prompt, completion = example.get("prompt"), example.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise FinGPTError("a training example needs string 'prompt' and 'completion' columns")
    answer = encode_completion(completion, tokenizer, family)
    room = max(len(answer), answer_room(tokenizer, family)) if max_length is not None else 0
    ids = prompt_ids(prompt, tokenizer, family, add_special_tokens, max_length, answer_length=room)
    return {"input_ids": ids + answer, "completion_mask": [0] * len(ids) + [1] * len(answer)}


def model_context(model_config: Any) -> int | None:
    """The context length a checkpoint's config declares (``max_position_embeddings``), if any."""
    if model_config is None:
        return None
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    return getattr(text_config, "max_position_embeddings", None)


def check_prompt_lengths(
    prompts: Sequence[str],
    tokenizer: Any,
    family: FamilySpec,
    context: int | None,
    where: str,
    add_special_tokens: bool = True,
    row_names: Sequence[str] | None = None,
) -> None:
    """Refuse a prompt that does not fit the model's ``context`` with its answer.

    A model run past its context gives garbage without an error (or a rotary table overrun), so
    this is checked with the tokenizer alone, before any weights load; ``--max-length`` cuts
    prompts instead (and is recorded with the result). ``row_names`` (e.g. "line 7") name the
    rows in the error; by default "row <index>".
    """
    if not context:
        return
    room = answer_room(tokenizer, family)
    for index, prompt in enumerate(prompts):
        length = len(prompt_ids(prompt, tokenizer, family, add_special_tokens)) + room
        if length > context:
            name = row_names[index] if row_names is not None else f"row {index}"
            raise FinGPTError(
                f"{where}: {name} needs {length} tokens with its answer, more than the model's context of "
                f"{context}; pass --max-length {context} (or less) to cut prompts from the left"
            )

