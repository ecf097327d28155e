"""Constrained label scoring: the label whose tokens are most likely after the prompt wins.

Each example is tokenized exactly as training tokenizes it (``fingpt_hf.families.tokenization``):
the prompt on its own (with the tokenizer's and the family's special tokens), then each label
on its own. FinGPT trains this way too, so with its prompt ("... Answer: ") the model learns
the label right after the prompt's trailing space token; scoring the jointly tokenized
``"Answer: positive"`` (``Ġpositive``) instead would ask a tuned model for tokens it never
learned. The context is therefore the whole prompt, shared by all labels, and each label's
ids are its "tail".

The score is the summed log-probability of the tail tokens (not divided by the length): it is the
log-likelihood of the whole label given the prompt, so labels of different token lengths compete
on the probability of the text itself. EOS is not appended: every label would get it, and on an
untuned model its probability after a label is noise. Scoring never produces an invalid answer.

Cost: the instruction that every prompt starts with is encoded once per data set; then one
forward pass per batch over the rest of each context (only the last position's logits are
computed) and, only when some label has more than one token, one short pass over the labels'
tails with the cache repeated per label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import copy
from dataclasses import dataclass

import torch

from fingpt_hf.errors import FinGPTError

# Below this many shared tokens, encoding them separately saves less than it costs.
MIN_SHARED_PREFIX = 4


@dataclass(frozen=True)
class LabelTokens:
    """One example's shared context ids and each label's tail ids (in label order)."""

    context: list[int]
    tails: list[list[int]]


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    for i in range(shortest):
        token = sequences[0][i]
        if any(s[i] != token for s in sequences[1:]):
            return i
    return shortest


def tokenize_labels(
    tokenizer, prompts: Sequence[str], labels: Sequence[str], add_special_tokens: bool = True, family=None,
    max_length: int | None = None,
) -> list[LabelTokens]:
    """Each prompt's ids (the context) and each label's ids (the tails), as training encodes them."""
    from fingpt_hf.families.catalog import GENERIC
    from fingpt_hf.families.tokenization import answer_room, encode_completion, prompt_ids

    family = family or GENERIC
    tails = [encode_completion(label, tokenizer, family, add_eos=False) for label in labels]
    room = answer_room(tokenizer, family) if max_length is not None else 0  # the cut training made
    return [LabelTokens(context=prompt_ids(prompt, tokenizer, family, add_special_tokens, max_length, room),
                        tails=tails) for prompt in prompts]


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    if pad is None:
        raise FinGPTError("the tokenizer has neither a pad nor an EOS token; cannot batch examples")
    return int(pad)


def shared_prefix_length(items: Sequence[LabelTokens]) -> int:
    """Tokens that every example's context starts with (FinGPT's instruction), leaving each one >= 1 token."""
    contexts = [it.context for it in items]
    return max(0, min(_common_prefix_length(contexts), min(len(c) for c in contexts) - 1))


def _cache_of(output):
    """The key/value cache of a model output (``cache`` in transformers 5, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _supports_cache_reuse(cache) -> bool:
    return cache is not None and hasattr(cache, "batch_repeat_interleave") and hasattr(cache, "get_seq_length")


@torch.inference_mode()
def encode_prefix(model, prefix: Sequence[int]):
    """The key/value cache of the shared prefix (batch 1), or None if the model's cache cannot be reused."""
    ids = torch.tensor([list(prefix)], device=model.device)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
    cache = _cache_of(out)
    return cache if _supports_cache_reuse(cache) else None


@torch.inference_mode()
def score_batch(model, items: Sequence[LabelTokens], pad_id: int, prefix_len: int = 0, prefix_cache=None
                ) -> torch.Tensor:
    """Summed log-probabilities, shape (len(items), num_labels), of every label's tail.

    With ``prefix_cache`` (the cache of the first ``prefix_len`` context tokens, shared by all
    items) only the rest of each context is run; it is left-padded after the prefix, so the
    attention mask has a hole between prefix and text and positions are counted over real tokens.
    """
    device = model.device
    batch, num_labels = len(items), len(items[0].tails)
    if prefix_cache is None:
        prefix_len = 0
    suffixes = [it.context[prefix_len:] for it in items]
    lengths = torch.tensor([len(s) for s in suffixes])
    width = int(lengths.max())
    # Left padding: every context ends at the last column, so one logits position serves all.
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, prefix_len + width), dtype=torch.long)
    attention[:, :prefix_len] = 1
    for b, suffix in enumerate(suffixes):
        input_ids[b, width - len(suffix):] = torch.tensor(suffix)
        attention[b, prefix_len + width - len(suffix):] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
    cache = None
    if prefix_cache is not None:
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(batch)
    tail_len = max(len(t) for it in items for t in it.tails)
    out = model(
        input_ids=input_ids.to(device), attention_mask=attention.to(device), position_ids=positions.to(device),
        cache=cache, use_cache=tail_len > 1, logits_to_keep=1,
    )
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (batch, vocab)
    first_ids = torch.tensor([[t[0] for t in it.tails] for it in items], device=device)
    scores = first.gather(1, first_ids)  # (batch, labels)
    if tail_len == 1:
        return scores.cpu()

    # Tokens 2..k of each tail, conditioned on the cached context: (batch*labels, tail_len-1).
    cache = _cache_of(out)
    if not _supports_cache_reuse(cache):
        raise FinGPTError(f"{type(model).__name__} does not return a reusable key/value cache; labels that "
                          "take several tokens cannot be scored with it (use --mode generate)")
    rows = [t for it in items for t in it.tails]
    steps = tail_len - 1
    cont_ids = torch.full((len(rows), steps), pad_id, dtype=torch.long)
    cont_mask = torch.zeros((len(rows), steps), dtype=torch.long)
    targets = torch.zeros((len(rows), steps), dtype=torch.long)
    for r, tail in enumerate(rows):
        k = len(tail) - 1
        if k:
            cont_ids[r, :k] = torch.tensor(tail[:-1])
            cont_mask[r, :k] = 1
            targets[r, :k] = torch.tensor(tail[1:])
    cache.batch_repeat_interleave(num_labels)
    # Tails are right-padded; causal attention keeps real tokens from seeing the padding after them,
    # so the continuation columns can all be attended (no fully masked rows).
    full_mask = torch.cat([attention.repeat_interleave(num_labels, 0), torch.ones_like(cont_mask)], dim=1)
    cont_pos = (prefix_len + lengths).repeat_interleave(num_labels)[:, None] + torch.arange(steps)[None, :]
    more = model(
        input_ids=cont_ids.to(device), attention_mask=full_mask.to(device),
        position_ids=cont_pos.to(device), cache=cache, use_cache=True,
    )
    logp = torch.log_softmax(more.logits.float(), dim=-1).gather(2, targets.to(device)[..., None])[..., 0]
    rest = (logp * cont_mask.to(device)).sum(-1).view(batch, num_labels)
    return (scores + rest).cpu()


