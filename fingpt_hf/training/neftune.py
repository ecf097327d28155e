"""NEFTune (Jain et al., 2023) as the recipes use it: sized for the ordinary batch, optionally on some sources' rows.

transformers' hook (``neftune_noise_alpha``, a TrainingArguments field) adds U(-m, m) noise, m = alpha / sqrt(L x d),
to the input embeddings of every row while training, L the width of the sequence it sees. Two things here build on it:

* under ``shared_prefix`` the sequence the hook sees is the packed one, many times a row's length, so
  ``neftune_sized_for_the_batch`` scales alpha while it runs: each token gets the ordinary batch's magnitude;
* ``neftune_sources`` (a recipe option) noises only the rows of the named mixture sources: round 27 (README) found
  the noise raised FPB's validation figures on every seed and lowered FiQA-SA's on every seed. Each training row
  then carries a flag (``NOISE_COLUMN``, set from its ``dataset``), the collator batches it, the trainer puts it on
  the embeddings module (``rows_to_noise``) for the forward, and ``neftune_hook_with_row_mask``, transformers' hook
  with the same draw, multiplies the noise by it. Under ``shared_prefix`` rows that differ in the flag never share
  a prefix (``noise_flags`` keys the grouping), so every token's noise is its own row's, as in the ordinary batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterator

import torch
from torch import nn

#: Per training row: 1.0 where NEFTune's noise applies to the row, 0.0 where it does not.
NOISE_COLUMN = "neftune_noise"


def noise_flag(source: str, sources: Collection[str]) -> float:
    """The ``NOISE_COLUMN`` value of a row of mixture source ``source``."""
    return 1.0 if source in sources else 0.0


def neftune_hook_with_row_mask(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """transformers' ``neftune_post_forward_hook`` (the same draw, the same magnitude), times the module's
    ``neftune_mask`` where one is set: ``(rows, 1)`` for an ordinary batch, ``(1, tokens)`` for a packed one."""
    if not module.training:
        return output
    magnitude = module.neftune_noise_alpha / math.sqrt(output.size(1) * output.size(2))
    noise = torch.zeros_like(output).uniform_(-magnitude, magnitude)
    mask = getattr(module, "neftune_mask", None)
    if mask is not None:
        noise = noise * mask.to(noise.dtype).unsqueeze(-1)
    return output + noise


@contextlib.contextmanager
def rows_to_noise(embeddings: nn.Module, flags: torch.Tensor | None) -> Iterator[None]:
    """While a batch's forward runs, noise only its rows whose ``flags`` (one per row) are 1."""
    if flags is None:
        yield
        return
    embeddings.neftune_mask = flags.view(-1, 1)
    try:
        yield
    finally:
        embeddings.neftune_mask = None


def noise_flags(backbone: nn.Module) -> list[float] | None:
    """The rows' flags of the batch being run (``rows_to_noise``), for the shared-prefix grouping; None when
    every row is treated alike."""
    mask = getattr(backbone.get_input_embeddings(), "neftune_mask", None)
    return None if mask is None else mask.view(-1).tolist()


@contextlib.contextmanager
def neftune_sized_for_the_batch(backbone: nn.Module, packed: int, width: int, rows: torch.Tensor) -> Iterator[None]:
    """While the packed sequence runs, scale the embeddings' ``neftune_noise_alpha`` (set by transformers'
    ``activate_neftune`` or by the trainer for ``neftune_sources``, if it is) by sqrt(packed / width), and give
    each packed token its row's flag (``rows``: the batch row of every packed token).

    The hook draws noise of magnitude alpha / sqrt(L x d) with L the length of the sequence it sees: here the
    packed one (every group's prefix and every row's remainder, many times a row's length), which would shrink the
    noise by the square root of that ratio. Scaled, each token gets the noise it would get in the ordinary batch
    of ``width`` tokens."""
    embeddings = backbone.get_input_embeddings()
    alpha = getattr(embeddings, "neftune_noise_alpha", None)
    if alpha is None:
        yield
        return
    mask = getattr(embeddings, "neftune_mask", None)
    embeddings.neftune_noise_alpha = alpha * math.sqrt(packed / width)
    if mask is not None:
        embeddings.neftune_mask = mask.view(-1)[rows].unsqueeze(0)
    try:
        yield
    finally:
        embeddings.neftune_noise_alpha = alpha
        if mask is not None:
            embeddings.neftune_mask = mask
