"""Baichuan2-7B Base/Chat (baichuan-inc/Baichuan2-7B-*, ``model_type`` "baichuan") -> ``LlamaForCausalLM``.

Baichuan2-7B is a Llama with two packing differences: q/k/v live in one ``W_pack`` matrix, and the
output layer is a ``NormHead`` that L2-normalises each row of its weight before the matmul. In
eval the normalisation is a fixed function of the stored weight, so it is folded into
``lm_head.weight`` once here; the rotary embedding (base 10000, rotate-half), RMSNorm and SwiGLU
MLP are Llama's. Baichuan2-13B shares the ``model_type`` but uses ALiBi instead of rotary
positions, which Llama cannot express, so it is refused. The tokenizer is the sentencepiece model
turned into a ``tokenizers`` BPE by transformers' own converter, which follows the model's
normalizer spec (no dummy prefix, spaces kept, byte fallback, user-defined pieces kept whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingpt_hf.conversion.spec import ConversionError, Converter, generation_config_from, read_json_object, read_sentencepiece

#: ``RotaryEmbedding.__init__``'s fixed base in the original code (the config has no setting for it).
ROPE_THETA = 10000.0
#: The original ``BaichuanConfig`` defaults, used where config.json leaves a key out.
DEFAULTS: dict[str, Any] = {
    "hidden_act": "silu", "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "initializer_range": 0.02,
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}
#: ``BaichuanTokenizer.__init__`` defaults (the Hub's tokenizer_config.json overrides add_bos_token).
TOKENIZER_DEFAULTS: dict[str, Any] = {
    "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": None,
    "add_bos_token": True, "add_eos_token": False,
}
_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
_PREFIX = "model.layers."
_LAYER_NAMES = (
    "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    "input_layernorm.weight", "post_attention_layernorm.weight",
)
_TOP_NAMES = ("model.embed_tokens.weight", "model.norm.weight")


def _token(value: Any) -> str | None:
    """A special token from tokenizer_config.json: a string or a serialised ``AddedToken`` dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


