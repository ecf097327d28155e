"""Shared-prefix batching: run the instruction that every example repeats once per batch.

FinGPT's prompt opens with the same ~25-token instruction on every row ("Instruction: What is
the sentiment of this news? Please choose ... Input:"), close to half of a sentiment example's
tokens. In a causal model those leading tokens see only each other, so their hidden states, keys
and values are the same on every row that shares them. Here each batch is split into groups of
rows with a common leading run of tokens (``plan_shared_prefixes``); the batch is laid out as one
sequence holding each group's prefix once and then each row's remainder (each padded to the longest
of its kind, so that attention needs no gathers), and ``shared_prefix_attention`` lets a row's tokens
attend to its group's prefix and causally to its own earlier tokens, in two small dense blocks.
Position ids are those of the ordinary batch.
Autograd sums the gradient arriving at a shared prefix from all of its rows, so loss and
gradients are those of the ordinary batch up to float rounding (``tests/test_shared_prefix.py``)
for about a third fewer token passes through the decoder.

The prefix never reaches a labelled position: it stops before the token whose hidden state
predicts the first answer token, so the answer-only head needs only the per-row part.

NEFTune (``neftune_noise_alpha``: transformers' hook adds uniform noise of magnitude alpha / sqrt(L x d) to the
embeddings, L the batch's padded width) is sized for the ordinary batch's width here, not the packed sequence's
(``fingpt_hf.training.neftune.neftune_sized_for_the_batch``). A group's rows then share one noise draw on their
common prefix, as they share a LoRA dropout mask there; each row's own tokens get their own. With
``neftune_sources`` only some rows are noised: rows that differ in that are never grouped (``row_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface

from fingpt_hf.training.collator import IGNORE_INDEX, model_uses_position_ids
from fingpt_hf.training.neftune import neftune_sized_for_the_batch


@dataclass
class PrefixPlan:
    """How a batch splits: row ``r`` is in group ``group_of_row[r]``, whose rows share its first
    ``prefix_lengths[group]`` tokens; ``row_lengths`` are the rows' unpadded lengths."""

    group_of_row: list[int]
    prefix_lengths: list[int]
    row_lengths: list[int]

    @property
    def group_sizes(self) -> list[int]:
        """How many rows each group holds."""
        return [self.group_of_row.count(g) for g in range(len(self.prefix_lengths))]

    @property
    def shared_tokens(self) -> int:
        """Token positions the plan saves against running every row whole."""
        return sum((n - 1) * p for n, p in zip(self.group_sizes, self.prefix_lengths))


