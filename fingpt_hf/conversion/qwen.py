"""Qwen v1 (Qwen-7B, Qwen-14B: ``QWenLMHeadModel``, model_type ``qwen``) -> ``Qwen2ForCausalLM``.

Qwen v1 is Qwen2's architecture with other names: a fused ``c_attn`` (with bias) is split into
q/k/v, the SwiGLU halves are ``w2`` (gated by SiLU) and ``w1``, and ``intermediate_size`` counts
both halves. Checked logit-equal against the original ``modeling_qwen.py`` (tests/test_convert_qwen.py)
up to ``seq_length`` tokens; beyond it the original rescales RoPE (dynamic NTK) and queries (logn),
which the native class does not do. The tokenizer is the original ``qwen.tiktoken`` BPE run by
``tokenizers`` (transformers' ``TikTokenConverter``) with Qwen's split pattern and special tokens.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

from fingpt_hf.conversion.spec import ConversionError, Converter, generation_config_from, read_json_object

TIKTOKEN_FILE = "qwen.tiktoken"
# tokenization_qwen.py (Qwen-7B/14B): the split pattern and the specials at fixed ids from 151643.
PAT_STR = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
SPECIAL_START_ID = 151643
SPECIAL_TOKENS = (ENDOFTEXT, "<|im_start|>", "<|im_end|>", *(f"<|extra_{i}|>" for i in range(205)))

# QWenConfig's defaults, for keys a config.json may leave out (configuration_qwen.py).
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 151936, "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
    "intermediate_size": 22016, "kv_channels": 128, "layer_norm_epsilon": 1e-6, "initializer_range": 0.02,
    "attn_dropout_prob": 0.0, "rotary_pct": 1.0, "rotary_emb_base": 10000, "no_bias": True,
    "tie_word_embeddings": False, "use_dynamic_ntk": True, "use_logn_attn": True,
}

_LAYER = re.compile(r"transformer\.h\.(\d+)\.(.+)")
_LAYER_NAMES = {
    "ln_1.weight": "input_layernorm.weight",
    "ln_2.weight": "post_attention_layernorm.weight",
    "attn.c_proj.weight": "self_attn.o_proj.weight",
    "mlp.w2.weight": "mlp.gate_proj.weight",  # forward: c_proj(w1(x) * silu(w2(x)))
    "mlp.w1.weight": "mlp.up_proj.weight",
    "mlp.c_proj.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "transformer.wte.weight": "model.embed_tokens.weight",
    "transformer.ln_f.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
# Buffers older revisions saved (QWenLMHeadModel's _keys_to_ignore_*); recomputed by the native model.
_BUFFERS = re.compile(r"transformer\.(h\.\d+\.attn\.)?rotary_emb\.inv_freq|transformer\.h\.\d+\.attn\.masked_bias")


def _get(source: dict[str, Any], key: str) -> Any:
    value = source.get(key, _DEFAULTS.get(key))
    if value is None:
        raise ConversionError(f"config.json: {key!r} is missing; the Qwen (v1) config always has it")
    return value


def _read_ranks(path: Path) -> dict[bytes, int]:
    """The BPE ranks of ``qwen.tiktoken`` (base64 token, space, rank per line), checked the way the
    original tokenizer needs them: ranks 0..151642 exactly, since its specials start at 151643."""
    ranks: dict[bytes, int] = {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise ConversionError(f"{path}: not readable ({err})") from None
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise ConversionError(f"{path}:{number}: expected '<base64 token> <rank>', found {line[:80]!r}") from None
    if sorted(ranks.values()) != list(range(SPECIAL_START_ID)):
        raise ConversionError(
            f"{path}: {len(ranks)} distinct tokens with ranks {min(ranks.values(), default=None)}.."
            f"{max(ranks.values(), default=None)}; the Qwen (v1) tokenizer needs ranks 0..{SPECIAL_START_ID - 1} "
            f"exactly, each once (its special tokens take ids {SPECIAL_START_ID}.."
            f"{SPECIAL_START_ID + len(SPECIAL_TOKENS) - 1})"
        )
    return ranks


def _tiktoken_converter(ranks: dict[bytes, int], path: Path) -> Any:
    """transformers' TikTokenConverter fed already-checked ranks (so tiktoken need not be installed)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _Converter(TikTokenConverter):
        def load_tiktoken_bpe(self, tiktoken_url: str) -> dict[bytes, int]:
            return ranks

    return _Converter(vocab_file=str(path), pattern=PAT_STR, extra_special_tokens=list(SPECIAL_TOKENS))


