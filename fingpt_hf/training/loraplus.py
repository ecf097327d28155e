"""LoRA+ (Hayou et al., 2024): B's learning rate a multiple of A's, through the Trainer's optimizer hook.

LoRA's B starts at zero and A at random, so one shared rate moves B too little for the adapter to learn new
features at a model's width; LoRA+ gives B (and, in peft's grouping, every 1-D trainable parameter such as DoRA's
magnitudes) ``ratio`` times the rate. peft's ``create_loraplus_optimizer`` makes the groups; this module hands it to
transformers as an optimizer factory, so the optimizer class and settings stay the recipe's ``optim`` and the
scheduler (warmup, cosine) scales every group alike.
"""

from __future__ import annotations

from typing import Any, Callable

from fingpt_hf.errors import FinGPTError

#: Keys through which transformers' optimizers that build their own parameter groups pass them (GaLore, APOLLO,
#: LOMO, layer-wise variants): LoRA+'s groups would be dropped, so those are refused.
_OWN_GROUPS = ("params", "model", "optimizer_dict")


def _loraplus_factory() -> Callable[..., Any]:
    """transformers calls an optimizer factory with no arguments, then the result with ``(model, **kwargs)``."""
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer


def loraplus_optimizer(training_args: Any, ratio: float) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``optimizer_cls_and_kwargs`` for the Trainer: the recipe's optimizer with B's rate ``ratio`` times A's.

    Refused, before any weights load, for an ``optim`` that builds its own groups or is itself a factory."""
    from transformers import Trainer
    from transformers.trainer_optimizer import is_optimizer_factory

    optim = getattr(training_args.optim, "value", training_args.optim)
    try:
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args)
    except (ImportError, ValueError, TypeError) as err:
        raise FinGPTError(f"loraplus_lr_ratio: optim {optim!r} cannot be set up here ({err}); LoRA+ needs a "
                          "plain optimizer such as adamw_torch") from None
    if is_optimizer_factory(optimizer_cls) or any(key in kwargs for key in _OWN_GROUPS):
        raise FinGPTError(f"loraplus_lr_ratio: optim {optim!r} builds its own parameter groups, which would drop "
                          "LoRA+'s; use a plain optimizer such as adamw_torch or unset loraplus_lr_ratio")
    return _loraplus_factory, {**kwargs, "optimizer_cls": optimizer_cls, "loraplus_lr_ratio": ratio,
                               "loraplus_weight_decay": training_args.weight_decay}
