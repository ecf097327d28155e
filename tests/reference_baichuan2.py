"""Baichuan2-7B's original remote code as the oracle for conversion tests, with transformers-5 shims.

``load_original_tokenizer`` and ``load_original_model`` import ``tokenization_baichuan.py`` /
``modeling_baichuan.py`` from ``../shared/reference-models/baichuan2-7b`` (never from this
repository); ``write_tiny_original`` writes a tiny random checkpoint in the original Hub layout
(names and shapes taken from the original class itself) with the real tokenizer files.

Which copies (SOURCES.md has no verified Hub copy of either): the tokenizer is pandong2011's,
which is mlpod's with ``sp_model`` loaded before ``super().__init__`` (the one change transformers 5
needs; mlpod's fails in its constructor). The modeling oracle is pandong2011's too: mlpod's copy
carries debug edits (xformers and the ``sdp_kernel`` block commented out, a ``from_pretrained`` that
returns an untrained model when given a config), while pandong2011's has the ``NormHead`` form
quoted from the Hub's Baichuan2-7B-Base main. ``MLPOD_MODELING`` is kept for the test that shows
both copies give the same logits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from reference_models import import_reference, load_state, reference_path, save_state

FOLDER = "baichuan2-7b"
TOKENIZER_FILE = "tokenization_baichuan__pandong2011.py"
ORACLE_MODELING = "modeling_baichuan__pandong2011.py"
MLPOD_MODELING = "modeling_baichuan.py"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
#: Baichuan2's sentencepiece vocabulary = the real config's vocab_size.
REAL_VOCAB = 125696

#: The real Baichuan2-7B-Base config.json's keys, shrunk (vocabulary, positions and tokenizer stay real).
TINY_CONFIG: dict[str, Any] = {
    "architectures": ["BaichuanForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_baichuan.BaichuanConfig",
        "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM",
    },
    "tokenizer_class": "BaichuanTokenizer",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "max_position_embeddings": 4096,
    "model_max_length": 4096,
    "model_type": "baichuan",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "rms_norm_eps": 1e-06,
    "_from_model_config": True,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "transformers_version": "4.29.2",
    "use_cache": True,
    "vocab_size": REAL_VOCAB,
}
#: The Baichuan2 Chat generation_config.json values (SOURCES.md; the copy in the folder is mlpod's debug edit).
GENERATION_CONFIG: dict[str, Any] = {
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "user_token_id": 195, "assistant_token_id": 196,
    "max_new_tokens": 2048, "temperature": 0.3, "top_k": 5, "top_p": 0.85, "repetition_penalty": 1.05,
    "do_sample": True, "transformers_version": "4.29.2",
}
_NOT_SETTINGS = ("architectures", "auto_map", "model_type", "torch_dtype", "transformers_version", "_from_model_config")


def load_original_tokenizer(tmp_dir: Path) -> Any:
    """The original ``BaichuanTokenizer`` as ``from_pretrained`` builds it from the real files
    (tokenizer_config.json: no BOS/EOS added, pad ``<unk>``, model_max_length 4096)."""
    package = import_reference(FOLDER, {"tokenization_baichuan.py": TOKENIZER_FILE}, Path(tmp_dir))
    return package.tokenization_baichuan.BaichuanTokenizer.from_pretrained(str(reference_path(FOLDER)))


def _modeling(tmp_dir: Path, modeling: str) -> ModuleType:
    files = {
        "configuration_baichuan.py": "configuration_baichuan.py",
        "modeling_baichuan.py": modeling,
        "generation_utils.py": "generation_utils.py",
    }  # quantizer.py is left out: it imports bitsandbytes at the top, and only the int4 paths import it
    return import_reference(FOLDER, files, Path(tmp_dir)).modeling_baichuan


def _build(modeling: ModuleType, config: dict[str, Any]) -> Any:
    """The original ``BaichuanForCausalLM`` (fp32); its weights are replaced by the caller."""
    settings = {k: v for k, v in config.items() if k not in _NOT_SETTINGS}
    return modeling.BaichuanForCausalLM(modeling.BaichuanConfig(**settings))


def load_original_model(checkpoint_dir: Path, tmp_dir: Path, modeling: str = ORACLE_MODELING) -> Any:
    """The original ``BaichuanForCausalLM`` (fp32, eval) with the checkpoint's weights.

    The weights are loaded before any forward: in eval, ``NormHead`` normalises its weight once,
    on the first forward (``first_flag``), and never again, so weights loaded later stay raw.
    """
    checkpoint_dir = Path(checkpoint_dir)
    config = json.loads((checkpoint_dir / "config.json").read_text(encoding="utf-8"))
    model = _build(_modeling(tmp_dir, modeling), config)
    model.load_state_dict(load_state(checkpoint_dir), strict=True)
    return model.eval()


def write_tiny_original(dest: Path, tmp_dir: Path, seed: int = 0, fmt: str = "bin-sharded", *,
                        vocab_size: int = REAL_VOCAB) -> Path:
    """A tiny random Baichuan2-7B checkpoint in the original layout at ``dest``; returns ``dest``.

    ``fmt``: ``"bin-sharded"`` (the Hub's two pytorch_model-0000N-of-00002.bin with an index) or
    ``"safetensors"`` (one model.safetensors). Every weight is random around its usual scale, the
    RMSNorm weights around 1 and the lm_head rows at different norms, so a swapped or unsplit
    tensor, or an unfolded NormHead, shows in the logits. ``vocab_size`` below the tokenizer's
    piece count makes a checkpoint whose tokenizer does not fit (for the refusal test).
    """
    import torch

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = {**TINY_CONFIG, "vocab_size": vocab_size}
    model = _build(_modeling(tmp_dir, ORACLE_MODELING), config)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        shape = tensor.shape
        if name.endswith("norm.weight"):
            state[name] = 1.0 + 0.2 * torch.randn(shape, generator=generator)
        elif name == "lm_head.weight":
            row_norms = 0.5 + 1.5 * torch.rand((shape[0], 1), generator=generator)
            state[name] = row_norms * torch.randn(shape, generator=generator) * shape[1] ** -0.5
        elif name == "model.embed_tokens.weight":
            state[name] = torch.randn(shape, generator=generator)
        else:
            state[name] = torch.randn(shape, generator=generator) * shape[-1] ** -0.5
    save_state(state, dest, fmt)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    (dest / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2))
    for name in TOKENIZER_FILES:
        shutil.copyfile(reference_path(FOLDER, name), dest / name)
    return dest
