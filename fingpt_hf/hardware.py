"""What this machine computes natively, for choosing dtypes in training and evaluation alike."""

from __future__ import annotations


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bfloat16 matmuls natively (AVX512-BF16 or AMX), not by emulation:
    there bf16 runs about twice as fast as float32; elsewhere it is slower."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
