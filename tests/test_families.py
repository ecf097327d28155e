"""Family registry, LoRA target resolution and tokenizer fixes.

Native families: a tiny random model per family, built from a config. Remote-code families
(whose modeling code is not in transformers): module-name fixtures taken from their published
modeling files, cited next to each fixture.
"""

from __future__ import annotations

import logging

import pytest
import torch
import transformers
from peft import get_peft_model
from peft.tuners.tuners_utils import check_target_module_exists
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import CONFIG_MAPPING, PreTrainedTokenizerFast

from fingpt_hf.errors import FinGPTError
from fingpt_hf.families import (
    build_lora_config,
    check_remote_code,
    family_by_name,
    get_family,
    list_families,
    prepare_tokenizer,
    resolve_target_modules,
)
from fingpt_hf.families.catalog import GENERIC

VOCAB = 64
_DECODER = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2,
)

# model_type -> (config, family name). Every registered model_type transformers ships natively.
NATIVE = {
    "llama": (lambda: transformers.LlamaConfig(**_DECODER), "llama"),
    "internlm3": (lambda: transformers.InternLM3Config(**_DECODER), "llama"),
    "mistral": (lambda: transformers.MistralConfig(**_DECODER), "mistral"),
    "qwen2": (lambda: transformers.Qwen2Config(**_DECODER), "qwen2"),
    "qwen3": (lambda: transformers.Qwen3Config(**_DECODER, head_dim=8), "qwen3"),
    "glm": (lambda: transformers.GlmConfig(**_DECODER, head_dim=8), "glm"),
    "glm4": (lambda: transformers.Glm4Config(**_DECODER, head_dim=8), "glm"),
    "falcon": (
        lambda: transformers.FalconConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
        "falcon",
    ),
    "bloom": (lambda: transformers.BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4), "bloom"),
    "mpt": (lambda: transformers.MptConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4), "mpt"),
}


def _registered_native_model_types() -> set[str]:
    return {t for f in list_families() for t in f.model_types if t in CONFIG_MAPPING}


def test_every_native_registered_model_type_is_tested_here():
    assert _registered_native_model_types() == set(NATIVE)


def test_needs_remote_code_matches_installed_transformers():
    for family in list_families():
        native = any(t in CONFIG_MAPPING for t in family.model_types) or bool(family.converted_from)
        assert family.needs_remote_code == (not native), family.name


def _tiny(model_type: str) -> nn.Module:
    torch.manual_seed(0)
    config = NATIVE[model_type][0]()
    return transformers.AutoModelForCausalLM.from_config(config)


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


@pytest.mark.parametrize("model_type", sorted(NATIVE))
def test_lora_attaches_to_family_targets_and_trains_only_adapters(model_type):
    model = _tiny(model_type)
    family = get_family(model.config)
    assert family.name == NATIVE[model_type][1]
    assert not family.needs_remote_code
    check_remote_code(family, trust_remote_code=False)

    expected = {n for n, _ in model.named_modules() if _leaf(n) in family.lora_target_modules}
    assert len(expected) == 2 * len(family.lora_target_modules)  # every target, in both layers
    base_before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    peft_model = get_peft_model(model, build_lora_config(model, r=4, lora_alpha=8, lora_dropout=0.0))
    assert set(peft_model.base_model.targeted_module_names) == expected
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)

    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    input_ids = torch.randint(3, VOCAB, (2, 7))
    labels = input_ids.clone()
    labels[:, :4] = -100
    peft_model.train()
    loss = peft_model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()

    after = peft_model.get_base_model().state_dict()
    changed_adapters = 0
    for name, value in after.items():
        if "lora_" in name:
            changed_adapters += "lora_B" in name and bool(value.abs().sum() > 0)  # B starts at zero
            continue
        original = name.replace(".base_layer.", ".")
        assert torch.equal(value, base_before[original]), f"base weight {original} changed"
    assert changed_adapters == len(expected)


# --- remote-code families: module names from their published modeling files -----------------

def _skeleton(linear: list[str], other: list[str], head: str | None = None) -> nn.Module:
    """An nn.Module tree with the given dotted names (Linear leaves, Embedding elsewhere)."""
    root = nn.Module()
    for name in linear + other:
        parent = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, nn.Linear(4, 4) if name in linear else nn.Embedding(8, 4))
    if head is not None:
        root.get_output_embeddings = lambda: root.get_submodule(head)
    return root