def score_labels(
    model,
    tokenizer,
    prompts: Sequence[str],
    labels: Sequence[str],
    batch_size: int = 16,
    add_special_tokens: bool = True,
    progress: Callable | None = None,
    share_prefix: bool = True,
    family=None,
    max_length: int | None = None,
) -> list[list[float]]:
    """Per example (in input order), the summed log-likelihood of each label after its prompt.

    Examples are sorted by context length so batches carry little padding. With ``share_prefix``
    the tokens every prompt starts with (FinGPT's instruction, a chat template's system turn) are
    encoded once and their cache reused by every batch (exact: causal attention means those
    tokens' keys and values do not depend on what follows). ``progress`` (e.g. a tqdm bar's
    ``update``) is called with the number of examples done after each batch.
    """
    if not prompts:
        return []
    items = tokenize_labels(tokenizer, prompts, labels, add_special_tokens=add_special_tokens, family=family,
                            max_length=max_length)
    pad_id = _pad_id(tokenizer)
    prefix_len = shared_prefix_length(items) if share_prefix else 0
    prefix_cache = encode_prefix(model, items[0].context[:prefix_len]) if prefix_len >= MIN_SHARED_PREFIX else None
    order = sorted(range(len(items)), key=lambda i: len(items[i].context), reverse=True)
    results: list[list[float] | None] = [None] * len(items)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        scores = score_batch(model, [items[i] for i in chunk], pad_id, prefix_len, prefix_cache)
        for i, row in zip(chunk, scores.tolist()):
            results[i] = row
        if progress is not None:
            progress(len(chunk))
    return results  # type: ignore[return-value]


def pick_labels(scores: Sequence[Sequence[float]], labels: Sequence[str]) -> list[str]:
    """The highest-scoring label per example (ties go to the first label in ``labels``)."""
    return [labels[max(range(len(labels)), key=lambda j: row[j])] for row in scores]
