"""Shared-prefix batching: run the instruction that every example repeats once per batch.

FinGPT's prompt opens with the same ~25-token instruction on every row ("Instruction: What is
the sentiment of this news? Please choose ... Input:"), close to half of a sentiment example's
tokens. In a causal model those leading tokens see only each other, so their hidden states, keys
and values are the same on every row that shares them. Here each batch is split into groups of
rows with a common leading run of tokens (``plan_shared_prefixes``); the batch is laid out as one
sequence holding each group's prefix once and then each row's remainder (no padding at all), and
``shared_prefix_attention`` lets a row's tokens attend to its group's prefix and causally to its
own earlier tokens, in two small dense blocks. Position ids are those of the ordinary batch.
Autograd sums the gradient arriving at a shared prefix from all of its rows, so loss and
gradients are those of the ordinary batch up to float rounding (``tests/test_shared_prefix.py``)
for about a third fewer token passes through the decoder.

The prefix never reaches a labelled position: it stops before the token whose hidden state
predicts the first answer token, so the answer-only head needs only the per-row part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface

from fingpt_hf.training.collator import IGNORE_INDEX, model_uses_position_ids


@dataclass
class PrefixPlan:
    """How a batch splits: row ``r`` is in group ``group_of_row[r]``, whose rows share its first
    ``prefix_lengths[group]`` tokens; ``row_lengths`` are the rows' unpadded lengths."""

    group_of_row: list[int]
    prefix_lengths: list[int]
    row_lengths: list[int]

    @property
    def shared_tokens(self) -> int:
        """Token positions the plan saves against running every row whole."""
        sizes = [self.group_of_row.count(g) for g in range(len(self.prefix_lengths))]
        return sum((n - 1) * p for n, p in zip(sizes, self.prefix_lengths))


