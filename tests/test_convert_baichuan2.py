"""Baichuan2-7B -> LlamaForCausalLM: logits and token ids equal the original remote code's.

The oracle is the original ``modeling_baichuan.py`` / ``tokenization_baichuan.py`` imported from
../shared/reference-models (see reference_baichuan2.py for which copies and why). The model is a
tiny random checkpoint in the original Hub layout with the real 125,696-piece vocabulary; the
texts are the real FPB and TFNS test rows and FinGPT prompts built from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from reference_baichuan2 import (
    MLPOD_MODELING,
    load_original_model,
    load_original_tokenizer,
    write_tiny_original,
)

from fingpt_hf.conversion.baichuan2 import Baichuan2Converter
from fingpt_hf.conversion.convert import convert_checkpoint
from fingpt_hf.conversion.spec import SOURCE_KEY, ConversionError
from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.prompts import format_prompt

ATOL = 1e-5


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("baichuan2")


@pytest.fixture(scope="module")
def source(work: Path) -> Path:
    return write_tiny_original(work / "original", work / "ref-write")


@pytest.fixture(scope="module")
def converted(source: Path, work: Path) -> Path:
    return convert_checkpoint(str(source), work / "converted")


@pytest.fixture(scope="module")
def native(converted: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(converted).eval(), AutoTokenizer.from_pretrained(converted)


@pytest.fixture(scope="module")
def original_tokenizer(work: Path) -> Any:
    return load_original_tokenizer(work / "ref-tokenizer")


@pytest.fixture(scope="module")
def original_model(source: Path, work: Path) -> Any:
    return load_original_model(source, work / "ref-model")


@pytest.fixture(scope="module")
def rows() -> dict[str, Any]:
    return {name: load_benchmark(name, "test") for name in ("fpb", "tfns")}


def _prompts(rows: dict[str, Any], count: int) -> list[str]:
    """FinGPT prompts of different lengths from real FPB rows (so left padding really pads)."""
    fpb = rows["fpb"]
    picked = sorted(range(len(fpb)), key=lambda i: len(fpb[i]["input"]))
    return [format_prompt(fpb[picked[int(k * (len(picked) - 1) / max(count - 1, 1))]]) for k in range(count)]


def _left_padded(tokenizer: Any, texts: list[str]) -> Any:
    tokenizer.padding_side = "left"
    return tokenizer(texts, padding=True, return_tensors="pt")


def _logit_diff(a: Any, b: Any, mask: Any) -> float:
    return (a - b)[mask.bool()].abs().max().item()


def test_converted_checkpoint_is_native(converted: Path, native: tuple[Any, Any]) -> None:
    model, tokenizer = native
    config = json.loads((converted / "config.json").read_text())
    assert type(model).__name__ == "LlamaForCausalLM" and config["architectures"] == ["LlamaForCausalLM"]
    assert "auto_map" not in config and not list(converted.glob("*.py"))
    assert config[SOURCE_KEY]["family"] == "baichuan2"
    assert config["rope_parameters"]["rope_theta"] == 10000.0 and config["num_key_value_heads"] == 4
    assert tokenizer.is_fast and len(tokenizer) == config["vocab_size"] == 125696
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<unk>")
    assert tokenizer.model_max_length == 4096
    generation = json.loads((converted / "generation_config.json").read_text())
    assert generation["temperature"] == 0.3 and generation["top_k"] == 5 and generation["user_token_id"] == 195
    readme = (converted / "README.md").read_text()
    assert "W_pack" in readme and "NormHead" in readme


def test_logits_equal_unpadded(rows: dict[str, Any], original_tokenizer: Any, original_model: Any,
                               native: tuple[Any, Any]) -> None:
    model, tokenizer = native
    prompt = _prompts(rows, 1)[0]
    ids = original_tokenizer(prompt, return_tensors="pt").input_ids
    assert tokenizer(prompt, return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        expected, got = original_model(input_ids=ids).logits, model(input_ids=ids).logits
    assert expected.shape == got.shape
    assert (expected - got).abs().max().item() <= ATOL


@pytest.mark.parametrize("positions", ["arange", "from_mask"])
def test_logits_equal_left_padded(rows: dict[str, Any], original_tokenizer: Any, original_model: Any,
                                  native: tuple[Any, Any], positions: str) -> None:
    """Both models read the same left-padded batch; only real-token positions are compared.
    ``from_mask`` passes the positions generate() derives; ``arange`` lets each model default."""
    model, tokenizer = native
    prompts = _prompts(rows, 3)
    batch = _left_padded(original_tokenizer, prompts)
    ours = _left_padded(tokenizer, prompts)
    assert torch.equal(batch.input_ids, ours.input_ids) and torch.equal(batch.attention_mask, ours.attention_mask)
    assert (batch.attention_mask == 0).any(), "the prompts should differ in length"
    extra = {}
    if positions == "from_mask":
        position_ids = batch.attention_mask.long().cumsum(-1) - 1
        extra["position_ids"] = position_ids.masked_fill(batch.attention_mask == 0, 1)
    with torch.no_grad():
        expected = original_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **extra).logits
        got = model(input_ids=ours.input_ids, attention_mask=ours.attention_mask, **extra).logits
    assert _logit_diff(expected, got, batch.attention_mask) <= ATOL


def test_both_original_modeling_copies_agree(source: Path, work: Path, rows: dict[str, Any],
                                             original_tokenizer: Any, original_model: Any) -> None:
    """mlpod's modeling_baichuan.py (debug edits) computes what the pandong2011 oracle does."""
    mlpod = load_original_model(source, work / "ref-mlpod", MLPOD_MODELING)
    batch = _left_padded(original_tokenizer, _prompts(rows, 3))
    with torch.no_grad():
        expected = original_model(**batch).logits
        got = mlpod(**batch).logits
    assert _logit_diff(expected, got, batch.attention_mask) <= ATOL