def _common_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def plan_shared_prefixes(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                         row_keys: list | None = None) -> PrefixPlan | None:
    """Group the rows of a right-padded batch by a shared leading run of prompt tokens.

    A group of n rows sharing p tokens saves (n - 1) x p token passes; ``_best_groups`` picks
    the grouping that saves most; rows whose ``row_keys`` differ (one per row, e.g. whether NEFTune
    noises the row) are never grouped. Returns None when the batch is not right-padded or nothing is shared.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] < 2:
        return None
    mask = attention_mask.bool()
    lengths = mask.sum(-1).tolist()
    width = input_ids.shape[1]
    # Right padding only: every row's real tokens are 0..len-1.
    if not bool((mask == (torch.arange(width, device=mask.device) < mask.sum(-1, keepdim=True))).all()):
        return None
    carries_loss = labels[:, 1:] != IGNORE_INDEX  # position i predicts label i+1
    rows = input_ids.tolist()
    limits = []
    for r, length in enumerate(lengths):
        hits = carries_loss[r, : max(length - 1, 0)].nonzero()
        first_scored = int(hits[0]) if len(hits) else length - 1  # hidden state at this position is scored
        limits.append(max(first_scored, 0))
    owns = [row[:limit] for row, limit in zip(rows, limits)]
    group_of_row, prefix_lengths = _best_groups(owns, row_keys)
    plan = PrefixPlan(group_of_row, prefix_lengths, lengths)
    return plan if plan.shared_tokens > 0 else None


def _best_groups(prefixes: list[list[int]], keys: list | None = None) -> tuple[list[int], list[int]]:
    """Split rows into groups maximising the token passes saved, sum of (size - 1) x shared length.

    In lexicographic order rows with long common prefixes are neighbours, and a group's shared
    length is the smallest common length of neighbours inside it, so the best split into
    contiguous runs of that order (a small dynamic programme) is the best grouping. With ``keys``
    the order is by key first and neighbours of different keys share nothing, so no group that
    saves anything spans two keys (a run that saves nothing is never chosen over rows alone).
    """
    keys = keys if keys is not None else [0] * len(prefixes)
    order = sorted(range(len(prefixes)), key=lambda r: (keys[r], prefixes[r]))
    common = [_common_length(prefixes[a], prefixes[b]) if keys[a] == keys[b] else 0
              for a, b in zip(order, order[1:])]
    n = len(order)
    best = [0] * (n + 1)  # best[i]: most saved over the first i rows of the order
    cut = [0] * (n + 1)
    for i in range(1, n + 1):
        best[i], cut[i] = best[i - 1], i - 1  # row i-1 alone
        shared = len(prefixes[order[i - 1]])
        for j in range(i - 2, -1, -1):  # rows j..i-1 as one group
            shared = min(shared, common[j])
            saved = best[j] + (i - j - 1) * shared
            if saved > best[i]:
                best[i], cut[i] = saved, j
    group_of_row, prefix_lengths = [0] * n, []
    i = n
    while i > 0:
        j = cut[i]
        members = order[j:i]
        shared = min(common[j : i - 1], default=len(prefixes[members[0]]))
        for r in members:
            group_of_row[r] = len(prefix_lengths)
        prefix_lengths.append(shared)
        i = j
    return group_of_row, prefix_lengths


ATTENTION_NAME = "fingpt_shared_prefix"
_BASE_ATTENTION = ("sdpa", "eager")


def supports_shared_prefix(backbone: nn.Module) -> bool:
    """Whether the decoder takes ``position_ids`` (ALiBi models such as Bloom/MPT do not) and its
    attention is plain softmax attention that ``shared_prefix_attention`` reproduces: sdpa or
    eager, no logit soft-capping (a sliding window is checked per batch, ``window_covers``)."""
    config = backbone.config
    return (
        model_uses_position_ids(backbone)
        and getattr(config, "_attn_implementation", None) in _BASE_ATTENTION
        and not getattr(config, "attn_logit_softcapping", None)
    )


def window_covers(config, length: int) -> bool:
    """Whether a sliding attention window (if any) covers rows of ``length`` tokens, so that it
    changes nothing and full attention is exact."""
    window = getattr(config, "sliding_window", None)
    return not window or length <= window


def shared_prefix_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    *,
    shared_prefix_layout: tuple[torch.Tensor, ...],
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention over the packed layout, in two dense blocks instead of one ``n x n`` mask.

    The sequence is ``groups`` prefixes of ``prefix_width`` tokens, then ``rows`` remainders of
    ``suffix_width`` tokens (each padded at its end), so both blocks are views of it. The prefixes
    attend causally among themselves (``groups x p x p``); each row's own tokens attend to its
    group's prefix and causally to each other (``rows x s x (p + s)``). A row's prefix keys and
    values come from its group's by a one-hot matmul, whose backward pass is a matmul too: an
    ``index_select`` there costs a scatter-add per layer, the slowest kernel of a compiled CPU step.
    """
    pre_mask, suf_mask, row_group = shared_prefix_layout
    heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[-1]
    groups, prefix_width = pre_mask.shape[0], pre_mask.shape[-1]
    rows, suffix_width = suf_mask.shape[0], suf_mask.shape[2]
    repeat = heads // kv_heads

    def split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, h, n, d) -> prefixes (groups, h, p, d) and remainders (rows, h, s, d), as views."""
        pre, suf = t[0].split([groups * prefix_width, rows * suffix_width], dim=1)
        return (pre.unflatten(1, (groups, prefix_width)).transpose(0, 1),
                suf.unflatten(1, (rows, suffix_width)).transpose(0, 1))

    (q_pre, q_suf), (k_pre, k_suf), (v_pre, v_suf) = split(query), split(key), split(value)
    one_hot = row_group.to(key.dtype)

    def with_prefix(pre: torch.Tensor, suf: torch.Tensor) -> torch.Tensor:
        """Each row's keys (or values): its group's prefix, then its own tokens."""
        own = (one_hot @ pre.flatten(1)).view(rows, kv_heads, prefix_width, dim)
        return torch.cat([own, suf], dim=2)

    def attend(q, k, v, mask):
        """(b, h, s, d) queries against (b, kv_heads, n, d) keys and values -> (b, s, h, d)."""
        b, _, length, _ = q.shape
        grouped = q.reshape(b, kv_heads, repeat * length, dim)
        out = _attention(grouped, k, v, mask, repeat, dropout if module.training else 0.0, scaling)
        return out.view(b, heads, length, dim).transpose(1, 2)

    pre_out = attend(q_pre, k_pre, v_pre, pre_mask).reshape(groups * prefix_width, heads, dim)
    suf_out = attend(q_suf, with_prefix(k_pre, k_suf), with_prefix(v_pre, v_suf), suf_mask)
    out = torch.cat([pre_out, suf_out.reshape(rows * suffix_width, heads, dim)])
    return out.unsqueeze(0), None


def _attention(q, k, v, mask, repeat: int, dropout: float, scaling: float | None) -> torch.Tensor:
    """Softmax attention written out, for grouped-query heads without copying keys and values.

    ``q`` is ``(b, kv_heads, repeat x s, d)``: the ``repeat`` query heads that share a key/value head
    stacked along the rows, so each key/value head is one batched matmul's operand as it is. Copying
    K and V per query head (``repeat_interleave``) costs a scatter-add per layer in the compiled
    backward pass: the recipe's steps ran 1.06x as fast without it (README, Speed). For blocks this
    small (tens of tokens) two batched matmuls beat the fused CPU kernel, whose backward pass costs
    milliseconds per call whatever the size. ``mask`` is ``(b, 1, s, n)``; returns ``(b, kv_heads, repeat x s, d)``.
    """
    b, kv_heads, rows, dim = q.shape
    scale = scaling if scaling is not None else dim ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    scores = scores.view(b, kv_heads, repeat, rows // repeat, -1)  # per query head, to take the mask
    scores = scores.masked_fill(~mask.unsqueeze(2), torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    if dropout:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    return torch.matmul(probs.view(b, kv_heads, rows, -1), v)


def _layout(plan: PrefixPlan, device: torch.device) -> tuple[list[int], list[int], list[bool], tuple[torch.Tensor, ...]]:
    """The packed order as the source row and position of every packed token (and whether it is a
    real token or padding), and the tensors of ``shared_prefix_attention``.

    Each group's prefix is padded to the longest prefix and each row's remainder to the longest
    remainder, so that the attention blocks are views of the sequence; padding positions
    (length-grouped batches leave few) are computed and never attended to by a real token.
    """
    prefix_width = max(plan.prefix_lengths)
    starts = [plan.prefix_lengths[g] for g in plan.group_of_row]
    suffix_width = max(n - s for n, s in zip(plan.row_lengths, starts))
    first_row: dict[int, int] = {}
    for r, g in enumerate(plan.group_of_row):
        first_row.setdefault(g, r)
    groups, rows = len(plan.prefix_lengths), len(plan.row_lengths)
    src_row, src_pos, real = [], [], []
    # A padding query attends to key 0 of its block alone, which keeps its softmax finite.
    pre_mask = torch.zeros((groups, 1, prefix_width, prefix_width), dtype=torch.bool)
    causal = torch.ones((prefix_width, prefix_width), dtype=torch.bool).tril()
    for g, p in enumerate(plan.prefix_lengths):
        src_row += [first_row[g]] * prefix_width
        src_pos += [*range(p), *[0] * (prefix_width - p)]
        real += [True] * p + [False] * (prefix_width - p)
        pre_mask[g, 0, :p, :p] = causal[:p, :p]
        pre_mask[g, 0, p:, 0] = True
    suf_mask = torch.zeros((rows, 1, suffix_width, prefix_width + suffix_width), dtype=torch.bool)
    causal = torch.ones((suffix_width, suffix_width), dtype=torch.bool).tril()
    for r, (n, s) in enumerate(zip(plan.row_lengths, starts)):
        m = n - s
        src_row += [r] * suffix_width
        src_pos += [*range(s, n), *[0] * (suffix_width - m)]
        real += [True] * m + [False] * (suffix_width - m)
        suf_mask[r, 0, :m, :s] = True
        suf_mask[r, 0, :m, prefix_width : prefix_width + m] = causal[:m, :m]
        suf_mask[r, 0, m:, prefix_width] = True
    row_group = torch.nn.functional.one_hot(torch.tensor(plan.group_of_row), groups).float()
    return src_row, src_pos, real, tuple(t.to(device) for t in (pre_mask, suf_mask, row_group))


def forward_with_shared_prefix(
    backbone: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    plan: PrefixPlan,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states of the batch packed as one sequence, and the labels they predict.

    The sequence holds each group's prefix once, then each row's remaining tokens (``_layout``:
    each padded to the longest of its kind); ``position_ids`` number every token as in the unpacked batch, and
    ``shared_prefix_attention`` lets a row's tokens see its group's prefix and its own earlier
    tokens, nothing else. Returns ``hidden`` ``(1, n, d)`` and ``shift_labels`` ``(1, n)``:
    ``shift_labels[0, i]`` is the token the hidden state at ``i`` should predict (-100 where
    nothing is scored), ready for the answer-only head.
    """
    device = input_ids.device
    src_row, src_pos, real, layout = _layout(plan, device)
    rows = torch.tensor(src_row, device=device)
    positions = torch.tensor(src_pos, device=device)
    ids = input_ids[rows, positions].unsqueeze(0)
    # the label a position predicts is the next token's; a row's last token and padding predict nothing
    next_pos = (positions + 1).clamp(max=labels.shape[1] - 1)
    row_len = torch.tensor(plan.row_lengths, device=device)[rows]
    scored = (positions + 1 < row_len) & torch.tensor(real, device=device)
    targets = torch.where(scored, labels[rows, next_pos], IGNORE_INDEX).unsqueeze(0)

    config = backbone.config
    base = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        with neftune_sized_for_the_batch(backbone, packed=ids.shape[1], width=input_ids.shape[1], rows=rows):
            hidden = backbone(
                input_ids=ids,
                attention_mask=torch.ones((1, 1, 1, 1), dtype=torch.bool, device=device),  # 4D: used as is (unused)
                position_ids=positions.unsqueeze(0),
                use_cache=False,
                shared_prefix_layout=layout,
            ).last_hidden_state
    finally:
        config._attn_implementation = base
    return hidden, targets


AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)
