"""Model-family registry: LoRA targets, pad/EOS fixes, remote code; and the embedded default model.

``build_lora_config`` and friends import peft/torch, so they load on first use.
"""

from __future__ import annotations

from typing import Any

from fingpt_hf.families.registry import check_remote_code, family_by_name, get_family, list_families
from fingpt_hf.families.spec import ALL_LINEAR_TARGETS, FamilySpec
from fingpt_hf.families.tokenization import prepare_tokenizer, special_prefix_length

_LAZY = {"build_lora_config", "resolve_target_modules", "all_linear_targets", "linear_module_names"}

__all__ = [
    "ALL_LINEAR_TARGETS",
    "FamilySpec",
    "all_linear_targets",
    "build_lora_config",
    "check_remote_code",
    "family_by_name",
    "get_family",
    "linear_module_names",
    "list_families",
    "prepare_tokenizer",
    "resolve_target_modules",
    "special_prefix_length",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from fingpt_hf.families import lora

        return getattr(lora, name)
    raise AttributeError(f"module 'fingpt_hf.families' has no attribute {name!r}")
