"""ChatGLM2-6B -> native GlmForCausalLM: logits and token ids equal the ORIGINAL remote code's.

The oracle is the original ``modeling_chatglm.py`` / ``tokenization_chatglm.py`` from
``../shared/reference-models`` (see ``reference_chatglm2``). The model is a tiny random checkpoint
in the original layout with the real 65,024-row vocabulary; the tokenizer is the real one, checked
on every FPB and TFNS test row. The converted checkpoint loads without trust_remote_code.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from reference_chatglm2 import load_original_model, load_original_tokenizer, write_tiny_original

TOLERANCE = 1e-5
#: Texts where sentencepiece details show: dummy prefix, runs of spaces, newlines and tabs (byte
#: fallback), leading "▁", CJK and emoji, and special-token names typed as plain text.
EDGE_TEXTS = [
    "", " ", "  two  spaces  ", "\n", "line\n\nbreaks\r\n", "\ttab\t", " leading", "trailing ",
    "▁x ▁", "中文，测试 😀", "sop eop [gMASK] [MASK] </s> <s> <unk> desop", "\u200b\u00a0é ﬁ Ω",
    "12,345.67 $AAPL -3.2%",
]


def _prompts(name: str) -> tuple[list[str], list[str]]:
    from fingpt_hf.data.benchmarks import load_benchmark
    from fingpt_hf.data.prompts import format_prompt

    rows = load_benchmark(name, "test")
    return list(rows["input"]), [format_prompt(row) for row in rows]


@pytest.fixture(scope="module")
def glm(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fingpt_hf.conversion.convert import convert_checkpoint

    tmp = tmp_path_factory.mktemp("chatglm2")
    src = write_tiny_original(tmp / "original", tmp / "imports", seed=0, fmt="bin-sharded")
    out = convert_checkpoint(str(src), tmp / "native")
    return SimpleNamespace(
        src=src, out=out, tmp=tmp,
        original=load_original_model(src, tmp / "imports"),
        original_tokenizer=load_original_tokenizer(tmp / "imports"),
        tokenizer=AutoTokenizer.from_pretrained(out),
        native={impl: AutoModelForCausalLM.from_pretrained(out, attn_implementation=impl).eval()
                for impl in ("sdpa", "eager")},
    )


@pytest.fixture(scope="module")
def benchmark_texts() -> dict[str, tuple[list[str], list[str]]]:
    return {name: _prompts(name) for name in ("fpb", "tfns")}


def _max_logit_diff(original, native, batch: dict[str, torch.Tensor]) -> float:
    """Max |logit difference| over real (non-pad) positions, both models given the same inputs."""
    with torch.no_grad():
        expected = original(**batch).logits
        actual = native(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        position_ids=batch["position_ids"]).logits
    real = batch["attention_mask"].bool()
    return (expected - actual)[real].abs().max().item()


# --- (a) the converted checkpoint -------------------------------------------------------------------

def test_loads_as_native_glm(glm: SimpleNamespace) -> None:
    from transformers import GlmForCausalLM

    config = json.loads((glm.out / "config.json").read_text())
    assert config["model_type"] == "glm" and "auto_map" not in config
    assert config["fingpt_hf_source"]["family"] == "chatglm2"
    assert config["pad_token_id"] == 0 and config["eos_token_id"] == 2
    assert not list(glm.out.glob("*.py"))
    for model in glm.native.values():
        assert type(model) is GlmForCausalLM
    tok = glm.tokenizer
    assert tok.is_fast and tok.padding_side == "left"
    assert (tok.pad_token_id, tok.eos_token_id, len(tok)) == (0, 2, 64794)
    assert tok.convert_tokens_to_ids(["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"]) == list(range(64789, 64794))
    generation = json.loads((glm.out / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"]) == (2, 0)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_logits_equal_unpadded(glm: SimpleNamespace, benchmark_texts, impl: str) -> None:
    prompt = benchmark_texts["fpb"][1][0]
    batch = glm.original_tokenizer([prompt], return_tensors="pt")
    assert _max_logit_diff(glm.original, glm.native[impl], batch) <= TOLERANCE


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_logits_equal_left_padded(glm: SimpleNamespace, benchmark_texts, impl: str) -> None:
    prompts = benchmark_texts["fpb"][1][:2] + benchmark_texts["tfns"][1][:2]
    batch = glm.original_tokenizer(prompts, return_tensors="pt", padding=True)
    assert len(set(batch["attention_mask"].sum(-1).tolist())) > 1, "rows must differ in length"
    assert (batch["attention_mask"][:, 0] == 0).any()
    assert _max_logit_diff(glm.original, glm.native[impl], batch) <= TOLERANCE


def test_per_head_qkv_layout_and_safetensors(glm: SimpleNamespace, benchmark_texts) -> None:
    """multi_query_attention=false packs q/k/v per head; it maps to num_key_value_heads = heads."""
    from transformers import AutoModelForCausalLM

    from fingpt_hf.conversion.convert import convert_checkpoint

    src = write_tiny_original(glm.tmp / "no-mqa", glm.tmp / "imports", seed=1, fmt="safetensors",
                              config={"multi_query_attention": False})
    out = convert_checkpoint(str(src), glm.tmp / "no-mqa-native")
    native = AutoModelForCausalLM.from_pretrained(out).eval()
    assert native.config.num_key_value_heads == native.config.num_attention_heads == 4
    batch = glm.original_tokenizer(benchmark_texts["tfns"][1][:3], return_tensors="pt", padding=True)
    assert _max_logit_diff(load_original_model(src, glm.tmp / "imports"), native, batch) <= TOLERANCE


# --- (b) the tokenizer ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fpb", "tfns"])
@pytest.mark.parametrize("kind", ["text", "prompt"])
def test_token_ids_equal_on_every_test_row(glm: SimpleNamespace, benchmark_texts, name: str, kind: str) -> None:
    texts = benchmark_texts[name][0 if kind == "text" else 1]
    assert len(texts) > 1000
    for special in (True, False):
        expected = glm.original_tokenizer(texts, add_special_tokens=special)["input_ids"]
        actual = glm.tokenizer(texts, add_special_tokens=special)["input_ids"]
        differing = [i for i, (a, b) in enumerate(zip(expected, actual)) if a != b]
        assert not differing, f"{name} {kind} add_special_tokens={special}: rows {differing[:10]} differ"
    with_prefix = glm.tokenizer(texts)["input_ids"]
    assert all(ids[:2] == [64790, 64792] for ids in with_prefix)  # [gMASK] sop
    for text, ids in zip(texts, with_prefix):
        assert glm.tokenizer.decode(ids, skip_special_tokens=True) == glm.original_tokenizer.decode(ids) == text


def test_token_ids_equal_on_edge_cases(glm: SimpleNamespace) -> None:
    for text in EDGE_TEXTS:
        expected = glm.original_tokenizer(text)["input_ids"]
        assert glm.tokenizer(text)["input_ids"] == expected, repr(text)
        assert glm.tokenizer.decode(expected, skip_special_tokens=True) == glm.original_tokenizer.decode(expected)
    expected = glm.original_tokenizer("first part", "second part")["input_ids"]
    assert glm.tokenizer("first part", "second part")["input_ids"] == expected


def test_left_padded_batch_equal(glm: SimpleNamespace, benchmark_texts) -> None:
    prompts = benchmark_texts["fpb"][1][:8] + benchmark_texts["tfns"][1][:8]
    expected = glm.original_tokenizer(prompts, padding=True)
    actual = glm.tokenizer(prompts, padding=True)
    assert actual["input_ids"] == expected["input_ids"]
    assert actual["attention_mask"] == expected["attention_mask"]


# --- (c) bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"rmsnorm": False}, "rmsnorm"),
    ({"apply_residual_connection_post_layernorm": True}, "apply_residual_connection_post_layernorm"),
    ({"add_bias_linear": True}, "add_bias_linear"),
    ({"post_layer_norm": False}, "post_layer_norm"),
    ({"rope_ratio": 16}, "rope_ratio"),
    ({"pre_seq_len": 128}, "pre_seq_len"),
    ({"quantization_bit": 4}, "quantization_bit"),
    ({"padded_vocab_size": None}, "ChatGLM-6B v1"),
])
def test_unsupported_config_is_refused_before_writing(glm: SimpleNamespace, tmp_path: Path, change, words) -> None:
    from fingpt_hf.conversion.convert import convert_checkpoint
    from fingpt_hf.conversion.spec import ConversionError

    src = tmp_path / "variant"
    src.mkdir()
    for path in glm.src.iterdir():
        os.link(path, src / path.name) if path.suffix == ".bin" else shutil.copyfile(path, src / path.name)
    config = {**json.loads((glm.src / "config.json").read_text()), **change}
    (src / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="config.json") as error:
        convert_checkpoint(str(src), out)
    assert words in str(error.value)
    assert not out.exists()
