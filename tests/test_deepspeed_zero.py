"""DeepSpeed ZeRO-2 and ZeRO-3 for real: two CPU processes under torchrun train a tiny random
Llama through recipes/sft.py; the loss falls and the saved adapter reproduces the trained model.

DeepSpeed compiles a small shared-memory op the first time it runs on CPU (slow once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROBE_IDS = [[1, 259, 1040, 5124, 42, 9, 300, 77], [1, 17, 18, 19, 20, 21, 22, 23]]

# Runs recipes/sft.py's main() with one callback that, at the end of training, computes the
# logits of the model *inside the trainer* (ZeRO-3: every rank must join the forward pass).
DRIVER = """
import runpy, sys, torch
from transformers import TrainerCallback

PROBE = torch.tensor({probe})

class SaveLogits(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=PROBE, attention_mask=torch.ones_like(PROBE)).logits.float()
        model.train(was_training)
        if args.process_index == 0:
            torch.save(logits, {out!r})

main = runpy.run_path({script!r})["main"]
sys.exit(main(sys.argv[1:], callbacks=[SaveLogits()]))
"""


def build_tiny_llama(path: Path, tokenizer_source: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("ds") / "llama", default_model_path)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_two_cpu_processes(stage, tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("torchrun is not installed next to the test interpreter")
    recipe = {
        "model_name_or_path": str(tiny_model), "use_peft": True, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.0, "lora_target_modules": "all-linear",
        "dataset_mixture": {"datasets": [{"name": "fpb", "weight": 1}], "max_samples": 64},
        "max_length": 96, "per_device_train_batch_size": 4, "max_steps": 8,
        "learning_rate": 5.0e-3, "lr_scheduler_type": "constant", "bf16": False, "use_cpu": True,
        "activation_checkpointing": False, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
        "seed": 3, "disable_tqdm": True,
    }
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    logits_file = tmp_path / "trainer_logits.pt"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(probe=PROBE_IDS, out=str(logits_file), script=str(REPO / "recipes" / "sft.py")))
    out = tmp_path / "out"
    env = dict(os.environ, DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(29500 + (os.getpid() % 1000) + len(stage)),
         str(driver), "--config", str(config), "--output_dir", str(out),
         "--deepspeed", str(REPO / "ds_configs" / f"{stage}.json")],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    info = json.loads((out / "fingpt_run.json").read_text())
    assert info["status"] == "completed" and info["world_size"] == 2
    losses = [e["loss"] for e in info["log_history"] if "loss" in e]
    assert len(losses) == 8 and losses[-1] < losses[0], losses

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tuned = PeftModel.from_pretrained(base, out).eval()
    probe = torch.tensor(PROBE_IDS)
    with torch.no_grad():
        reloaded = tuned(input_ids=probe, attention_mask=torch.ones_like(probe)).logits.float()
    in_trainer = torch.load(logits_file)
    torch.testing.assert_close(reloaded, in_trainer, rtol=1e-4, atol=1e-4)
    with tuned.disable_adapter(), torch.no_grad():
        before = tuned(input_ids=probe, attention_mask=torch.ones_like(probe)).logits.float()
    assert not torch.allclose(before, reloaded, atol=1e-3), "training did not change the model"
