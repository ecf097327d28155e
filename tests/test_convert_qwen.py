"""Qwen v1 -> Qwen2ForCausalLM: the converted checkpoint against the ORIGINAL code.

The oracle is Qwen-7B's own ``modeling_qwen.py`` and ``tokenization_qwen.py`` (imported from
../shared/reference-models by tests/reference_qwen.py). The model is a tiny random one in the
original layout with the real vocabulary; the tokenizer is the real ``qwen.tiktoken``, checked on
every FPB and TFNS test row.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
import torch

from fingpt_hf.conversion.convert import CONVERSION_FILE, convert_checkpoint
from fingpt_hf.conversion.qwen import QwenConverter
from fingpt_hf.conversion.spec import SOURCE_KEY, ConversionError
from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.prompts import format_prompt
from reference_qwen import TINY, load_original_model, load_original_tokenizer, reference_path, write_tiny_original

TOLERANCE = 1e-5
PAD = "<|extra_0|>"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qwen")


@pytest.fixture(scope="module")
def source(work: Path) -> Path:
    return write_tiny_original(work / "src", work / "code-src")


@pytest.fixture(scope="module")
def converted(work: Path, source: Path) -> Path:
    return convert_checkpoint(str(source), work / "out")


@pytest.fixture(scope="module")
def native(converted: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(converted).eval()


@pytest.fixture(scope="module")
def native_tokenizer(converted: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(converted)


@pytest.fixture(scope="module")
def original(work: Path, source: Path):
    return load_original_model(source, work / "code-model")


@pytest.fixture(scope="module")
def original_tokenizer(work: Path):
    return load_original_tokenizer(work / "code-tokenizer")


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    """Real FinGPT prompts of different lengths (all far below the tiny seq_length of 256)."""
    rows = load_benchmark("fpb", "test").select(range(3))
    return [format_prompt(row) for row in rows] + [format_prompt(load_benchmark("tfns", "test")[0])]


def test_loads_natively(converted: Path, native, native_tokenizer) -> None:
    from fingpt_hf.families import get_family, prepare_tokenizer

    config = json.loads((converted / "config.json").read_text())
    assert type(native).__name__ == "Qwen2ForCausalLM" and "auto_map" not in config
    assert config[SOURCE_KEY]["family"] == "qwen"
    assert config["max_position_embeddings"] == TINY["seq_length"]
    assert config["rope_parameters"]["rope_theta"] == TINY["rotary_emb_base"]
    assert native.config.intermediate_size == TINY["intermediate_size"] // 2
    assert native_tokenizer.is_fast and len(native_tokenizer) == 151851
    assert (native_tokenizer.eos_token, native_tokenizer.eos_token_id) == ("<|endoftext|>", 151643)
    assert native_tokenizer.bos_token is None and native_tokenizer.pad_token is None
    assert native_tokenizer("a")["input_ids"] == native_tokenizer("a", add_special_tokens=False)["input_ids"]
    family = get_family(native.config)
    assert family.name == "qwen-native"
    assert prepare_tokenizer(native_tokenizer, family).pad_token == PAD
    native_tokenizer.pad_token = None  # the fixture is shared


def test_logits_match_unpadded(native, native_tokenizer, original, prompts: list[str]) -> None:
    diffs = []
    with torch.no_grad():
        for prompt in prompts:
            ids = native_tokenizer(prompt, return_tensors="pt")["input_ids"]
            expected = original(input_ids=ids).logits
            assert expected.abs().max() > 1.0  # random weights at a scale where a wrong mapping shows
            diffs.append((native(input_ids=ids).logits - expected).abs().max().item())
    assert max(diffs) <= TOLERANCE, diffs


def test_logits_match_left_padded(native, native_tokenizer, original, prompts: list[str]) -> None:
    ids = [native_tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    assert len({len(i) for i in ids}) > 1
    pad_id = native_tokenizer.convert_tokens_to_ids(PAD)
    input_ids = torch.tensor([[pad_id] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    # The same inputs to both; the original ignores position_ids (it rotates by 0..T-1), which
    # RoPE makes equivalent since attention only sees relative positions.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        got = native(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
        expected = original(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
        alone = native(input_ids=torch.tensor([ids[-1]])).logits[0]
    real = mask.bool()
    assert (got - expected)[real].abs().max().item() <= TOLERANCE
    assert (got[-1][real[-1]] - alone).abs().max().item() <= TOLERANCE


def test_longer_than_seq_length_differs_as_warned(native, original) -> None:
    """The README's warning is true: exact up to seq_length, not beyond (dynamic NTK, logn)."""
    generator = torch.Generator().manual_seed(0)
    seq_length = TINY["seq_length"]
    with torch.no_grad():
        for length, exact in ((seq_length, True), (seq_length + 40, False)):
            ids = torch.randint(0, 151643, (1, length), generator=generator)
            got, expected = native.model(input_ids=ids)[0], original.transformer(input_ids=ids)[0]
            diff = (got - expected).abs().max().item()
            assert (diff <= TOLERANCE) == exact, (length, diff)


def test_tensor_names_on_meta() -> None:
    converter, meta = QwenConverter(), torch.empty(3 * 64, 64, device="meta")
    names = [name for name, _ in converter.convert_tensor("transformer.h.1.attn.c_attn.weight", meta, {})]
    assert names == [f"model.layers.1.self_attn.{p}_proj.weight" for p in "qkv"]
    assert converter.convert_tensor("transformer.h.1.attn.rotary_emb.inv_freq", meta, {}) == []
    assert converter.convert_tensor("transformer.rotary_emb.inv_freq", meta, {}) == []
    with pytest.raises(KeyError):
        converter.convert_tensor("transformer.h.1.attn.q_proj.weight", meta, {})


