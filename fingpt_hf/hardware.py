"""What this machine computes natively, for choosing dtypes in training and evaluation alike."""

from __future__ import annotations


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bfloat16 matmuls natively (AVX512-BF16 or AMX), not by emulation:
    there bf16 runs about twice as fast as float32; elsewhere it is slower."""
    return _torch_cpu_has("_is_avx512_bf16_supported") or _torch_cpu_has("_is_amx_tile_supported")


def _torch_cpu_has(check: str) -> bool:
    """One of torch.cpu's private feature checks; False where this torch has no such check."""
    import torch

    return bool(getattr(torch.cpu, check, lambda: False)())


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


def cpu_description() -> dict[str, object]:
    """The facts that decide CPU speed and bf16 rounding, for the records runs leave behind.

    Two machines of "the same kind" here differ in exactly these (an AMD EPYC with AVX512-BF16
    against an Intel Xeon with AMX run other bf16 kernels, at 1.7x another speed), so a record
    without them cannot say why two runs of one recipe differ.
    """
    import os
    from pathlib import Path

    import torch

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux
        pass
    return {"model_name": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": _torch_cpu_has("_is_avx512_bf16_supported"), "amx": _torch_cpu_has("_is_amx_tile_supported")}


BF16_KERNEL_FEATURES = ("amx", "avx512_bf16", "torch_capability")


def bf16_kernel_features(cpu: dict[str, object]) -> dict[str, object]:
    """The part of a ``cpu_description`` that picks torch's bf16 matmul kernels, and so how they round.

    Two runs of one recipe give the same adapter only where these agree: round 19's seed 42, trained on an
    Intel Xeon with AMX, scored validation otherwise when trained again on an AMD EPYC with AVX512-BF16 alone
    (``selection_round19.json``, its ``rebuilt``)."""
    return {key: cpu.get(key) for key in BF16_KERNEL_FEATURES}
