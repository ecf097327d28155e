"""fingpt_hf.families.loading: the one from_pretrained path that training and evaluation share."""

from __future__ import annotations

import pytest
import torch

from fingpt_hf.errors import FinGPTError
from fingpt_hf.families.loading import load_causal_lm, torch_dtype
from tiny_models import save_tiny_llama


def test_dtype_names():
    assert torch_dtype("fp16") is torch.float16 and torch_dtype("bfloat16") is torch.bfloat16
    assert torch_dtype("float64") is torch.float64 and torch_dtype("auto") == "auto" and torch_dtype(None) is None
    with pytest.raises(FinGPTError, match="dtype 'fast'"):
        torch_dtype("fast")


def test_loads_safetensors_and_names_the_option(tmp_path, default_model_path):
    path = save_tiny_llama(tmp_path / "tiny", default_model_path)
    model = load_causal_lm(str(path), dtype="fp16")
    assert next(model.parameters()).dtype is torch.float16
    (path / "model.safetensors").rename(path / "elsewhere.bin")
    with pytest.raises(FinGPTError, match="--model: cannot load"):
        load_causal_lm(str(path), option="--model")
