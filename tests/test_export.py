"""`fingpt-hf export`: merged checkpoints and GGUF files that score like the adapter they came from.

- Merged fp32 export: label scores on real FPB prompts equal base + adapter (PeftModel) within 1e-4,
  and the directory loads with ``AutoModelForCausalLM.from_pretrained`` alone; the card names both.
- GGUF f32 / f16 / q8_0: transformers' own GGUF loader reads the file back (q/k permutation undone,
  tokenizer rebuilt from ``tokenizer.ggml.*``): same token ids on real rows; logits equal the merged
  model's (f32), and equal the merged model with its weights rounded the way the file stores them
  (f16, q8_0) - which also bounds how far each type is from the exact merge.
- Bad input is a FinGPTError before anything is written; --overwrite; the CLI end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.prompts import format_prompt
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.config import EvalConfig
from fingpt_hf.evaluation.runner import run_evaluation
from fingpt_hf.evaluation.scoring import score_labels
from fingpt_hf.export import export_model
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fpb_rows() -> list[dict]:
    return list(load_benchmark("fpb", "test").select(range(8)))


@pytest.fixture(scope="module")
def prompts(fpb_rows) -> list[str]:
    return [format_prompt(r) for r in fpb_rows]


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory, default_model_path) -> tuple[Path, Path]:
    """A tiny random Llama with the default tokenizer (tied embeddings, grouped KV heads) and a LoRA
    adapter with random (non-zero) A and B on every linear layer, evaluated so the card has results."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("export")
    base = save_tiny_llama(root / "base", default_model_path, pad_token=True, tie_word_embeddings=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    torch.manual_seed(1)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  init_lora_weights=False))
    adapter = root / "adapter"
    peft_model.save_pretrained(adapter)
    run_evaluation(EvalConfig(model=str(base), adapter=str(adapter), datasets="fpb", limit=4, dtype="fp32",
                              output_dir=str(adapter / "eval")), echo=lambda _: None)
    return base, adapter


@pytest.fixture(scope="module")
def reference(tiny_pair):
    """Base + adapter as peft runs it (not merged), in fp32."""
    from peft import PeftModel

    base, adapter = tiny_pair
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, adapter).eval(), AutoTokenizer.from_pretrained(base)


def _max_abs(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


def _logits(model, ids: list[list[int]]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(input_ids=torch.tensor([row])).logits[0].float() for row in ids])


def test_merged_fp32_export_scores_like_base_plus_adapter(tiny_pair, reference, prompts, tmp_path):
    base, adapter = tiny_pair
    out = tmp_path / "merged"
    result = export_model(str(base), str(adapter), out, dtype="fp32")
    assert result.dtype == "float32"
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(result.files)
    assert not list(tmp_path.glob(".merged.*"))  # the build directory was renamed, nothing left beside

    merged = AutoModelForCausalLM.from_pretrained(out)  # no peft
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert merged.config.tie_word_embeddings and merged.lm_head.weight is merged.model.embed_tokens.weight
    peft_model, base_tokenizer = reference
    want = score_labels(peft_model, base_tokenizer, prompts, list(LABELS))
    got = score_labels(merged, tokenizer, prompts, list(LABELS))
    diff = _max_abs(want, got)
    print(f"merged fp32 vs base+adapter: max abs label-score diff {diff:.3g}")
    assert diff <= 1e-4
    # The adapter changed the model (so the comparison is not trivially base vs base).
    plain = AutoModelForCausalLM.from_pretrained(base)
    assert _max_abs(score_labels(plain, base_tokenizer, prompts, list(LABELS)), want) > 1e-2

    card = (out / "README.md").read_text()
    adapter_hash = json.loads((adapter / "eval" / "results.json").read_text())["results"]["fpb"]["adapter"]["hash"]
    assert str(base) in card and str(adapter) in card and adapter_hash in card
    assert "| FPB | 4 | score |" in card


def test_merged_export_of_a_dora_adapter_scores_like_base_plus_adapter(tiny_pair, prompts, tmp_path):
    """The CPU default trains DoRA (round 23), which vLLM cannot serve as an adapter: its merged export is the way to
    serve it, so the merge must keep DoRA's magnitudes (peft folds them into the weights): label scores equal peft's
    unmerged DoRA, which differs from the base."""
    from peft import LoraConfig, PeftModel, get_peft_model

    base, _ = tiny_pair
    torch.manual_seed(2)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", use_dora=True,
                                           init_lora_weights=False))
    with torch.no_grad():  # magnitudes away from the base weights' norms, as training leaves them
        for name, param in peft_model.named_parameters():
            if "lora_magnitude_vector" in name:
                param.mul_(1 + 0.5 * torch.rand_like(param))
    adapter = tmp_path / "dora"
    peft_model.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["use_dora"] is True
    out = tmp_path / "merged"
    export_model(str(base), str(adapter), out, dtype="fp32")
    tokenizer = AutoTokenizer.from_pretrained(base)
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter).eval()
    want = score_labels(unmerged, tokenizer, prompts, list(LABELS))
    got = score_labels(AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out), prompts, list(LABELS))
    assert _max_abs(want, got) <= 1e-4
    plain = AutoModelForCausalLM.from_pretrained(base)
    assert _max_abs(score_labels(plain, tokenizer, prompts, list(LABELS)), want) > 1e-2


