"""Write a merged Llama model as a GGUF file for llama.cpp / Ollama, with the ``gguf`` package.

What llama.cpp's own converter (``convert_hf_to_gguf.py``, ``LlamaModel``) does, and so what
llama.cpp and transformers' GGUF loader expect, is done here with the same library calls:

* tensor names from ``gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_blocks)``;
* q/k projections permuted (``permute`` below), because llama.cpp's RoPE rotates adjacent pairs
  while transformers' Llama rotates the two halves of each head; transformers' loader
  (``LlamaTensorProcessor._reverse_permute_weights``) undoes exactly this;
* 1-D tensors (norms) always float32; a tied LM head is not written (llama.cpp then uses
  ``token_embd``, and transformers sets ``tie_word_embeddings`` from its absence);
* q8_0 through ``gguf.quants``, rows whose length is not a multiple of the block size in f16;
* the tokenizer as ``tokenizer.ggml.*``: byte-level BPE as model ``gpt2`` (tokens, token types,
  merges from ``gguf.SpecialVocab``), sentencepiece-style BPE (``tokenizer.json`` with byte
  fallback, Llama-2 and converted Baichuan2) as model ``llama`` through ``gguf.LlamaHfVocab``, with
  ``add_space_prefix`` as the tokenizer does it. transformers' GGUF tokenizer reader ignores that
  flag (always a leading "\u2581"), so for Baichuan2 it differs from the real tokenizer on a text's
  first token; the weights read back exactly.

The pre-tokenizer name tells llama.cpp how to split text before BPE; it is read off the tokenizer's
own ``pre_tokenizer`` (``PRE_TOKENIZERS``), never guessed, so llama.cpp splits as training did.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError

GGUF_TYPES: tuple[str, ...] = ("f32", "f16", "q8_0")
LLAMA_ARCHITECTURES = ("LlamaForCausalLM",)

# tokenizer.json ``pre_tokenizer`` (as JSON, without the flags that do not change the split) ->
# llama.cpp's name for the same split (src/llama-vocab.cpp): "gpt-2" is GPT-2's regex alone,
# "smollm" splits every digit first (what HF's SmolLM tokenizers do).
_BYTE_LEVEL = {"type": "ByteLevel", "use_regex": True}
PRE_TOKENIZERS: tuple[tuple[Any, str], ...] = (
    (_BYTE_LEVEL, "gpt-2"),
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]}, "smollm"),
)
_IGNORED_PRE_KEYS = ("add_prefix_space", "trim_offsets")


def check_gguf_architecture(config: Any, source: str) -> None:
    """Refuse, before any weights are loaded, a model that llama.cpp's ``llama`` architecture cannot run."""
    architectures = list(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) != "llama" or not set(architectures) & set(LLAMA_ARCHITECTURES):
        raise FinGPTError(
            f"--format gguf: --model {source} is {', '.join(architectures) or getattr(config, 'model_type', '?')}; "
            f"only Llama-architecture models ({', '.join(LLAMA_ARCHITECTURES)}) are written as GGUF "
            "(export it as safetensors and convert it with llama.cpp's convert_hf_to_gguf.py)"
        )
    rope = _rope_parameters(config)
    if rope.get("rope_type", "default") not in ("default", "linear"):
        raise FinGPTError(f"--format gguf: --model {source} uses RoPE scaling {rope.get('rope_type')!r}; "
                          "only default and linear RoPE are written")


def _rope_parameters(config: Any) -> dict[str, Any]:
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope = dict(rope)
    if "rope_theta" not in rope and getattr(config, "rope_theta", None) is not None:
        rope["rope_theta"] = config.rope_theta
    return rope


def permute(weights, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's ``LlamaModel.permute``: from half-split RoPE rows to interleaved pairs, per head."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_file_name(gguf_type: str) -> str:
    return f"model-{gguf_type}.gguf"


def _pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _IGNORED_PRE_KEYS}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    pre = strip(tokenizer_json.get("pre_tokenizer"))
    for shape, name in PRE_TOKENIZERS:
        if pre == shape:
            return name
    raise FinGPTError(
        f"--format gguf: the tokenizer's pre-tokenizer {json.dumps(tokenizer_json.get('pre_tokenizer'))} has no "
        f"llama.cpp name known here (known: {', '.join(n for _, n in PRE_TOKENIZERS)}); llama.cpp would split text "
        "differently from training"
    )


def _looks_special(token: str) -> bool:
    """llama.cpp's ``does_token_look_special`` for the forms byte-level vocabularies use."""
    return token.startswith("<|") and token.endswith("|>")


def _add_gpt2_vocab(writer, tokenizer, tokenizer_dir: Path, tokenizer_json: dict[str, Any], vocab_size: int) -> None:
    """llama.cpp's ``_set_vocab_gpt2``: every id's token, its type, the merges."""
    import gguf

    pre = _pre_tokenizer_name(tokenizer_json)
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        tokens.append(token)
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special or _looks_special(token)
                         else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    merges = gguf.SpecialVocab(tokenizer_dir, load_merges=True, special_token_types=(), n_vocab=vocab_size).merges
    if not merges:
        raise FinGPTError(f"--format gguf: the tokenizer in {tokenizer_dir} has no BPE merges")
    writer.add_token_merges(merges)


