"""One way to load a causal LM's weights, for training, evaluation, prediction and export.

Each caller adds what is its own (training: quantisation and ZeRO-3 placement; evaluation: the
adapter, the float32 head), but the ``from_pretrained`` call, the dtype names, the safetensors
rule and the error a user sees live here, so the paths cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from fingpt_hf.errors import FinGPTError

#: Names users give a dtype (recipes use torch's, the CLI the short ones) -> torch attribute.
DTYPE_NAMES: dict[str, str] = {
    "fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}


def torch_dtype(name: Any) -> Any:
    """``None``/``"auto"`` as they are (the checkpoint's own dtype), else the torch dtype."""
    import torch

    if name is None or name == "auto" or isinstance(name, torch.dtype):
        return name
    resolved = getattr(torch, DTYPE_NAMES.get(name, str(name)), None)
    if not isinstance(resolved, torch.dtype):
        raise FinGPTError(f"dtype {name!r}: choose auto or one of {', '.join(sorted(DTYPE_NAMES))}")
    return resolved


def load_causal_lm(
    path: str,
    *,
    dtype: Any = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device_map: Any = None,
    option: str = "model",
    **kwargs: Any,
) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` with the project's rules: weights from safetensors
    (original ``.bin`` checkpoints go through ``fingpt-hf model convert``), remote code only when
    asked, and a load failure reported as a ``FinGPTError`` naming ``option``."""
    from transformers import AutoModelForCausalLM

    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code,
            use_safetensors=True, **kwargs,
        )
    except (OSError, ValueError) as err:
        raise FinGPTError(f"{option}: cannot load {path!r}: {err}") from None