def _rounded_like(model, gguf_type: str):
    """A copy of ``model`` whose 2-D weights went through what a GGUF of ``gguf_type`` stores."""
    import copy

    import gguf

    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in rounded.named_parameters():
            if param.ndim < 2:
                continue
            data = param.detach().numpy()
            if gguf_type == "f16":
                back = data.astype("float16").astype("float32")
            else:
                qtype = gguf.GGMLQuantizationType.Q8_0
                back = gguf.quants.dequantize(gguf.quants.quantize(data, qtype), qtype)
            param.copy_(torch.from_numpy(back.reshape(data.shape)))
    return rounded


def test_gguf_export_loads_back_with_transformers(tiny_pair, fpb_rows, prompts, tmp_path):
    base, adapter = tiny_pair
    merged = export_model(str(base), str(adapter), tmp_path / "m", dtype="fp32", keep_model=True)
    model, tokenizer = merged.model, merged.tokenizer
    texts = [r["input"] for r in fpb_rows] + prompts
    ids = [tokenizer(t)["input_ids"] for t in prompts[:4]]
    want = _logits(model, ids)
    for gguf_type, bound in (("f32", 1e-4), ("f16", 1e-4), ("q8_0", 1e-4)):
        out = tmp_path / f"gguf-{gguf_type}"
        result = export_model(str(base), str(adapter), out, dtype="fp32", format="gguf", gguf_type=gguf_type)
        name = f"model-{gguf_type}.gguf"
        assert result.files == sorted([name, "README.md", "fingpt_export.json"])
        loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32)
        if gguf_type == "f16":  # the tokenizer metadata is the same in every type (~5 s a read)
            gguf_tokenizer = AutoTokenizer.from_pretrained(out, gguf_file=name)
            assert [gguf_tokenizer(t)["input_ids"] for t in texts] == [tokenizer(t)["input_ids"] for t in texts]
            assert (gguf_tokenizer.eos_token_id, gguf_tokenizer.pad_token_id, gguf_tokenizer.chat_template) == (
                tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.chat_template)
        got = _logits(loaded, ids)
        exact = _max_abs(got, want)
        expected = want if gguf_type == "f32" else _logits(_rounded_like(model, gguf_type), ids)
        diff = _max_abs(got, expected)
        print(f"GGUF {gguf_type}: max abs logit diff vs merged {exact:.3g}, vs merged rounded as stored {diff:.3g}")
        assert diff <= bound
        assert exact <= {"f32": 1e-4, "f16": 5e-3, "q8_0": 5e-2}[gguf_type]


def test_bad_input_is_refused_before_anything_is_written(tiny_pair, tmp_path, default_model_path):
    base, adapter = tiny_pair
    out = tmp_path / "out"
    with pytest.raises(FinGPTError, match="--dtype 'fp8'"):
        export_model(str(base), str(adapter), out, dtype="fp8")
    with pytest.raises(FinGPTError, match="--gguf-type 'q4_0'"):
        export_model(str(base), str(adapter), out, format="gguf", gguf_type="q4_0")
    with pytest.raises(FinGPTError, match="no adapter_config.json"):
        export_model(str(base), str(tmp_path), out)
    with pytest.raises(FinGPTError, match="not a directory"):
        export_model(str(base), str(tmp_path / "missing"), out)
    other = save_tiny_llama(tmp_path / "other", default_model_path, hidden_size=64)
    with pytest.raises(FinGPTError, match="hidden_size: 32 vs 64"):
        export_model(str(other), str(adapter), out)
    with pytest.raises(FinGPTError, match="would replace the model or adapter"):
        export_model(str(base), str(adapter), adapter, overwrite=True)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_gguf_refuses_other_architectures(tmp_path, default_model_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    base = tmp_path / "qwen2"
    Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj"])
                   ).save_pretrained(tmp_path / "adapter")
    with pytest.raises(FinGPTError, match="Qwen2ForCausalLM; only Llama-architecture"):
        export_model(str(base), str(tmp_path / "adapter"), tmp_path / "out", format="gguf")
    assert not (tmp_path / "out").exists()


def test_non_empty_output_needs_overwrite(tiny_pair, tmp_path):
    base, adapter = tiny_pair
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(FinGPTError, match="not empty; pass --overwrite"):
        export_model(str(base), str(adapter), out)
    assert (out / "keep.txt").read_text() == "old"
    export_model(str(base), str(adapter), out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no build or old directory left


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "export", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def test_cli_end_to_end(tiny_pair, tmp_path):
    base, adapter = tiny_pair
    ok = _cli("--model", str(base), "--adapter", str(adapter), "--output", str(tmp_path / "g"), "--format", "gguf",
              "--gguf-type", "f16", "--dtype", "fp32")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "g" / "model-f16.gguf").is_file() and "wrote" in ok.stdout
    for bad, message in ((["--adapter", str(tmp_path / "nope")], "not a directory"),
                         (["--adapter", str(adapter), "--dtype", "fp8"], "--dtype 'fp8'")):
        run = _cli("--model", str(base), "--output", str(tmp_path / "x"), *bad)
        assert run.returncode == 2 and "fingpt-hf: error:" in run.stderr and message in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()