def _add_llama_vocab(writer, tokenizer, tokenizer_dir: Path, vocab_size: int) -> None:
    """llama.cpp's ``_set_vocab_llama_hf``: sentencepiece-style BPE (byte fallback) from tokenizer.json,
    plus whether a text gets the leading "\u2581" (Llama-2 yes, Baichuan2 no), which both readers default to yes."""
    import gguf

    vocab = gguf.LlamaHfVocab(tokenizer_dir)
    tokens, scores, types = [], [], []
    for text, score, token_type in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(token_type)
    if len(tokens) > vocab_size:
        raise FinGPTError(f"--format gguf: the tokenizer has {len(tokens)} tokens, the model {vocab_size}")
    for i in range(len(tokens), vocab_size):  # embedding rows past the tokenizer (padded vocabularies)
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    first = tokenizer.convert_ids_to_tokens(tokenizer("a", add_special_tokens=False)["input_ids"])[:1]
    writer.add_add_space_prefix(first[:1] != ["a"])


def add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    """The ``tokenizer.*`` metadata: vocabulary, special ids, whether BOS/EOS are added, chat template."""
    with tempfile.TemporaryDirectory(prefix="fingpt-gguf-tokenizer.") as tmp:
        tokenizer_dir = Path(tmp)
        tokenizer.save_pretrained(tokenizer_dir)  # one layout (tokenizer.json) whatever the source had
        path = tokenizer_dir / "tokenizer.json"
        if not path.is_file():
            raise FinGPTError("--format gguf: the tokenizer has no fast (tokenizer.json) form")
        tokenizer_json = json.loads(path.read_text(encoding="utf-8"))
        model = tokenizer_json.get("model") or {}
        if model.get("type") != "BPE":
            raise FinGPTError(f"--format gguf: tokenizer model {model.get('type')!r} is not written (BPE only)")
        if model.get("byte_fallback"):
            _add_llama_vocab(writer, tokenizer, tokenizer_dir, vocab_size)
        elif (tokenizer_json.get("decoder") or {}).get("type") == "ByteLevel":
            _add_gpt2_vocab(writer, tokenizer, tokenizer_dir, tokenizer_json, vocab_size)
        else:
            raise FinGPTError("--format gguf: only byte-level BPE and byte-fallback (sentencepiece-style) BPE "
                              "tokenizers are written")
    for kind in ("bos", "eos", "unk", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None and 0 <= token_id < vocab_size:
            getattr(writer, f"add_{kind}_token_id")(int(token_id))
    # What the tokenizer really does to a text, so llama.cpp adds the same special tokens.
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id])
    writer.add_add_eos_token(tokenizer.eos_token_id is not None and probe[-1:] == [tokenizer.eos_token_id]
                             and len(probe) > 1)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def add_hyperparameters(writer, config: Any, name: str) -> None:
    """The ``llama.*`` keys llama.cpp reads (and transformers' loader maps back to a LlamaConfig)."""
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = _rope_parameters(config)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def _tensor_data(tensor, gguf_type: str):
    """``(array, raw_dtype)`` for one tensor: norms and other 1-D tensors in f32, as llama.cpp does."""
    import gguf
    import numpy as np

    data = tensor.detach().to("cpu").float().numpy()
    if data.ndim <= 1 or gguf_type == "f32":
        return data.astype(np.float32, copy=False), None
    if gguf_type == "q8_0":
        qtype = gguf.GGMLQuantizationType.Q8_0
        if data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0:
            return gguf.quants.quantize(data, qtype), qtype
    return data.astype(np.float16), None  # f16, and q8_0's fallback for rows off the block size


def write_gguf(model, tokenizer, path: str | os.PathLike, gguf_type: str = "f16", name: str | None = None) -> Path:
    """Write ``model`` (a merged ``LlamaForCausalLM``) and ``tokenizer`` to the GGUF file ``path``."""
    import gguf

    if gguf_type not in GGUF_TYPES:
        raise FinGPTError(f"--gguf-type {gguf_type!r}: choose one of {', '.join(GGUF_TYPES)}")
    config = model.config
    check_gguf_architecture(config, name or config.name_or_path)
    file_types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                  "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    tied = bool(getattr(config, "tie_word_embeddings", False))

    path = Path(path)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        add_hyperparameters(writer, config, name or Path(str(config.name_or_path)).name or "model")
        writer.add_file_type(file_types[gguf_type])
        if gguf_type == "q8_0":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_tokenizer(writer, tokenizer, config.vocab_size)
        for hf_name, tensor in model.state_dict().items():
            if tied and hf_name == "lm_head.weight":
                continue
            gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise FinGPTError(f"--format gguf: no GGUF name for tensor {hf_name!r}")
            if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                tensor = permute(tensor, heads, heads)
            elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                tensor = permute(tensor, heads, kv_heads)
            data, raw_dtype = _tensor_data(tensor, gguf_type)
            writer.add_tensor(gguf_name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
