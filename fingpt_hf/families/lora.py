"""Resolve LoRA target modules for a model and build the peft ``LoraConfig``.

peft accepts a target list as long as *one* name matches, so a wrong list (FinGPT's
``q_proj/k_proj/v_proj`` on Baichuan's fused ``W_pack``) quietly trains nothing or only part
of what was asked. Here every requested target must match a module, or we raise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from fingpt_hf.errors import FinGPTError
from fingpt_hf.families.registry import family_by_name, get_family
from fingpt_hf.families.spec import FamilySpec

ALL_LINEAR = "all-linear"


def _linear_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D  # GPT-2 style "linear" layers

    return (nn.Linear, Conv1D)


def module_matches(module_name: str, target: str) -> bool:
    """peft's rule for a list entry: the full name, or a dotted suffix of it."""
    return module_name == target or module_name.endswith("." + target)


def _output_head(model: nn.Module) -> nn.Module | None:
    try:
        return model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None


def linear_module_names(model: nn.Module) -> list[str]:
    """Full names of the linear layers LoRA may wrap: every linear layer but the output head."""
    head = _output_head(model)
    types = _linear_types()
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, types) and module is not head and name.split(".")[-1] != "lm_head"
    ]


def all_linear_targets(model: nn.Module) -> list[str]:
    """Leaf names of all linear layers but the head (full names where a leaf name is ambiguous)."""
    linear = linear_module_names(model)
    linear_set = set(linear)
    all_names = [name for name, _ in model.named_modules() if name]
    targets: list[str] = []
    for leaf in sorted({name.split(".")[-1] for name in linear}):
        matched = [n for n in all_names if module_matches(n, leaf)]
        if all(n in linear_set for n in matched):
            targets.append(leaf)
        else:  # the leaf name also names the head or a non-linear module
            targets.extend(n for n in linear if module_matches(n, leaf))
    if not targets:
        raise FinGPTError(f"{type(model).__name__} has no linear layers for LoRA to target")
    return targets


def _sample_module_names(model: nn.Module, limit: int = 12) -> str:
    leaves = sorted({name.split(".")[-1] for name in linear_module_names(model)})
    shown = ", ".join(leaves[:limit]) + (", ..." if len(leaves) > limit else "")
    return shown or "(none)"


def resolve_target_modules(
    model: nn.Module,
    target_modules: str | Sequence[str] | None = None,
    family: FamilySpec | str | None = None,
) -> list[str] | str:
    """The checked target list for ``model``: None means the family's targets.

    A string other than ``"all-linear"`` is a peft regular expression that must fully match at
    least one module name.
    """
    if isinstance(family, str):
        family = family_by_name(family)
    if family is None:
        family = get_family(getattr(model, "config", None))
    if target_modules is None:
        target_modules = ALL_LINEAR if family.targets_all_linear else list(family.lora_target_modules)
    if isinstance(target_modules, str):
        if target_modules == ALL_LINEAR:
            return all_linear_targets(model)
        names = [name for name, _ in model.named_modules()]
        if not any(re.fullmatch(target_modules, name) for name in names):
            raise FinGPTError(
                f"LoRA target_modules regex {target_modules!r} matches no module of "
                f"{type(model).__name__} (family {family.name}); its linear layers are named: "
                f"{_sample_module_names(model)}"
            )
        return target_modules
    targets = list(dict.fromkeys(target_modules))
    if not targets:
        raise FinGPTError("LoRA target_modules is empty; leave it unset to use the family's targets")
    names = [name for name, _ in model.named_modules()]
    unmatched = [t for t in targets if not any(module_matches(n, t) for n in names)]
    if unmatched:
        raise FinGPTError(
            f"LoRA target_modules {unmatched} match no module of {type(model).__name__} "
            f"(family {family.name}), so LoRA would not train them; its linear layers are named: "
            f"{_sample_module_names(model)}"
        )
    return targets


def top_layers(model: nn.Module, count: int) -> list[int] | None:
    """Indices of the last ``count`` decoder layers (peft's ``layers_to_transform``); None for all."""
    if not count:
        return None
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    total = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
    if not total:
        raise FinGPTError(f"lora_top_layers: {type(model).__name__}'s config gives no layer count")
    if count > total:
        raise FinGPTError(f"lora_top_layers: {count} is more than the model's {total} layers")
    return list(range(total - count, total))


def build_lora_config(
    model: nn.Module,
    *,
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: str | Sequence[str] | None = None,
    family: FamilySpec | str | None = None,
    **lora_kwargs: Any,
):
    """A causal-LM ``peft.LoraConfig`` whose targets are known to exist in ``model``."""
    from peft import LoraConfig, TaskType

    targets = resolve_target_modules(model, target_modules, family)
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=targets,
        bias="none",
        task_type=TaskType.CAUSAL_LM,
        **lora_kwargs,
    )
