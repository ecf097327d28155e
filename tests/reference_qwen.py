"""Qwen v1's original code as a test oracle: its tokenizer, its model, and tiny original checkpoints.

Imports ``modeling_qwen.py`` (Qwen-7B's final revision, which has the QwenLM/Qwen#933 padding fix)
and ``tokenization_qwen.py`` from ``../shared/reference-models/qwen-7b-14b-v1`` through
``reference_models.import_reference``. The one transformers-5 shim, ``get_head_mask`` (removed
from ``PreTrainedModel``), is set on the imported package's own class only. The
``transformers_stream_generator`` stub that ``trust_remote_code`` loading needs is not needed
here: the module is imported directly and only ``chat_stream`` would import that package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from reference_models import import_reference, load_state, reference_path, save_state

FOLDER = "qwen-7b-14b-v1"
TOKENIZER_FILES = ("qwen.tiktoken", "tokenizer_config.json", "generation_config.json")
_CODE = {name: name for name in ("configuration_qwen.py", "modeling_qwen.py", "qwen_generation_utils.py",
                                 "tokenization_qwen.py")}
# Tiny sizes; vocab_size stays the real one because the special tokens start at 151643.
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "kv_channels": 16,
        "intermediate_size": 256, "seq_length": 256, "rotary_emb_base": 20000}


def reference_package(tmp_dir: Path) -> ModuleType:
    """The original Qwen v1 modules as one package, with the get_head_mask shim."""
    package = import_reference(FOLDER, _CODE, tmp_dir)
    model_class = package.modeling_qwen.QWenPreTrainedModel
    if not hasattr(model_class, "get_head_mask"):
        model_class.get_head_mask = lambda self, head_mask, num_layers, *args, **kwargs: [None] * num_layers
    return package


def load_original_tokenizer(tmp_dir: Path) -> Any:
    """The original ``QWenTokenizer`` on the real ``qwen.tiktoken`` (needs tiktoken)."""
    package = reference_package(tmp_dir)
    return package.tokenization_qwen.QWenTokenizer(vocab_file=str(reference_path(FOLDER, "qwen.tiktoken")))


def _original_config(package: ModuleType, values: dict[str, Any]) -> Any:
    # fp32=True as the model card says for CPU: otherwise the original casts itself to bf16 on a GPU.
    return package.configuration_qwen.QWenConfig(**{**values, "fp32": True, "bf16": False, "fp16": False})


def load_original_model(checkpoint_dir: Path, tmp_dir: Path) -> Any:
    """``QWenLMHeadModel`` (fp32, eval; torch SDPA attention, the path it picks without flash-attn)
    with the weights of an original-layout checkpoint, loaded strictly."""
    package = reference_package(tmp_dir)
    values = json.loads((Path(checkpoint_dir) / "config.json").read_text())
    model = package.modeling_qwen.QWenLMHeadModel(_original_config(package, values))
    model.load_state_dict(load_state(Path(checkpoint_dir)), strict=True)
    return model.eval()


def write_tiny_original(
    dest: Path, tmp_dir: Path, seed: int = 0, fmt: str = "safetensors-sharded", **config: Any
) -> Path:
    """A tiny random Qwen v1 checkpoint in the original Hub layout at ``dest``; ``config`` overrides
    config.json values (and so the tensor shapes). ``fmt``: ``safetensors-sharded`` (two shards and
    an index, as Qwen-7B on the Hub) or ``bin`` (one pytorch_model.bin)."""
    import torch

    package = reference_package(tmp_dir)
    values = {**json.loads(reference_path(FOLDER, "config.json").read_text()), **TINY, **config}
    torch.manual_seed(seed)
    model = package.modeling_qwen.QWenLMHeadModel(_original_config(package, values))
    _randomize(model, seed)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(values, indent=2))
    for name in TOKENIZER_FILES:
        shutil.copyfile(reference_path(FOLDER, name), dest / name)
    save_state(state, dest, fmt)
    return dest


def _randomize(model: Any, seed: int) -> None:
    """Redraw every weight so nothing is at its init value (norms are 1 and biases 0 there), at a
    scale that gives logits of order one: a wrong mapping then shows as a large difference."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.2 * noise)
            elif name.endswith("wte.weight"):
                param.copy_(noise)
            else:
                param.copy_(noise / param.shape[1] ** 0.5)
