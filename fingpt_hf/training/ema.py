"""An exponential moving average of the adapter's weights (Polyak averaging), saved as the adapter.

After every optimizer step the average moves ``1 - decay`` of the way to the trained weights; at the end of
training the average replaces them, so ``save_model`` (and any evaluation after ``train``) sees the average.
Averaging the last few hundred steps' weights smooths the noise a learning rate that stays high leaves in the last
step's; under the CPU recipe's cosine schedule, which is near zero by then, it tied the last step on validation
(README, round 25), so the recipe does not use it.

The average lives in the optimizer's per-parameter state (key ``EMA_KEY``), beside Adam's moments: every
checkpoint the Trainer writes holds it in ``optimizer.pt``, and resuming restores it with the optimizer, so a
killed run ends with the adapter an uninterrupted run gives, with no file of its own to keep in step with the
checkpoint. That is also why it needs an optimizer that keeps one state per parameter (not DeepSpeed's or FSDP's
flattened shards) and float32 trainable weights (a bfloat16 average would round away steps of ``1 - decay``).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from transformers import TrainerCallback

from fingpt_hf.errors import FinGPTError

#: The optimizer-state key that holds a parameter's average.
EMA_KEY = "fingpt_ema"


def _trained(optimizer: Any) -> Iterator[torch.Tensor]:
    for group in optimizer.param_groups:
        for param in group["params"]:
            if param.requires_grad:
                yield param


class AdapterEMACallback(TrainerCallback):
    """Keeps the average (``ema_decay``) in the optimizer's state and swaps it in at the end of training."""

    def __init__(self, decay: float):  # a recipe's value is checked with the others (training/validation.py)
        self.decay = decay

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        for param in _trained(optimizer):
            if param.dtype != torch.float32:
                raise FinGPTError(f"ema_decay: the trained weights are {param.dtype}, the average needs float32 "
                                  "(peft's default for adapters); unset ema_decay or keep the adapter in float32")

    @torch.no_grad()
    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if getattr(optimizer, "step_was_skipped", False):  # fp16 overflow: the weights did not move
            return
        for param in _trained(optimizer):
            slot = optimizer.state[param]
            if EMA_KEY in slot:
                slot[EMA_KEY].lerp_(param, 1.0 - self.decay)
            else:  # the first step starts the average, so the untrained start carries no weight
                slot[EMA_KEY] = param.detach().clone()

    @torch.no_grad()
    def on_train_end(self, args, state, control, optimizer=None, **kwargs):
        for param in _trained(optimizer):
            average = optimizer.state[param].get(EMA_KEY)
            if average is not None:
                param.copy_(average)