@pytest.mark.parametrize("name", ["fpb", "tfns"])
def test_tokenizer_ids_equal_on_real_rows(name: str, rows: dict[str, Any], original_tokenizer: Any,
                                          native: tuple[Any, Any]) -> None:
    _, tokenizer = native
    texts = list(rows[name]["input"])
    prompts = [format_prompt(row) for row in rows[name]]
    for items in (texts, prompts):
        for special in (False, True):
            expected = original_tokenizer(items, add_special_tokens=special).input_ids
            got = tokenizer(items, add_special_tokens=special).input_ids
            differ = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b]
            assert not differ, f"{name}: {len(differ)}/{len(items)} rows differ, first {items[differ[0]]!r}"
        decoded = tokenizer.batch_decode(got)
        assert decoded == original_tokenizer.batch_decode(expected)
        assert decoded == items


def test_tokenizer_specials_and_edge_text(original_tokenizer: Any, native: tuple[Any, Any]) -> None:
    """Specials typed in text, whitespace runs, digits, full-width and byte-fallback characters."""
    _, tokenizer = native
    texts = ["x</s>y <s> <unk>", "Hello   world  \n\n\tend", "  $12,345.67 +3.5%",
             "ｆｕｌｌ１２３ 中文，测试。", "Ångström naïve \u200b\u00a0 😀", "<reserved_106>hi<reserved_107><SEP>"]
    for special in (False, True):
        assert tokenizer(texts, add_special_tokens=special).input_ids == \
            original_tokenizer(texts, add_special_tokens=special).input_ids
    pair = ("Profit rose.", "Sales fell.")
    assert tokenizer(*pair).input_ids == original_tokenizer(*pair).input_ids
    ids = original_tokenizer(texts[0]).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == original_tokenizer.decode(ids, skip_special_tokens=True)


