"""Tiny random Llama models for tests (real transformers classes, seconds to build, no download)
and a recipe that trains them in seconds.

Imported by test modules as ``from tiny_models import ...`` (pytest's default ``prepend`` import
mode puts ``tests/`` on ``sys.path``). Every keyword not named here goes to ``LlamaConfig`` as is,
so each test states only what it needs (tied embeddings, special token ids, a longer context).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def tiny_sft_recipe(model: str | os.PathLike, **overrides: Any) -> dict[str, Any]:
    """A recipes/sft.py recipe that LoRA-trains ``model`` on 32 FPB rows for 4 CPU steps (seconds)."""
    recipe = {
        "model_name_or_path": str(model),
        "use_peft": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
        "lora_target_modules": "all-linear",
        "dataset_mixture": {"datasets": [{"name": "fpb", "weight": 1}], "max_samples": 32},
        "max_length": 96, "per_device_train_batch_size": 4, "max_steps": 4,
        "learning_rate": 5.0e-3, "lr_scheduler_type": "constant", "bf16": False, "use_cpu": True,
        "activation_checkpointing": False, "logging_steps": 1, "save_strategy": "no",
        "report_to": "none", "seed": 7, "disable_tqdm": True,
    }
    recipe.update(overrides)
    return recipe


def tiny_llama_config(vocab_size: int, hidden_size: int = 32, **overrides: Any):
    """A 2-layer Llama config (4 heads, 2 KV heads, MLP twice as wide as ``hidden_size``)."""
    from transformers import LlamaConfig

    shape = {"intermediate_size": 2 * hidden_size, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 256}
    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, **{**shape, **overrides})


def tiny_llama(vocab_size: int, seed: int = 0, **config: Any):
    """A randomly initialised ``LlamaForCausalLM`` (weights fixed by ``seed``) in eval mode."""
    import torch
    from transformers import LlamaForCausalLM

    model_config = tiny_llama_config(vocab_size, **config)
    torch.manual_seed(seed)
    return LlamaForCausalLM(model_config).eval()


def save_tiny_llama(path: str | os.PathLike, tokenizer: Any, seed: int = 0, pad_token: bool = False,
                    **config: Any) -> Path:
    """Save a tiny Llama sized to ``tokenizer`` (an object, or a directory to load it from) plus the
    tokenizer to ``path`` as safetensors, so it loads with ``from_pretrained`` like a real checkpoint.

    The config takes the tokenizer's BOS/EOS ids (``config`` may override them); ``pad_token=True``
    adds its pad id too (which zeroes that embedding row at initialisation, so it is opt-in).
    """
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if pad_token:
        ids["pad_token_id"] = tokenizer.pad_token_id
    tiny_llama(len(tokenizer), seed=seed, **{**ids, **config}).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def sft_script():
    """``recipes/sft.py`` as a module (its ``train`` and ``main``): the flow users run, called in-process."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "recipes" / "sft.py"
    spec = importlib.util.spec_from_file_location("sft_recipe_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
