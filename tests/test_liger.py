"""liger_when_available: Liger kernels on CUDA when installed, never a hard requirement."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from fingpt_hf.training import liger


def args(on: bool = False):
    return SimpleNamespace(use_liger_kernel=on, device=SimpleNamespace(type="cpu"))


def test_off_unless_asked():
    a = args()
    assert liger.enable_liger_when_available(a, wanted=False, device_type="cuda") is False
    assert a.use_liger_kernel is False


def test_an_explicit_use_liger_kernel_is_kept():
    a = args(on=True)
    assert liger.enable_liger_when_available(a, wanted=False) is True and a.use_liger_kernel


def test_cpu_stays_off_and_says_why(caplog):
    a = args()
    with caplog.at_level(logging.INFO, logger=liger.__name__):
        assert liger.enable_liger_when_available(a, wanted=True) is False
    assert not a.use_liger_kernel and "not on a CUDA device (cpu)" in caplog.text


def test_cuda_without_the_package_stays_off(monkeypatch, caplog):
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_liger_kernel_available", lambda: False)
    a = args()
    with caplog.at_level(logging.INFO, logger=liger.__name__):
        assert liger.enable_liger_when_available(a, wanted=True, device_type="cuda") is False
    assert not a.use_liger_kernel and "pip install liger-kernel" in caplog.text


def test_cuda_with_the_package_turns_it_on(monkeypatch):
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_liger_kernel_available", lambda: True)
    a = args()
    assert liger.enable_liger_when_available(a, wanted=True, device_type="cuda") is True
    assert a.use_liger_kernel is True
