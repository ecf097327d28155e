"""The seed's three models end to end: a tiny random checkpoint in each ORIGINAL layout, converted
by `fingpt-hf model convert`, LoRA-trained with the seed recipe's own LoRA settings, evaluated in
score and generate modes, and its adapter reloaded with ``PeftModel.from_pretrained`` on the
converted base, giving the logits the trained model had inside the trainer.

The recipes' GPU settings (fp16 weights and mixed precision, 8 epochs, the full mixture) are
replaced by a CPU-sized run; the LoRA rank, alpha, dropout, targets, prompt style, max_length and
activation checkpointing are the recipe's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer, TrainerCallback

import reference_baichuan2
import reference_chatglm2
import reference_qwen
from fingpt_hf.conversion.convert import convert_checkpoint
from fingpt_hf.evaluation.config import EvalConfig
from fingpt_hf.evaluation.runner import run_evaluation
from fingpt_hf.training.recipe import parse_sft_args
from tiny_models import sft_script

REPO = Path(__file__).resolve().parent.parent

# family -> (reference module, seed recipe, family name the registry gives the converted checkpoint)
SEEDS = {
    "baichuan2": (reference_baichuan2, "baichuan2-7b/sft_lora.yaml", "baichuan2-native"),
    "chatglm2": (reference_chatglm2, "chatglm2-6b/sft_lora.yaml", "chatglm2-native"),
    "qwen": (reference_qwen, "qwen-14b/sft_lora.yaml", "qwen-native"),
}
CPU_RUN = {"dtype": "float32", "fp16": False, "bf16": False, "use_cpu": True, "max_steps": 2, "per_device_train_batch_size": 4,
           "gradient_accumulation_steps": 1, "save_strategy": "no", "report_to": "none", "logging_steps": 1,
           "disable_tqdm": True, "learning_rate": 5.0e-3, "liger_when_available": False,
           "dataset_mixture": {"datasets": [{"name": "fpb", "weight": 1}, {"name": "tfns", "weight": 1}],
                               "max_samples": 16, "seed": 42}}
PROMPTS = ["Instruction: What is the sentiment of this news? Please choose an answer from "
           "{negative/neutral/positive}.\nInput: Profit rose 12% in the third quarter.\nAnswer: "]


@pytest.fixture(scope="module", params=sorted(SEEDS))
def converted(request, tmp_path_factory) -> tuple[str, Path]:
    family = request.param
    reference = SEEDS[family][0]
    tmp = tmp_path_factory.mktemp(family)
    # Qwen-14B's real seq_length (2,048), so the recipe's max_length 512 is within the exact range.
    extra = {"seq_length": 2048} if family == "qwen" else {}
    source = reference.write_tiny_original(tmp / "original", tmp / "code", seed=3, **extra)
    return family, convert_checkpoint(str(source), tmp / "native")


def seed_recipe(family: str, model: Path, **overrides) -> dict:
    recipe = yaml.safe_load((REPO / "recipes" / SEEDS[family][1]).read_text())
    recipe.update(CPU_RUN, model_name_or_path=str(model), **overrides)
    return recipe


class ProbeLogits(TrainerCallback):
    """The trained model's logits on PROMPTS, computed inside the trainer at the end of training."""

    def __init__(self, tokenizer_dir: Path) -> None:
        self.inputs = AutoTokenizer.from_pretrained(tokenizer_dir)(PROMPTS, return_tensors="pt")
        self.logits = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.logits = model(**self.inputs).logits.float()
        model.train(was_training)


def test_seed_recipe_trains_evaluates_and_reloads(converted, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    family, native = converted
    recipe = seed_recipe(family, native)
    assert recipe["trust_remote_code"] is False
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "adapter")])
    probe = ProbeLogits(native)
    out = sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit,
                  callbacks=[probe])

    info = json.loads((out / "fingpt_run.json").read_text())
    assert info["status"] == "completed" and info["global_step"] == 2
    assert info["model"]["family"] == SEEDS[family][2]
    assert info["model"]["converted_from"]["family"] == family
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == set(recipe["lora_target_modules"])
    assert adapter_config["r"] == recipe["lora_r"] and adapter_config["lora_alpha"] == recipe["lora_alpha"]

    base = AutoModelForCausalLM.from_pretrained(native, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        reloaded = tuned(**probe.inputs).logits.float()
        with tuned.disable_adapter():
            untuned = tuned(**probe.inputs).logits.float()
    torch.testing.assert_close(reloaded, probe.logits, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(untuned, reloaded, atol=1e-4), "training did not change the model"

    for mode in ("score", "generate"):
        result = run_evaluation(EvalConfig(model=str(native), adapter=str(out), datasets="fpb", limit=6, mode=mode,
                                           batch_size=3, max_new_tokens=3, dtype="fp32",
                                           output_dir=str(tmp_path / f"eval-{mode}")), echo=lambda _: None)
        fpb = result["results"]["fpb"]
        assert (fpb["num_rows"], fpb["mode"]) == (6, mode)
        assert fpb["adapter"]["hash"].startswith("sha256:")
        records = [json.loads(line) for line in (tmp_path / f"eval-{mode}" / "fpb" / "predictions.jsonl").open()]
        assert len(records) == 6
        if mode == "score":
            assert fpb["metrics"]["invalid_rate"] == 0.0


def test_qwen_recipe_refuses_rows_past_seq_length(tmp_path_factory):
    """Past seq_length Qwen v1 changes its attention (dynamic NTK, logn): refused, not silently different."""
    from fingpt_hf.errors import FinGPTError

    tmp = tmp_path_factory.mktemp("qwen-long")
    source = reference_qwen.write_tiny_original(tmp / "original", tmp / "code", seed=3)
    native = convert_checkpoint(str(source), tmp / "native")
    limit = json.loads((native / "config.json").read_text())["max_position_embeddings"]
    config = tmp / "recipe.yaml"
    config.write_text(yaml.safe_dump(seed_recipe("qwen", native, max_length=limit + 1)))
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp / "adapter")])
    with pytest.raises(FinGPTError, match=f"max_length {limit + 1} is longer .* {limit} tokens"):
        sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit)
    assert not (tmp / "adapter").exists()


@pytest.mark.slow
def test_converted_chatglm2_under_zero2_two_processes(tmp_path):
    """The converted ChatGLM2 (GLM with a [gMASK] sop tokenizer) trains under DeepSpeed ZeRO-2, 2 CPU ranks."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("torchrun is not installed next to the test interpreter")
    source = reference_chatglm2.write_tiny_original(tmp_path / "original", tmp_path / "code", seed=5)
    native = convert_checkpoint(str(source), tmp_path / "native")
    recipe = seed_recipe("chatglm2", native, max_steps=4)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "adapter"
    env = dict(os.environ, DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
         "--master_port", str(28500 + os.getpid() % 1000), str(REPO / "recipes" / "sft.py"), "--config", str(config),
         "--output_dir", str(out), "--deepspeed", str(REPO / "ds_configs" / "zero2.json")],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    info = json.loads((out / "fingpt_run.json").read_text())
    assert info["status"] == "completed" and info["world_size"] == 2
    assert info["model"]["family"] == "chatglm2-native"
    assert len([e for e in info["log_history"] if "loss" in e]) == 4
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(native), out)
    assert type(tuned.get_base_model()).__name__ == "GlmForCausalLM"
