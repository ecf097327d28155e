"""One path for tokenization and model loading (issue: training and evaluation must agree).

- Training, label scoring and generation give the same prompt ids, per family (the default
  SmolLM2 tokenizer, and the converted seed tokenizers: ChatGLM2's [gMASK] sop prefix, Qwen's
  no-BOS byte-level BPE, Baichuan2's sentencepiece).
- Evaluation takes the prompt style and max_length an adapter was trained with.
- fp16 evaluation loads and scores on CPU.
- shared_prefix refuses activation checkpointing and LoRA dropout.
- The answer-only head is called as a module (hooks on it run).
- The layering: evaluation imports nothing from training, training nothing from the Hub code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoConfig, AutoTokenizer

import reference_baichuan2
import reference_chatglm2
import reference_qwen
from fingpt_hf.conversion.convert import convert_checkpoint
from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.prompts import format_prompt
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.config import EvalConfig
from fingpt_hf.evaluation.generation import generate_answers
from fingpt_hf.evaluation.runner import run_evaluation
from fingpt_hf.evaluation.scoring import tokenize_labels
from fingpt_hf.families import get_family, prepare_tokenizer
from fingpt_hf.families.tokenization import tokenize_prompt_completion
from fingpt_hf.hub.card import render_model_card
from fingpt_hf.training.recipe import parse_sft_args
from tiny_models import save_tiny_llama, sft_script, tiny_sft_recipe

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", default_model_path, pad_token=True,
                           max_position_embeddings=1024)


@pytest.fixture(scope="module")
def converted_tokenizers(tmp_path_factory) -> dict[str, Path]:
    """Each seed family converted from a tiny original checkpoint (the tokenizers are the real ones)."""
    out = {}
    for family, reference in (("baichuan2", reference_baichuan2), ("chatglm2", reference_chatglm2),
                              ("qwen", reference_qwen)):
        tmp = tmp_path_factory.mktemp(family)
        source = reference.write_tiny_original(tmp / "original", tmp / "code", seed=0)
        out[family] = convert_checkpoint(str(source), tmp / "native")
    return out


class RecordingModel(torch.nn.Module):
    """Stands in for a causal LM in ``generate_answers``: records the ids it is asked to continue."""

    def __init__(self, eos_id: int) -> None:
        super().__init__()
        self.eos_id, self.calls = eos_id, []
        self.device = torch.device("cpu")

    def generate(self, input_ids, attention_mask, **kwargs):
        self.calls.append((input_ids.clone(), attention_mask.clone()))
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), self.eos_id)], dim=1)


def _three_paths(tokenizer, family, prompts: list[str], max_length: int | None = None):
    """Prompt ids as training, label scoring and generation build them (generation without padding)."""
    trained = [tokenize_prompt_completion({"prompt": p, "completion": "positive"}, tokenizer, family, max_length)
               for p in prompts]
    train_ids = [t["input_ids"][: t["completion_mask"].index(1)] for t in trained]
    score_ids = [item.context for item in tokenize_labels(tokenizer, prompts, ["negative", "neutral", "positive"],
                                                          family=family, max_length=max_length)]
    model = RecordingModel(tokenizer.eos_token_id)
    generate_answers(model, tokenizer, prompts, batch_size=len(prompts), max_new_tokens=1, family=family,
                     max_length=max_length)
    (input_ids, attention), = model.calls
    by_length = sorted(range(len(prompts)), key=lambda i: len(train_ids[i]), reverse=True)
    generate_ids = [None] * len(prompts)
    for row, i in enumerate(by_length):
        generate_ids[i] = input_ids[row][attention[row].bool()].tolist()
    return train_ids, score_ids, generate_ids


def _real_prompts(n: int = 12) -> list[str]:
    rows = list(load_benchmark("fpb", "test").select(range(n // 2))) + list(load_benchmark("tfns", "test").select(range(n // 2)))
    return [format_prompt(r) for r in rows]


@pytest.mark.parametrize("family", ["smollm2", "baichuan2", "chatglm2", "qwen"])
def test_train_score_generate_prompt_ids_are_equal(family, default_model_path, converted_tokenizers):
    path = default_model_path if family == "smollm2" else converted_tokenizers[family]
    tokenizer = AutoTokenizer.from_pretrained(path)
    spec = get_family(AutoConfig.from_pretrained(path))
    prepare_tokenizer(tokenizer, spec)
    side = tokenizer.padding_side
    prompts = _real_prompts()
    train_ids, score_ids, generate_ids = _three_paths(tokenizer, spec, prompts)
    assert train_ids == score_ids == generate_ids
    if family == "chatglm2":
        gmask, sop = tokenizer.convert_tokens_to_ids(["[gMASK]", "sop"])
        assert all(ids[:2] == [gmask, sop] for ids in train_ids)
    # Cut to a max_length, the three still agree (prompt text dropped from the left, prefix kept).
    cut = _three_paths(tokenizer, spec, prompts, max_length=24)
    assert cut[0] == cut[1] == cut[2] and max(len(ids) for ids in cut[0]) < 24
    assert tokenizer.padding_side == side  # generation pads itself; the caller's tokenizer is untouched


def _train(recipe: dict, tmp_path: Path, *extra: str) -> Path:
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "adapter"), *extra])
    return sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit)


def test_evaluation_uses_the_adapters_prompt_style_and_max_length(tiny_model, tmp_path):
    adapter = _train(tiny_sft_recipe(tiny_model, prompt_style="chat", max_length=80, max_steps=2), tmp_path)
    notes: list[str] = []
    result = run_evaluation(EvalConfig(model=str(tiny_model), adapter=str(adapter), datasets="fpb", limit=4,
                                       dtype="fp32", output_dir=str(tmp_path / "eval")), echo=notes.append)
    fpb = result["results"]["fpb"]
    assert fpb["prompt_style"] == "chat" and fpb["eval_config"]["max_length"] == 80
    assert any("prompt style chat (from" in n and "fingpt_run.json" in n for n in notes)
    # An explicit option wins, and is a different evaluation from the one already on disk.
    with pytest.raises(FinGPTError, match="prompt_style: 'chat' -> 'fingpt'"):
        run_evaluation(EvalConfig(model=str(tiny_model), adapter=str(adapter), datasets="fpb", limit=4,
                                  dtype="fp32", prompt_style="fingpt", output_dir=str(tmp_path / "eval")),
                       echo=lambda _: None)


def test_fp16_evaluation_loads_and_scores_on_cpu(tiny_model, tmp_path):
    result = run_evaluation(EvalConfig(model=str(tiny_model), datasets="tfns", limit=4, dtype="fp16",
                                       output_dir=str(tmp_path)), echo=lambda _: None)
    tfns = result["results"]["tfns"]
    assert tfns["num_rows"] == 4 and tfns["metrics"]["invalid_rate"] == 0.0
    assert json.loads((tmp_path / "results.json").read_text())["run"]["dtype"] == "float16"


def test_shared_prefix_refuses_what_would_give_wrong_gradients(tiny_model, tmp_path):
    with pytest.raises(FinGPTError, match="cannot run with activation_checkpointing"):
        _train(tiny_sft_recipe(tiny_model, shared_prefix=True, activation_checkpointing=True), tmp_path)
    assert not (tmp_path / "adapter").exists()


def test_answer_only_head_runs_through_the_module(tiny_model):
    """A forward hook on the LM head sees the answer rows: ZeRO-3's gathering hook and wrapped heads apply."""
    from transformers import AutoModelForCausalLM

    from fingpt_hf.training.answer_logits import add_answer_only_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    assert add_answer_only_lm_head(model)
    ids = torch.randint(3, 100, (2, 9))
    labels = torch.full_like(ids, -100)
    labels[:, -2:] = ids[:, -2:]
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
    assert torch.isfinite(out.loss) and seen == [torch.Size([4, model.config.hidden_size])]