def test_safetensors_source_converts_to_the_same_weights(converted: Path, work: Path) -> None:
    from safetensors.torch import load_file

    source = write_tiny_original(work / "original-st", work / "ref-st", fmt="safetensors")
    out = convert_checkpoint(str(source), work / "converted-st")

    def weights(directory: Path) -> dict[str, Any]:
        return {k: v for f in sorted(directory.glob("*.safetensors")) for k, v in load_file(str(f)).items()}

    expected, got = weights(converted), weights(out)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_convert_tensor_on_meta_and_half_precision() -> None:
    converter = Baichuan2Converter()
    packed = torch.empty(3 * 64, 64, device="meta")
    parts = converter.convert_tensor("model.layers.3.self_attn.W_pack.weight", packed, {})
    assert [(n, tuple(t.shape)) for n, t in parts] == [
        (f"model.layers.3.self_attn.{p}_proj.weight", (64, 64)) for p in "qkv"]
    assert converter.convert_tensor("model.layers.0.self_attn.rotary_emb.inv_freq", torch.empty(8), {}) == []
    (name, head), = converter.convert_tensor("lm_head.weight", torch.empty(10, 64, device="meta"), {})
    assert name == "lm_head.weight" and head.shape == (10, 64)
    weight = (torch.randn(5, 64) * torch.arange(1, 6).unsqueeze(1)).to(torch.bfloat16)
    (_, folded), = converter.convert_tensor("lm_head.weight", weight, {})
    assert folded.dtype == torch.bfloat16
    assert torch.allclose(folded.float().norm(dim=-1), torch.ones(5), atol=1e-2)
    with pytest.raises(KeyError):
        converter.convert_tensor("model.layers.0.self_attn.q_proj.weight", packed, {})
    with pytest.raises(KeyError):
        converter.convert_tensor("transformer.wte.weight", packed, {})


def test_generation_config_without_file(tmp_path: Path, native: tuple[Any, Any]) -> None:
    _, tokenizer = native
    generation = Baichuan2Converter().build_generation_config(tmp_path, {}, tokenizer)
    assert (generation.bos_token_id, generation.eos_token_id, generation.pad_token_id) == (1, 2, 0)


def _variant(source: Path, dest: Path, **changes: Any) -> Path:
    """``source`` with its config.json changed (None removes a key); the other files linked."""
    dest.mkdir()
    for path in source.iterdir():
        if path.name != "config.json":
            os.symlink(path, dest / path.name)
    config = json.loads((source / "config.json").read_text())
    config.update(changes)
    (dest / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return dest


#: Baichuan2-13B's config.json architecture keys: model_max_length, no max_position_embeddings (ALiBi).
BAICHUAN2_13B = {"hidden_size": 5120, "intermediate_size": 13696, "num_attention_heads": 40,
                 "num_hidden_layers": 40, "max_position_embeddings": None, "model_max_length": 4096}


@pytest.mark.parametrize(("changes", "why"), [
    (BAICHUAN2_13B, "ALiBi"),
    ({"architectures": ["BaiChuanForCausalLM"], "vocab_size": 64000}, "NormHead"),
    ({"quantization_config": {"load_in_4bit": True}}, "quantized"),
])
def test_unconvertible_configs_are_refused(source: Path, tmp_path: Path, changes: dict[str, Any], why: str) -> None:
    variant = _variant(source, tmp_path / "variant", **changes)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="config.json") as caught:
        convert_checkpoint(str(variant), out)
    assert why in str(caught.value)
    assert not out.exists()


def test_tokenizer_larger_than_vocab_is_refused(tmp_path: Path) -> None:
    small = write_tiny_original(tmp_path / "small", tmp_path / "ref", vocab_size=1000)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="tokenizer.model") as caught:
        convert_checkpoint(str(small), out)
    assert "125696 tokens" in str(caught.value) and "1000 rows" in str(caught.value)
    assert not out.exists()
