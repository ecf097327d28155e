"""What this machine computes natively, for choosing dtypes in training and evaluation alike."""

from __future__ import annotations


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bfloat16 matmuls natively (AVX512-BF16 or AMX), not by emulation:
    there bf16 runs about twice as fast as float32; elsewhere it is slower."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def emulated_bf16_warning(device_type: str, bf16: bool) -> str | None:
    """What to tell a user who asks for bf16 on a CPU that only emulates it, or None.

    Without AVX512-BF16/AMX a bf16 matmul is emulated: 0.3-2.3 GFLOP/s on an AVX2-only AMD EPYC
    against ~140 in float32 (``benchmarks/results/train_throughput/cpu_avx2_fp32_batch16_top20.json``
    ran float32 for that reason), so such a run trains, but hundreds of times slower.
    """
    if not bf16 or device_type != "cpu" or cpu_supports_bf16():
        return None
    return ("bf16: true on a CPU without native bf16 (no AVX512-BF16 or AMX): every bf16 matmul is emulated, "
            "hundreds of times slower than float32; set `bf16: false` (FastSFTTrainer then trains in float32)")