def _common_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def plan_shared_prefixes(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> PrefixPlan | None:
    """Group the rows of a right-padded batch by a shared leading run of prompt tokens.

    A group of n rows sharing p tokens saves (n - 1) x p token passes; ``_best_groups`` picks
    the grouping that saves most. Returns None when the batch is not right-padded or nothing is shared.
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
    group_of_row, prefix_lengths = _best_groups(owns)
    plan = PrefixPlan(group_of_row, prefix_lengths, lengths)
    return plan if plan.shared_tokens > 0 else None


def _best_groups(prefixes: list[list[int]]) -> tuple[list[int], list[int]]:
    """Split rows into groups maximising the token passes saved, sum of (size - 1) x shared length.

    In lexicographic order rows with long common prefixes are neighbours, and a group's shared
    length is the smallest common length of neighbours inside it, so the best split into
    contiguous runs of that order (a small dynamic programme) is the best grouping.
    """
    order = sorted(range(len(prefixes)), key=lambda r: prefixes[r])
    common = [_common_length(prefixes[a], prefixes[b]) for a, b in zip(order, order[1:])]
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

    The prefixes attend causally among themselves (``groups x p x p``); each row's own tokens
    attend to its group's prefix and causally to each other (``rows x s x (p + s)``). Queries,
    keys and values are gathered from the packed sequence and the outputs put back in its order.
    """
    pre_index, pre_mask, suf_q_index, suf_kv_index, suf_mask, pre_keep, suf_keep = shared_prefix_layout
    heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[-1]
    groups, prefix_width = pre_mask.shape[0], pre_mask.shape[-1]
    rows, suffix_width = suf_mask.shape[0], suf_mask.shape[2]
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (n, heads, dim)
    repeat = heads // kv_heads

    def block(q_index, kv_index, count, q_len, kv_len, mask):
        bq = q.index_select(0, q_index).view(count, q_len, heads, dim).transpose(1, 2)
        bk, bv = (
            t.index_select(0, kv_index).view(count, kv_len, kv_heads, dim).transpose(1, 2)
            .repeat_interleave(repeat, dim=1)
            for t in (k, v)
        )
        out = _attention(bq, bk, bv, mask, dropout if module.training else 0.0, scaling)
        return out.transpose(1, 2).reshape(count * q_len, heads, dim)

    pre_out = block(pre_index, pre_index, groups, prefix_width, prefix_width, pre_mask)
    suf_out = block(suf_q_index, suf_kv_index, rows, suffix_width, prefix_width + suffix_width, suf_mask)
    out = torch.cat([pre_out.index_select(0, pre_keep), suf_out.index_select(0, suf_keep)])
    return out.unsqueeze(0), None


def _attention(q, k, v, mask, dropout: float, scaling: float | None) -> torch.Tensor:
    """Softmax attention written out: for blocks this small (tens of tokens) two batched matmuls
    beat the fused CPU kernel, whose backward pass costs milliseconds per call whatever the size."""
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    if dropout:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    return torch.matmul(probs, v)


def _layout(plan: PrefixPlan, device: torch.device) -> tuple[list[int], list[int], tuple[torch.Tensor, ...]]:
    """The packed order (each group's prefix, then each row's rest) as the source row and
    position of every packed token, and the index tensors of ``shared_prefix_attention``."""
    prefix_width = max(plan.prefix_lengths)
    starts = [plan.prefix_lengths[g] for g in plan.group_of_row]
    suffix_width = max(n - s for n, s in zip(plan.row_lengths, starts))
    first_row: dict[int, int] = {}
    for r, g in enumerate(plan.group_of_row):
        first_row.setdefault(g, r)
    src_row, src_pos = [], []
    prefix_at = []  # packed position of group g's prefix token t
    for g, p in enumerate(plan.prefix_lengths):
        prefix_at.append(list(range(len(src_row), len(src_row) + p)))
        src_row += [first_row[g]] * p
        src_pos += range(p)
    suffix_at = []
    for r, (n, s) in enumerate(zip(plan.row_lengths, starts)):
        suffix_at.append(list(range(len(src_row), len(src_row) + n - s)))
        src_row += [r] * (n - s)
        src_pos += range(s, n)

    groups, rows = len(plan.prefix_lengths), len(plan.row_lengths)
    pre_index = torch.zeros((groups, prefix_width), dtype=torch.long)
    pre_mask = torch.zeros((groups, 1, prefix_width, prefix_width), dtype=torch.bool)
    pre_keep = []
    causal = torch.ones((prefix_width, prefix_width), dtype=torch.bool).tril()
    for g, at in enumerate(prefix_at):
        p = len(at)
        pre_index[g, :p] = torch.tensor(at, dtype=torch.long)
        pre_mask[g, 0, :p, :p] = causal[:p, :p]
        pre_mask[g, 0, p:, 0] = True  # padding queries: any one key keeps the softmax finite
        pre_keep += range(g * prefix_width, g * prefix_width + p)
    suf_q = torch.zeros((rows, suffix_width), dtype=torch.long)
    suf_kv = torch.zeros((rows, prefix_width + suffix_width), dtype=torch.long)
    suf_mask = torch.zeros((rows, 1, suffix_width, prefix_width + suffix_width), dtype=torch.bool)
    suf_keep = []
    causal = torch.ones((suffix_width, suffix_width), dtype=torch.bool).tril()
    for r, at in enumerate(suffix_at):
        g, m = plan.group_of_row[r], len(at)
        p = plan.prefix_lengths[g]
        suf_q[r, :m] = torch.tensor(at, dtype=torch.long)
        suf_kv[r, :p] = pre_index[g, :p]
        suf_kv[r, prefix_width : prefix_width + m] = torch.tensor(at, dtype=torch.long)
        suf_mask[r, 0, :m, :p] = True
        suf_mask[r, 0, :m, prefix_width : prefix_width + m] = causal[:m, :m]
        suf_mask[r, 0, m:, prefix_width] = True
        suf_keep += range(r * suffix_width, r * suffix_width + m)
    tensors = (pre_index.flatten(), pre_mask, suf_q.flatten(), suf_kv.flatten(), suf_mask,
               torch.tensor(pre_keep, dtype=torch.long), torch.tensor(suf_keep, dtype=torch.long))
    return src_row, src_pos, tuple(t.to(device) for t in tensors)


def forward_with_shared_prefix(
    backbone: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    plan: PrefixPlan,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states of the batch packed as one sequence, and the labels they predict.

    The sequence holds each group's prefix once, then each row's remaining tokens, with no
    padding; ``position_ids`` number every token as in the unpacked batch, and
    ``shared_prefix_attention`` lets a row's tokens see its group's prefix and its own earlier
    tokens, nothing else. Returns ``hidden`` ``(1, n, d)`` and ``shift_labels`` ``(1, n)``:
    ``shift_labels[0, i]`` is the token the hidden state at ``i`` should predict (-100 where
    nothing is scored), ready for the answer-only head.
    """
    device = input_ids.device
    src_row, src_pos, layout = _layout(plan, device)
    rows = torch.tensor(src_row, device=device)
    positions = torch.tensor(src_pos, device=device)
    ids = input_ids[rows, positions].unsqueeze(0)
    # the label a position predicts is the next token's; a row's last token predicts nothing
    next_pos = (positions + 1).clamp(max=labels.shape[1] - 1)
    row_len = torch.tensor(plan.row_lengths, device=device)[rows]
    targets = torch.where(positions + 1 < row_len, labels[rows, next_pos], IGNORE_INDEX).unsqueeze(0)

    config = backbone.config
    base = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
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