class QwenConverter(Converter):
    family = "qwen"
    title = "Qwen (v1)"
    source_model_types = ("qwen",)
    tokenizer_files = (TIKTOKEN_FILE,)
    native_architecture = "Qwen2ForCausalLM"

    def native_config(self, source: dict[str, Any]) -> Any:
        from transformers import Qwen2Config

        hidden, heads = _get(source, "hidden_size"), _get(source, "num_attention_heads")
        if _get(source, "kv_channels") * heads != hidden:
            raise ConversionError(
                f"config.json: kv_channels {_get(source, 'kv_channels')} x num_attention_heads {heads} != "
                f"hidden_size {hidden}; Qwen2ForCausalLM's head size is hidden_size / num_attention_heads"
            )
        if float(_get(source, "rotary_pct")) != 1.0:
            raise ConversionError(
                f"config.json: rotary_pct {_get(source, 'rotary_pct')} (partial rotary embedding); "
                "Qwen2ForCausalLM rotates the whole head"
            )
        if not _get(source, "no_bias"):
            raise ConversionError(
                "config.json: no_bias is false (biases on attn.c_proj and the MLP); Qwen2ForCausalLM "
                "has biases on q/k/v only"
            )
        if _get(source, "tie_word_embeddings"):
            raise ConversionError("config.json: tie_word_embeddings is true; released Qwen (v1) models have a "
                                  "separate lm_head and this converter expects one")
        return Qwen2Config(
            vocab_size=_get(source, "vocab_size"),
            hidden_size=hidden,
            intermediate_size=_get(source, "intermediate_size") // 2,  # QWenMLP: w1/w2 are intermediate_size // 2
            num_hidden_layers=_get(source, "num_hidden_layers"),
            num_attention_heads=heads,
            num_key_value_heads=heads,
            hidden_act="silu",
            max_position_embeddings=int(_get(source, "seq_length")),
            initializer_range=_get(source, "initializer_range"),
            rms_norm_eps=_get(source, "layer_norm_epsilon"),
            rope_parameters={"rope_type": "default", "rope_theta": float(_get(source, "rotary_emb_base"))},
            use_sliding_window=False,
            attention_dropout=_get(source, "attn_dropout_prob"),
            tie_word_embeddings=False,
            bos_token_id=SPECIAL_START_ID,
            eos_token_id=SPECIAL_START_ID,
            architectures=[self.native_architecture],
        )

    def convert_tensor(self, name: str, tensor: Any, source: dict[str, Any]) -> list[tuple[str, Any]]:
        if name in _TOP_NAMES:
            return [(_TOP_NAMES[name], tensor)]
        if _BUFFERS.fullmatch(name):
            return []
        match = _LAYER.fullmatch(name)
        if match is None:
            raise KeyError(name)
        layer, rest = match.groups()
        prefix = f"model.layers.{layer}."
        if rest in ("attn.c_attn.weight", "attn.c_attn.bias"):
            kind = rest.rsplit(".", 1)[1]
            parts = tensor.chunk(3, dim=0)  # the original splits c_attn's output into q, k, v in that order
            return [(f"{prefix}self_attn.{proj}.{kind}", part)
                    for proj, part in zip(("q_proj", "k_proj", "v_proj"), parts)]
        if rest in _LAYER_NAMES:
            return [(prefix + _LAYER_NAMES[rest], tensor)]
        raise KeyError(name)

    def build_tokenizer(self, source_dir: Path, source: dict[str, Any]) -> Any:
        """The original BPE and pattern run by ``tokenizers``, NFC first as the original does; special
        tokens in the text are matched as specials (the original's default ``allowed_special="all"``)."""
        from tokenizers import normalizers
        from transformers import PreTrainedTokenizerFast

        path = source_dir / TIKTOKEN_FILE
        backend = _tiktoken_converter(_read_ranks(path), path).converted()
        backend.normalizer = normalizers.NFC()
        if backend.token_to_id(ENDOFTEXT) != SPECIAL_START_ID:
            raise ConversionError(f"{path}: {ENDOFTEXT} did not land on id {SPECIAL_START_ID}")
        # bos/unk/pad saved as null: AutoTokenizer loads a qwen2 checkpoint as Qwen2Tokenizer, which
        # otherwise defaults unk and pad to <|endoftext|>. The qwen-native family picks pad <|extra_0|>.
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            eos_token=ENDOFTEXT,
            bos_token=None,
            unk_token=None,
            pad_token=None,
            model_max_length=read_json_object(source_dir / "tokenizer_config.json", missing_ok=True).get("model_max_length", _get(source, "seq_length")),
            clean_up_tokenization_spaces=False,
        )

    def build_generation_config(self, source_dir: Path, source: dict[str, Any], tokenizer: Any) -> Any:
        """The source's generation_config.json minus Qwen's own keys (chat_format, stop_words_ids,
        max_window_size...), which only its remote ``chat()`` reads."""
        return generation_config_from(source_dir, {"eos_token_id": SPECIAL_START_ID, "pad_token_id": SPECIAL_START_ID})

    def warnings(self, source: dict[str, Any]) -> list[str]:
        seq_length = _get(source, "seq_length")
        scaled = [key for key in ("use_dynamic_ntk", "use_logn_attn") if _get(source, key)]
        if not scaled:
            return []
        return [
            f"Matches the original only for inputs of up to seq_length = {seq_length} tokens: beyond that the "
            f"original code ({', '.join(scaled)}) rescales the rotary base (dynamic NTK) and the queries (logn), "
            f"which Qwen2ForCausalLM does not; it keeps rope_theta {_get(source, 'rotary_emb_base')} at every length."
        ]

    def changes(self) -> list[str]:
        return [
            "transformer.h.N.attn.c_attn (weight, bias) split in three into self_attn.q_proj/k_proj/v_proj.",
            "mlp.w2 -> mlp.gate_proj, mlp.w1 -> mlp.up_proj, mlp.c_proj -> mlp.down_proj; intermediate_size "
            "halved (Qwen v1 counts both SwiGLU halves).",
            "wte -> embed_tokens, ln_1/ln_2 -> input/post_attention_layernorm, ln_f -> norm, "
            "attn.c_proj -> o_proj; rotary_emb_base -> rope_theta; max_position_embeddings = seq_length.",
            "qwen.tiktoken -> tokenizer.json (same BPE, split pattern, NFC and the 208 special tokens at "
            "151643..151850); eos <|endoftext|>, no BOS, pad unset (the qwen-native family picks <|extra_0|>).",
            "Padded batches are masked causally, as in the fixed modeling_qwen.py (QwenLM/Qwen#933); older "
            "revisions of the original lost the causal mask when given an attention mask.",
            "generation_config.json: Qwen-only keys (chat_format, stop_words_ids, ...) dropped.",
        ]