class Baichuan2Converter(Converter):
    family = "baichuan2"
    title = "Baichuan2-7B"
    source_model_types = ("baichuan",)
    tokenizer_files = ("tokenizer.model",)
    native_architecture = "LlamaForCausalLM"

    def check_source(self, source: dict[str, Any]) -> None:
        """Refuse configs ``LlamaForCausalLM`` cannot compute exactly (say why, name the file)."""
        where = "config.json"
        missing = [key for key in _REQUIRED if key not in source]
        if missing:
            raise ConversionError(f"{where}: a Baichuan config without {', '.join(missing)}")
        if "max_position_embeddings" not in source:
            raise ConversionError(
                f"{where}: no max_position_embeddings (only model_max_length): this is the 13B layout "
                f"(Baichuan2-13B / Baichuan-13B), which uses ALiBi attention biases instead of rotary "
                f"positions and has no {self.native_architecture} equivalent; only Baichuan2-7B converts"
            )
        architectures = source.get("architectures") or ["BaichuanForCausalLM"]
        if architectures != ["BaichuanForCausalLM"]:
            raise ConversionError(
                f"{where}: architectures {architectures}: Baichuan2-7B is BaichuanForCausalLM (Baichuan-1's "
                "BaiChuanForCausalLM has a plain lm_head, not Baichuan2's NormHead, so the same mapping would be wrong)"
            )
        if source.get("quantization_config"):
            raise ConversionError(
                f"{where}: quantization_config is set: the weights are quantized by the remote code; convert "
                "the unquantized checkpoint instead"
            )
        if int(source["hidden_size"]) % int(source["num_attention_heads"]):
            raise ConversionError(
                f"{where}: hidden_size {source['hidden_size']} is not a multiple of num_attention_heads "
                f"{source['num_attention_heads']}"
            )

    def native_config(self, source: dict[str, Any]) -> Any:
        from transformers import LlamaConfig

        self.check_source(source)
        value = {**DEFAULTS, **{k: v for k, v in source.items() if v is not None}}
        heads = int(source["num_attention_heads"])
        return LlamaConfig(
            vocab_size=int(source["vocab_size"]),
            hidden_size=int(source["hidden_size"]),
            intermediate_size=int(source["intermediate_size"]),
            num_hidden_layers=int(source["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=heads,
            hidden_act=str(value["hidden_act"]),
            max_position_embeddings=int(value["max_position_embeddings"]),
            initializer_range=float(value["initializer_range"]),
            rms_norm_eps=float(value["rms_norm_eps"]),
            rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
            attention_bias=False,
            mlp_bias=False,
            tie_word_embeddings=False,
            pad_token_id=int(value["pad_token_id"]),
            bos_token_id=int(value["bos_token_id"]),
            eos_token_id=int(value["eos_token_id"]),
            use_cache=True,
            architectures=[self.native_architecture],
        )

    def convert_tensor(self, name: str, tensor: Any, source: dict[str, Any]) -> list[tuple[str, Any]]:
        if name in _TOP_NAMES:
            return [(name, tensor)]
        if name == "lm_head.weight":
            return [(name, self.fold_norm_head(tensor))]
        if not name.startswith(_PREFIX):
            raise KeyError(name)
        index, _, rest = name.removeprefix(_PREFIX).partition(".")
        if not index.isdigit():
            raise KeyError(name)
        prefix = f"{_PREFIX}{index}."
        if rest == "self_attn.rotary_emb.inv_freq":  # recomputed by the native rotary embedding
            return []
        if rest in _LAYER_NAMES:
            return [(name, tensor)]
        if rest == "self_attn.W_pack.weight":
            # Attention.forward reads W_pack's output as [q | k | v], each hidden_size wide.
            q, k, v = tensor.chunk(3, dim=0)
            return [(f"{prefix}self_attn.{proj}_proj.weight", part) for proj, part in zip("qkv", (q, k, v))]
        raise KeyError(name)

    @staticmethod
    def fold_norm_head(weight: Any) -> Any:
        """``NormHead`` in eval: each row divided by its L2 norm (``F.normalize``), in float32."""
        import torch

        return torch.nn.functional.normalize(weight.float(), dim=-1).to(weight.dtype)

    def build_tokenizer(self, source_dir: Path, source: dict[str, Any]) -> Any:
        from transformers import PreTrainedTokenizerFast
        from transformers.convert_slow_tokenizer import SpmConverter

        proto, vocab = read_sentencepiece(Path(source_dir) / "tokenizer.model")
        positions = source.get("max_position_embeddings", DEFAULTS["max_position_embeddings"])
        length = source.get("model_max_length", positions)
        settings = {**TOKENIZER_DEFAULTS, "model_max_length": int(length),
                    **self._tokenizer_config(Path(source_dir))}
        # Follows the model's normalizer spec, so it encodes like SentencePieceProcessor.encode,
        # which is all BaichuanTokenizer._tokenize calls; the specials are split out of the text first.
        backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            unk_token=settings["unk_token"],
            bos_token=settings["bos_token"],
            eos_token=settings["eos_token"],
            pad_token=settings["pad_token"],
            # The original's build_inputs_with_special_tokens: [bos] A [eos] (and [bos] B [eos]) by these flags.
            add_bos_token=bool(settings["add_bos_token"]),
            add_eos_token=bool(settings["add_eos_token"]),
            clean_up_tokenization_spaces=False,
            model_max_length=settings["model_max_length"],
        )

    @staticmethod
    def _tokenizer_config(source_dir: Path) -> dict[str, Any]:
        """The settings of the source's tokenizer_config.json that BaichuanTokenizer reads."""
        config = read_json_object(source_dir / "tokenizer_config.json", missing_ok=True)
        settings: dict[str, Any] = {}
        for key in ("unk_token", "bos_token", "eos_token", "pad_token"):
            if key in config:
                settings[key] = _token(config[key])
        for key in ("add_bos_token", "add_eos_token", "model_max_length"):
            if key in config:
                settings[key] = config[key]
        return settings

    def build_generation_config(self, source_dir: Path, source: dict[str, Any], tokenizer: Any) -> Any:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
        return generation_config_from(Path(source_dir), ids, keep=("user_token_id", "assistant_token_id"))

    def warnings(self, source: dict[str, Any]) -> list[str]:
        return [
            "lm_head holds the NormHead-normalised weight: full fine-tuning trains it as a plain linear layer "
            "(the original re-normalises it on every training step)",
            "decode() with special tokens kept does not insert the space the original put before each text "
            "run ending at a special token (e.g. ' Hello</s>'); with skip_special_tokens=True both agree",
        ]

    def changes(self) -> list[str]:
        return [
            "`self_attn.W_pack` split into `self_attn.q_proj`/`k_proj`/`v_proj` (thirds along the output dim)",
            "`lm_head.weight` replaced by its row-wise L2-normalised value (NormHead folded; computed in float32)",
            "`rotary_emb.inv_freq` dropped where present (recomputed: base 10000, rotate-half, as the original)",
            "config: `LlamaConfig` with num_key_value_heads = num_attention_heads, rope_theta 10000, "
            "no attention/MLP biases, untied embeddings",
            "tokenizer: `tokenizer.model` converted to a fast BPE tokenizer (byte fallback, no dummy prefix, "
            "spaces and newlines kept, user-defined pieces whole) with the source's BOS/EOS flags and "
            "model_max_length",
        ]