def test_training_mixture_refuses_test_rows_and_reports_what_it_left_out(tiny_model, tmp_path):
    with pytest.raises(FinGPTError, match="fpb with split: test would train on the rows"):
        _train(tiny_sft_recipe(tiny_model, dataset_mixture={"datasets": [{"name": "fpb", "split": "test"}]}), tmp_path)
    # NWGI has no train split on the mirror: the run goes on without it and says so everywhere.
    mixture = {"datasets": [{"name": "fpb", "weight": 1}, {"name": "nwgi", "weight": 1}], "max_samples": 16}
    out = _train(tiny_sft_recipe(tiny_model, dataset_mixture=mixture, max_steps=1), tmp_path)
    info = json.loads((out / "fingpt_run.json").read_text())
    assert [s["name"] for s in info["mixture"]["skipped"]] == ["nwgi"]
    card = render_model_card(out).text
    assert "Left out of the mixture:** nwgi train" in card
    assert "| fpb | 3271 | 1.0 |" in card and "16 training rows in all" in card and "| seed |" not in card


def test_layering(repo_root):
    evaluation = subprocess.run(["grep", "-rn", "from fingpt_hf.training", "fingpt_hf/evaluation"],
                                capture_output=True, text=True, cwd=repo_root)
    training = subprocess.run(["grep", "-rn", "fingpt_hf.hub", "fingpt_hf/training"],
                              capture_output=True, text=True, cwd=repo_root)
    assert evaluation.stdout == "" and training.stdout == ""


def test_prompt_longer_than_the_context_is_refused_before_weights_load(default_model_path, tmp_path, monkeypatch):
    """Without --max-length a row past the model's context is an error naming data set and row,
    found with the tokenizer alone; with --max-length the prompts are cut and that is recorded."""
    short = save_tiny_llama(tmp_path / "short", default_model_path, pad_token=True, max_position_embeddings=40)

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the length check")

    monkeypatch.setattr("fingpt_hf.families.loading.load_causal_lm", no_weights)
    with pytest.raises(FinGPTError, match=r"data set fpb: row \d+ needs \d+ tokens with its answer, more than "
                                          r"the model's context of 40; pass --max-length 40"):
        run_evaluation(EvalConfig(model=str(short), datasets="fpb", limit=4, dtype="fp32",
                                  output_dir=str(tmp_path / "eval")), echo=lambda _: None)
    monkeypatch.undo()
    result = run_evaluation(EvalConfig(model=str(short), datasets="fpb", limit=4, dtype="fp32", max_length=40,
                                       output_dir=str(tmp_path / "eval")), echo=lambda _: None)
    assert result["results"]["fpb"]["eval_config"]["max_length"] == 40