REMOTE = {
    # jrd77/Baichuan2-13B-Chat: modeling_baichuan.py (copy of baichuan-inc/Baichuan2-13B-Chat):
    #   BaichuanAttention: self.W_pack = torch.nn.Linear(...); self.o_proj = torch.nn.Linear(...)
    #   MLP: gate_proj, down_proj, up_proj; BaichuanModel: embed_tokens, layers; lm_head = NormHead
    "baichuan": dict(
        linear=[
            "model.layers.0.self_attn.W_pack", "model.layers.0.self_attn.o_proj",
            "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj", "model.layers.0.mlp.up_proj",
        ],
        other=["model.embed_tokens", "lm_head"],  # NormHead is not an nn.Linear
        expected=["model.layers.0.self_attn.W_pack"],
    ),
    # bq-xiao/chatglm2-6b-model and czk1997/chatglm3-copy: modeling_chatglm.py (THUDM chatglm2/3):
    #   SelfAttention: self.query_key_value = nn.Linear(...); self.dense = nn.Linear(...)
    #   MLP: dense_h_to_4h, dense_4h_to_h; GLMBlock: self_attention, mlp
    #   ChatGLMModel: embedding (word_embeddings), encoder (GLMTransformer.layers), output_layer
    "chatglm": dict(
        linear=[
            "transformer.encoder.layers.0.self_attention.query_key_value",
            "transformer.encoder.layers.0.self_attention.dense",
            "transformer.encoder.layers.0.mlp.dense_h_to_4h",
            "transformer.encoder.layers.0.mlp.dense_4h_to_h",
            "transformer.output_layer",
        ],
        other=["transformer.embedding.word_embeddings"],
        head="transformer.output_layer",
        expected=["transformer.encoder.layers.0.self_attention.query_key_value"],
    ),
    # undefdev/Qwen-7B-Chat: modeling_qwen.py (copy of Qwen/Qwen-7B-Chat):
    #   QWenAttention: self.c_attn = nn.Linear(config.hidden_size, 3 * self.projection_size); self.c_proj
    #   QWenMLP: w1, w2, c_proj; QWenModel: wte, h; QWenLMHeadModel: transformer, lm_head
    "qwen": dict(
        linear=[
            "transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
            "transformer.h.0.mlp.w1", "transformer.h.0.mlp.w2", "transformer.h.0.mlp.c_proj", "lm_head",
        ],
        other=["transformer.wte"],
        head="lm_head",
        expected=["transformer.h.0.attn.c_attn"],
    ),
    # InternLM/InternLM: tools/transformers/internlm_model/modeling_internlm.py:
    #   InternLMAttention: q_proj, k_proj, v_proj, o_proj; InternLMMLP: gate_proj, down_proj, up_proj
    "internlm": dict(
        linear=[
            "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
            "model.layers.0.self_attn.v_proj", "model.layers.0.self_attn.o_proj",
            "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj", "model.layers.0.mlp.up_proj",
            "lm_head",
        ],
        other=["model.embed_tokens"],
        head="lm_head",
        expected=[
            "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
        ],
    ),
    # NanSang2000/S1mpleAgent: modeling_internlm2.py (copy of internlm/internlm2-chat-7b):
    #   InternLM2Attention: self.wqkv = nn.Linear(...); self.wo; InternLM2MLP: w1, w3, w2
    #   InternLM2DecoderLayer: attention, feed_forward; InternLM2Model: tok_embeddings; head: output
    "internlm2": dict(
        linear=[
            "model.layers.0.attention.wqkv", "model.layers.0.attention.wo",
            "model.layers.0.feed_forward.w1", "model.layers.0.feed_forward.w3", "model.layers.0.feed_forward.w2",
            "output",
        ],
        other=["model.tok_embeddings"],
        head="output",
        expected=["model.layers.0.attention.wqkv"],
    ),
}


@pytest.mark.parametrize("model_type", sorted(REMOTE))
def test_remote_family_targets_match_published_module_names(model_type):
    fixture = REMOTE[model_type]
    family = get_family(model_type)
    assert family.name == model_type and family.needs_remote_code
    model = _skeleton(fixture["linear"], fixture["other"], fixture.get("head"))
    config = build_lora_config(model, family=family)
    names = [n for n, _ in model.named_modules() if n]
    # peft's own matcher decides which modules get adapters
    assert [n for n in names if check_target_module_exists(config, n)] == fixture["expected"]


@pytest.mark.parametrize("model_type", sorted(REMOTE))
def test_remote_families_refuse_without_trust_remote_code(model_type):
    family = get_family(model_type)
    with pytest.raises(FinGPTError, match=r"trust_remote_code: true.*--trust_remote_code"):
        check_remote_code(family, trust_remote_code=False)
    check_remote_code(family, trust_remote_code=True)