@pytest.mark.parametrize("benchmark", ["fpb", "tfns"])
def test_tokenizer_ids_match_original(benchmark: str, native_tokenizer, original_tokenizer) -> None:
    rows = load_benchmark(benchmark, "test")
    texts = list(rows["input"]) + [format_prompt(row) for row in rows]
    got = native_tokenizer(texts)["input_ids"]
    mismatched = [t for t, ids in zip(texts, got) if ids != original_tokenizer.encode(t)]
    assert not mismatched, f"{len(mismatched)}/{len(texts)} differ, e.g. {mismatched[:2]}"
    for text, ids in zip(texts, got):
        assert native_tokenizer.decode(ids) == unicodedata.normalize("NFC", text) == original_tokenizer.decode(ids)


def test_special_tokens_and_nfc_like_original(native_tokenizer, original_tokenizer) -> None:
    # The original encodes special-token text in user text as the special id (allowed_special="all");
    # the fast tokenizer matches added tokens the same way.
    for text in ("profit <|endoftext|> up", "<|im_start|>user\nhi<|im_end|>", f"x{PAD}y<|extra_204|>",
                 "cafe\u0301 Ame\u0301lie\u3000１２３ﬁ", "  \t\r\n\n  trailing  ", "$AAPL +3.5%!!"):
        ids = native_tokenizer(text)["input_ids"]
        assert ids == original_tokenizer.encode(text), text
        assert native_tokenizer.decode(ids) == original_tokenizer.decode(ids)
    assert native_tokenizer("<|endoftext|>")["input_ids"] == [151643]
    assert native_tokenizer.convert_tokens_to_ids(PAD) == 151646
    decoded = native_tokenizer.decode(native_tokenizer("a<|im_end|>b")["input_ids"], skip_special_tokens=True)
    assert decoded == "ab"


def test_generation_config_and_warnings(converted: Path, source: Path) -> None:
    from transformers import GenerationConfig

    generation = GenerationConfig.from_pretrained(converted)
    assert (generation.eos_token_id, generation.pad_token_id, generation.top_p) == (151643, 151643, 0.8)
    raw = json.loads((converted / "generation_config.json").read_text())
    assert "chat_format" not in raw and "stop_words_ids" not in raw
    provenance = json.loads((converted / CONVERSION_FILE).read_text())
    assert any("256" in w and "seq_length" in w for w in provenance["warnings"])
    assert "seq_length = 256" in (converted / "README.md").read_text()
    real = json.loads(reference_path("qwen-7b-14b-v1", "config.json").read_text())
    converter = QwenConverter()
    assert "8192" in converter.warnings(real)[0]
    assert "2048" in converter.warnings({**real, "seq_length": 2048})[0]  # Qwen-14B
    assert converter.warnings({**real, "use_dynamic_ntk": False, "use_logn_attn": False}) == []


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for shard in sorted(directory.glob("*.safetensors")) for k, v in load_file(str(shard)).items()}


def test_bin_layout_converts_to_the_same_weights(work: Path, source: Path, converted: Path) -> None:
    """The same tensors as one pytorch_model.bin (Qwen's older Hub layout) convert identically."""
    binary = work / "src-bin"
    binary.mkdir()
    for name in ("config.json", "qwen.tiktoken", "tokenizer_config.json", "generation_config.json"):
        (binary / name).symlink_to(source / name)
    torch.save(_weights(source), binary / "pytorch_model.bin")
    out = convert_checkpoint(str(binary), work / "out-bin")
    expected, got = _weights(converted), _weights(out)
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)


def _variant(source: Path, dest: Path, **config) -> Path:
    """``source`` with other config.json values (weights and tokenizer linked, not copied)."""
    dest.mkdir()
    for path in source.iterdir():
        if path.name != "config.json":
            (dest / path.name).symlink_to(path)
    values = json.loads((source / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**values, **config}))
    return dest


@pytest.mark.parametrize("change, key", [
    ({"rotary_pct": 0.5}, "rotary_pct"),
    ({"no_bias": False}, "no_bias"),
    ({"kv_channels": 8}, "kv_channels"),
    ({"tie_word_embeddings": True}, "tie_word_embeddings"),
])
def test_inexpressible_config_is_refused(work: Path, source: Path, change: dict, key: str) -> None:
    variant = _variant(source, work / f"bad-{key}", **change)
    out = work / f"out-bad-{key}"
    with pytest.raises(ConversionError, match=rf"config\.json.*{key}"):
        convert_checkpoint(str(variant), out)
    assert not out.exists()


def test_tokenizer_larger_than_vocab_is_refused(work: Path) -> None:
    source = write_tiny_original(work / "src-small-vocab", work / "code-small", fmt="bin", vocab_size=151000)
    out = work / "out-small-vocab"
    with pytest.raises(ConversionError, match=r"qwen\.tiktoken.*151851 tokens.*151000 rows"):
        convert_checkpoint(str(source), out)
    assert not out.exists()


def test_tiktoken_with_extra_tokens_is_refused(work: Path, source: Path) -> None:
    variant = _variant(source, work / "bad-tiktoken")
    (variant / "qwen.tiktoken").unlink()
    shutil.copyfile(source / "qwen.tiktoken", variant / "qwen.tiktoken")
    with open(variant / "qwen.tiktoken", "a") as handle:
        handle.write("eHl6enk= 151643\n")  # a 151644th token, on the id of <|endoftext|>
    out = work / "out-bad-tiktoken"
    with pytest.raises(ConversionError, match=r"qwen\.tiktoken.*ranks 0\.\.151642"):
        convert_checkpoint(str(variant), out)
    assert not out.exists()
