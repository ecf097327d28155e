"""ChatGLM2-6B's original remote code as the oracle for conversion tests, with transformers-5 shims.

``load_original_tokenizer`` and ``load_original_model`` import ``tokenization_chatglm.py`` /
``modeling_chatglm.py`` from ``../shared/reference-models/chatglm2-6b`` (never from this
repository); ``write_tiny_original`` writes a tiny random checkpoint in the original Hub layout
(names and shapes taken from the original class itself) with the real tokenizer files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from reference_models import import_reference, load_state, reference_path, save_state

FOLDER = "chatglm2-6b"
#: bq-xiao's import of the official tokenizer: 7fabe56 plus the ``padding_side`` kwarg on ``_pad``
#: that transformers 5 passes (SOURCES.md); the official files fail on transformers 5 without it.
TOKENIZER_FILE = "tokenization_chatglm.py"
MODELING_FILES = {
    "configuration_chatglm.py": "configuration_chatglm.py",
    "modeling_chatglm.py": "modeling_chatglm.py",
    "quantization.py": "quantization.py",
}

#: The real config's keys, shrunk (vocabulary and tokenizer stay real).
TINY_CONFIG: dict[str, Any] = {
    "model_type": "chatglm",
    "architectures": ["ChatGLMModel"],
    "add_bias_linear": False,
    "add_qkv_bias": True,
    "apply_query_key_layer_scaling": True,
    "apply_residual_connection_post_layernorm": False,
    "attention_dropout": 0.0,
    "attention_softmax_in_fp32": True,
    "bias_dropout_fusion": True,
    "ffn_hidden_size": 128,
    "fp32_residual_connection": False,
    "hidden_dropout": 0.0,
    "hidden_size": 64,
    "kv_channels": 16,
    "layernorm_epsilon": 1e-05,
    "multi_query_attention": True,
    "multi_query_group_num": 2,
    "num_attention_heads": 4,
    "num_layers": 2,
    "original_rope": True,
    "padded_vocab_size": 65024,
    "post_layer_norm": True,
    "rmsnorm": True,
    "seq_length": 256,
    "use_cache": True,
    "torch_dtype": "float32",
    "tie_word_embeddings": False,
    "eos_token_id": 2,
    "pad_token_id": 0,
}


def load_original_tokenizer(tmp_dir: Path) -> Any:
    """The original ``ChatGLMTokenizer`` on the real ``tokenizer.model``."""
    package = import_reference(FOLDER, {TOKENIZER_FILE: TOKENIZER_FILE}, Path(tmp_dir))
    return package.tokenization_chatglm.ChatGLMTokenizer(str(reference_path(FOLDER, "tokenizer.model")))


def _modeling(tmp_dir: Path) -> ModuleType:
    return import_reference(FOLDER, MODELING_FILES, Path(tmp_dir))


def _build(package: ModuleType, config: dict[str, Any]) -> Any:
    """The original model class, fp32, weights initialised (values are replaced by the caller)."""
    import torch

    settings = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "torch_dtype")}
    cfg = package.configuration_chatglm.ChatGLMConfig(**settings)
    cfg.torch_dtype = torch.float32  # the original passes it to every nn.Linear as dtype=
    # Shim: ChatGLMForConditionalGeneration.__init__ reads config.max_length, gone from transformers 5 configs.
    cfg.max_length = config.get("seq_length", 2048)
    # Shim: transformers 5 no longer keeps use_cache on every config; ChatGLMModel.forward reads it.
    cfg.use_cache = config.get("use_cache", True)
    return package.modeling_chatglm.ChatGLMForConditionalGeneration(cfg, empty_init=False)


def load_original_model(checkpoint_dir: Path, tmp_dir: Path) -> Any:
    """The original ``ChatGLMForConditionalGeneration`` (fp32, eval) with the checkpoint's weights."""
    checkpoint_dir = Path(checkpoint_dir)
    config = json.loads((checkpoint_dir / "config.json").read_text(encoding="utf-8"))
    model = _build(_modeling(tmp_dir), config)
    model.load_state_dict(load_state(checkpoint_dir), strict=True)
    return model.eval()


def write_tiny_original(dest: Path, tmp_dir: Path, seed: int = 0, fmt: str = "bin",
                        config: dict[str, Any] | None = None) -> Path:
    """A tiny random ChatGLM2 checkpoint in the original layout at ``dest``; returns ``dest``.

    ``fmt``: ``"bin"`` (one pytorch_model.bin), ``"bin-sharded"`` (the Hub's pytorch_model-0000N-of-0000M.bin
    with an index) or ``"safetensors"``; ``config`` overrides keys of ``TINY_CONFIG`` (e.g.
    ``multi_query_attention=False``). Every weight, norms and biases included, is random around
    its usual scale, so a swapped or unsplit tensor shows in the logits.
    """
    import torch

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = {**TINY_CONFIG, **(config or {})}
    model = _build(_modeling(tmp_dir), config)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("inv_freq"):
            state[name] = tensor.clone()
        elif name.endswith("layernorm.weight"):
            state[name] = 1.0 + 0.2 * torch.randn(tensor.shape, generator=generator)
        elif name.endswith(".bias"):
            state[name] = 0.5 * torch.randn(tensor.shape, generator=generator)
        else:
            scale = 1.0 if "word_embeddings" in name else tensor.shape[-1] ** -0.5
            state[name] = scale * torch.randn(tensor.shape, generator=generator)
    save_state(state, dest, fmt)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copyfile(reference_path(FOLDER, name), dest / name)
    return dest
