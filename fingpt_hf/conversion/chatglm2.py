"""ChatGLM2-6B (THUDM/chatglm2-6b, ``model_type`` "chatglm") -> native ``GlmForCausalLM``.

ChatGLM2 is the architecture transformers' ``glm`` model was written for: RMSNorm pre-norm blocks,
multi-query attention with q/k/v bias, rotary on the first half of each head in interleaved pairs,
and a SwiGLU MLP whose fused ``dense_h_to_4h`` is ``[gate; up]`` like ``GlmMLP.gate_up_proj``. So
the weights only need renaming, plus splitting ``query_key_value`` into q/k/v. The tokenizer is the
sentencepiece model turned into a ``tokenizers`` BPE by transformers' own converter, with the five
GLM specials after the pieces and the ``[gMASK] sop`` prefix as a post-processor template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fingpt_hf.conversion.spec import ConversionError, Converter, generation_config_from, read_sentencepiece

#: The specials ``SPTokenizer`` appends after the sentencepiece pieces, in id order.
SPECIAL_TOKENS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
#: ``RotaryEmbedding.forward_impl``'s fixed base (the ChatGLM2 code has no setting for it).
ROPE_THETA = 10000.0
_PREFIX = "transformer."
_LAYERS = "encoder.layers."
_LAYER_NAMES = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "self_attention.dense.weight": "self_attn.o_proj.weight",
    "mlp.dense_h_to_4h.weight": "mlp.gate_up_proj.weight",
    "mlp.dense_4h_to_h.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "encoder.final_layernorm.weight": "model.norm.weight",
    "output_layer.weight": "lm_head.weight",
}


def _dims(source: dict[str, Any]) -> tuple[int, int, int]:
    """(heads, key/value groups, head size) as ``SelfAttention`` derives them."""
    heads = int(source["num_attention_heads"])
    head_dim = int(source.get("kv_channels") or source["hidden_size"] // heads)
    groups = int(source.get("multi_query_group_num", 1)) if source.get("multi_query_attention") else heads
    return heads, groups, head_dim


class ChatGLM2Converter(Converter):
    family = "chatglm2"
    title = "ChatGLM2-6B"
    source_model_types = ("chatglm",)
    tokenizer_files = ("tokenizer.model",)
    native_architecture = "GlmForCausalLM"

    def _check_source(self, source: dict[str, Any]) -> None:
        """Refuse, naming config.json and the key, variants that ``GlmForCausalLM`` cannot compute."""
        where = "config.json"
        missing = [k for k in ("padded_vocab_size", "ffn_hidden_size", "num_layers") if k not in source]
        if missing:
            raise ConversionError(
                f"{where}: model_type 'chatglm' without {', '.join(missing)}: this is not the ChatGLM2 layout "
                "(ChatGLM-6B v1 shares the model_type but is a different architecture)"
            )
        name = str(source.get("_name_or_path", "")).lower()
        if "chatglm3" in name or "glm-4" in name:
            raise ConversionError(
                f"{where}: {source['_name_or_path']} is a later ChatGLM generation; only ChatGLM2-6B was checked "
                "against its original code and tokenizer (ChatGLM3/GLM-4 add tokens and change the rotary base)"
            )
        unsupported = {
            "rmsnorm": (False, "LayerNorm with bias instead of RMSNorm"),
            "post_layer_norm": (False, "no final layer norm"),
            "apply_residual_connection_post_layernorm": (True, "residuals taken after the layer norm"),
            "add_bias_linear": (True, "biases on the output and MLP projections"),
            "fp32_residual_connection": (True, "an fp32 residual stream"),
        }
        defaults = {"rmsnorm": True, "post_layer_norm": True}
        for key, (bad, what) in unsupported.items():
            if bool(source.get(key, defaults.get(key, False))) == bad:
                raise ConversionError(
                    f"{where}: {key}={str(bad).lower()} ({what}) has no equivalent in {self.native_architecture}"
                )
        if source.get("quantization_bit"):
            raise ConversionError(
                f"{where}: quantization_bit={source['quantization_bit']}: the weights are quantized by the remote "
                "code; convert the unquantized checkpoint instead"
            )
        if source.get("pre_seq_len"):
            raise ConversionError(
                f"{where}: pre_seq_len={source['pre_seq_len']} is a P-tuning v2 prefix encoder, which "
                f"{self.native_architecture} does not have"
            )
        if float(source.get("rope_ratio", 1.0)) != 1.0:
            raise ConversionError(
                f"{where}: rope_ratio={source['rope_ratio']}: ChatGLM revisions use it differently (a scaled "
                "rotary base in ChatGLM3/GLM-4, position interpolation in chatglm2-6b-32k); only the plain "
                "ChatGLM2 rotary (base 10000) is converted"
            )
        heads, groups, _ = _dims(source)
        if heads % groups:
            raise ConversionError(
                f"{where}: num_attention_heads {heads} is not a multiple of multi_query_group_num {groups}"
            )

    def native_config(self, source: dict[str, Any]) -> Any:
        from transformers import GlmConfig

        self._check_source(source)
        heads, groups, head_dim = _dims(source)
        return GlmConfig(
            vocab_size=int(source["padded_vocab_size"]),
            hidden_size=int(source["hidden_size"]),
            intermediate_size=int(source["ffn_hidden_size"]),
            num_hidden_layers=int(source["num_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=groups,
            head_dim=head_dim,
            hidden_act="silu",
            attention_dropout=float(source.get("attention_dropout", 0.0)),
            max_position_embeddings=int(source.get("seq_length", 2048)),
            rms_norm_eps=float(source.get("layernorm_epsilon", 1e-5)),
            rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA, "partial_rotary_factor": 0.5},
            attention_bias=bool(source.get("add_qkv_bias", False)),
            tie_word_embeddings=False,
            # ChatGLMTokenizer: pad is <unk> (0), eos </s> (2), no bos (the prefix is [gMASK] sop).
            pad_token_id=int(source.get("pad_token_id", 0)),
            eos_token_id=int(source.get("eos_token_id", 2)),
            bos_token_id=None,
            use_cache=True,
            architectures=[self.native_architecture],
        )

    def convert_tensor(self, name: str, tensor: Any, source: dict[str, Any]) -> list[tuple[str, Any]]:
        key = name.removeprefix(_PREFIX)
        if key == "rotary_pos_emb.inv_freq":  # recomputed by the native rotary embedding
            return []
        if key in _TOP_NAMES:
            return [(_TOP_NAMES[key], tensor)]
        if not key.startswith(_LAYERS):
            raise KeyError(name)
        index, _, rest = key.removeprefix(_LAYERS).partition(".")
        if not index.isdigit():
            raise KeyError(name)
        prefix = f"model.layers.{index}."
        if rest in _LAYER_NAMES:
            return [(prefix + _LAYER_NAMES[rest], tensor)]
        if rest in ("self_attention.query_key_value.weight", "self_attention.query_key_value.bias"):
            kind = rest.rsplit(".", 1)[1]
            q, k, v = self._split_qkv(tensor, source)
            return [(f"{prefix}self_attn.{proj}_proj.{kind}", part) for proj, part in zip("qkv", (q, k, v))]
        raise KeyError(name)

    @staticmethod
    def _split_qkv(tensor: Any, source: dict[str, Any]) -> tuple[Any, Any, Any]:
        """Multi-query: ``[all q | group k | group v]`` rows; otherwise ``[q_h; k_h; v_h]`` per head."""
        heads, groups, head_dim = _dims(source)
        if source.get("multi_query_attention"):
            q, k, v = tensor.split([heads * head_dim, groups * head_dim, groups * head_dim], dim=0)
            return q, k, v
        per_head = tensor.reshape(heads, 3, head_dim, *tensor.shape[1:])
        return tuple(per_head[:, i].reshape(heads * head_dim, *tensor.shape[1:]) for i in range(3))

    def build_tokenizer(self, source_dir: Path, source: dict[str, Any]) -> Any:
        from tokenizers import AddedToken, processors
        from transformers import PreTrainedTokenizerFast
        from transformers.convert_slow_tokenizer import SpmConverter

        path = Path(source_dir) / "tokenizer.model"
        proto, vocab = read_sentencepiece(path)
        if any(token in vocab for token in SPECIAL_TOKENS):
            raise ConversionError(f"{path}: has pieces named like the GLM special tokens")
        # Follows the model's normalizer spec (dummy prefix, no whitespace folding, byte fallback), so
        # it encodes like SentencePieceProcessor.encode, which is all ChatGLMTokenizer calls.
        backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
        backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
        ids = {token: backend.token_to_id(token) for token in SPECIAL_TOKENS}  # len(vocab) onwards, as SPTokenizer
        eos = proto.pieces[proto.trainer_spec.eos_id].piece
        backend.post_processor = processors.TemplateProcessing(
            single="[gMASK] sop $A",
            pair=f"[gMASK] sop $A $B {eos}",
            special_tokens=[("[gMASK]", ids["[gMASK]"]), ("sop", ids["sop"]), (eos, proto.trainer_spec.eos_id)],
        )
        unk = proto.pieces[proto.trainer_spec.unk_id].piece
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            unk_token=unk,
            pad_token=unk,  # ChatGLMTokenizer pads with the unk id
            eos_token=eos,
            padding_side="left",  # ChatGLMTokenizer._pad asserts left padding
            # ChatGLMTokenizer never reads special tokens out of text: "sop" or "</s>" typed in a
            # prompt is plain text; only the template inserts the specials.
            split_special_tokens=True,
            clean_up_tokenization_spaces=False,
            model_max_length=int(source.get("seq_length", 2048)),
        )

    def build_generation_config(self, source_dir: Path, source: dict[str, Any], tokenizer: Any) -> Any:
        return generation_config_from(Path(source_dir), {"eos_token_id": tokenizer.eos_token_id,
                                                         "pad_token_id": tokenizer.pad_token_id})

    def warnings(self, source: dict[str, Any]) -> list[str]:
        return [
            "the tokenizer returns no position_ids (ChatGLMTokenizer did); for left-padded batches pass "
            "positions counted from each row's first real token (generate() derives them from attention_mask)",
            "decode() shows the special tokens ([gMASK], sop, </s>) unless skip_special_tokens=True; the "
            "original decoded them as empty strings",
            f"embed_tokens has padding_idx {int(source.get('pad_token_id', 0))} (the <unk>/pad id): in full "
            "fine-tuning that row gets no gradient, unlike the original",
            "the original computes the rotary angles in the weights' dtype (in bfloat16 the frequencies and "
            "positions above 256, in float16 above 2048, are rounded), so a half-precision original drifts "
            "from its own fp32 logits on long inputs; the native model computes them in fp32 (fp32 logits "
            "are equal)",
        ]

    def changes(self) -> list[str]:
        return [
            "`transformer.embedding.word_embeddings` -> `model.embed_tokens`; `transformer.encoder.final_layernorm` "
            "-> `model.norm`; `transformer.output_layer` -> `lm_head`",
            "`self_attention.query_key_value` (weight and bias) split into `self_attn.q_proj`/`k_proj`/`v_proj`; "
            "`self_attention.dense` -> `self_attn.o_proj`",
            "`mlp.dense_h_to_4h` -> `mlp.gate_up_proj` (same [gate; up] order); `mlp.dense_4h_to_h` -> `mlp.down_proj`",
            "`transformer.rotary_pos_emb.inv_freq` dropped (recomputed: base 10000, rotary on half of each head)",
            "config: `GlmConfig` with num_key_value_heads = multi_query_group_num, head_dim = kv_channels, "
            "partial_rotary_factor 0.5, rms_norm_eps = layernorm_epsilon, max_position_embeddings = seq_length",
            "tokenizer: `tokenizer.model` converted to a fast BPE tokenizer (byte fallback, dummy prefix), "
            "specials [MASK] [gMASK] [sMASK] sop eop at the ids after the pieces, every text prefixed "
            "with `[gMASK] sop`, left padding with <unk>",
        ]