def test_fingpt_baichuan_targets_match_nothing_and_raise():
    fixture = REMOTE["baichuan"]
    model = _skeleton(fixture["linear"], fixture["other"])
    baichuan = family_by_name("baichuan")
    assert baichuan.fingpt_lora_target_modules == ("q_proj", "k_proj", "v_proj")
    assert not any(_leaf(n) in baichuan.fingpt_lora_target_modules for n in fixture["linear"] + fixture["other"])
    with pytest.raises(FinGPTError) as err:
        build_lora_config(model, target_modules=list(baichuan.fingpt_lora_target_modules), family=baichuan)
    message = str(err.value)
    assert "q_proj" in message and "W_pack" in message and "o_proj" in message


def test_all_linear_excludes_the_output_head_named_output():
    fixture = REMOTE["internlm2"]
    model = _skeleton(fixture["linear"], fixture["other"], fixture["head"])
    targets = resolve_target_modules(model, "all-linear", family=GENERIC)
    assert sorted(targets) == ["w1", "w2", "w3", "wo", "wqkv"]


# --- generic fallback and errors -------------------------------------------------------------

def test_unknown_family_warns_and_targets_all_linear_layers_but_lm_head(caplog):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with caplog.at_level(logging.WARNING, logger="fingpt_hf.families.registry"):
        family = get_family(model.config)
    assert family is GENERIC
    assert "gpt2" in caplog.text and "all linear layers" in caplog.text
    lora = build_lora_config(model)
    assert set(lora.target_modules) == {"c_attn", "c_proj", "c_fc"}  # GPT-2's Conv1D layers
    peft_model = get_peft_model(model, lora)
    targeted = peft_model.base_model.targeted_module_names
    assert len(targeted) == 2 * 4 and not any("lm_head" in n for n in targeted)


def test_family_detected_from_architectures_when_model_type_unknown():
    config = transformers.PretrainedConfig(architectures=["BaichuanForCausalLM"])
    assert get_family(config).name == "baichuan"
    assert get_family("RefinedWebModel").name == "falcon"
    assert get_family("QWEN2").name == "qwen2"


def test_unmatched_lora_targets_raise_with_real_module_names():
    model = _tiny("llama")
    with pytest.raises(FinGPTError) as err:
        build_lora_config(model, target_modules=["query_key_value", "W_pack"])
    message = str(err.value)
    assert "query_key_value" in message and "W_pack" in message
    assert "q_proj" in message and "down_proj" in message
    # a partly matching list is refused too: peft would silently skip the missing name
    with pytest.raises(FinGPTError, match="W_pack"):
        build_lora_config(model, target_modules=["q_proj", "W_pack"])
    with pytest.raises(FinGPTError, match="regex"):
        build_lora_config(model, target_modules=r".*\.W_pack")
    assert build_lora_config(model, target_modules=r".*\.v_proj").target_modules == r".*\.v_proj"


def test_unknown_family_name_is_an_error():
    with pytest.raises(FinGPTError, match="unknown model family 'gpt5'"):
        family_by_name("gpt5")


# --- tokenizer fixes -------------------------------------------------------------------------

def _tokenizer(words: list[str], **special: str) -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>" if "<unk>" in vocab else words[0]))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def test_llama_pad_uses_unk_and_never_grows_the_vocabulary():
    tok = _tokenizer(["<unk>", "<s>", "</s>", "good"], unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    size = len(tok)
    prepare_tokenizer(tok, family_by_name("llama"))
    assert (tok.pad_token, tok.pad_token_id, len(tok)) == ("<unk>", 0, size)


def test_pad_falls_back_to_eos():
    tok = _tokenizer(["<|endoftext|>", "good"], eos_token="<|endoftext|>")
    prepare_tokenizer(tok, family_by_name("falcon"))
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert len(tok) == 2


def test_qwen_v1_gets_eos_endoftext_and_pad_extra_0():
    tok = _tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|extra_0|>", "good"])
    assert tok.eos_token is None and tok.pad_token is None
    prepare_tokenizer(tok, family_by_name("qwen"))
    assert (tok.eos_token, tok.eos_token_id) == ("<|endoftext|>", 0)
    assert (tok.pad_token, tok.pad_token_id) == ("<|extra_0|>", 3)
    assert len(tok) == 5


def test_existing_pad_token_is_kept():
    tok = _tokenizer(["<pad>", "</s>", "<unk>"], pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    prepare_tokenizer(tok, family_by_name("llama"))
    assert tok.pad_token == "<pad>"


def test_no_pad_and_no_eos_is_an_error():
    tok = _tokenizer(["a", "b"])
    with pytest.raises(FinGPTError, match="no pad token"):
        prepare_tokenizer(tok, family_by_name("mpt"))
