"""Liger kernels on GPU when they are installed, without making them a hard requirement.

``use_liger_kernel: true`` (a TrainingArguments field) fails when liger-kernel is missing, so a
recipe meant for many machines cannot simply set it. A recipe sets ``liger_when_available: true``
instead: on a CUDA device with liger-kernel >= 0.3 installed, ``use_liger_kernel`` is turned on
(fused RMSNorm, SwiGLU, RoPE and cross-entropy Triton kernels for the families Liger knows);
anywhere else training runs as without it, and the log says why.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def enable_liger_when_available(training_args: Any, wanted: bool, device_type: str | None = None) -> bool:
    """Turn on ``training_args.use_liger_kernel`` if ``wanted`` and usable here; returns whether it is on."""
    if training_args.use_liger_kernel or not wanted:
        return bool(training_args.use_liger_kernel)
    from transformers.utils import is_liger_kernel_available

    device_type = device_type or training_args.device.type
    if device_type != "cuda":
        logger.info("liger_when_available: not on a CUDA device (%s); Liger kernels stay off", device_type)
        return False
    if not is_liger_kernel_available():
        logger.info("liger_when_available: liger-kernel >= 0.3 is not installed; Liger kernels stay off "
                    "(pip install liger-kernel)")
        return False
    training_args.use_liger_kernel = True
    logger.info("liger_when_available: Liger kernels on")
    return True
