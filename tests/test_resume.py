"""A run killed (SIGKILL) after its first checkpoint and started again with the same command
ends with the same adapter as a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fingpt_hf.training.run_info import read_run_info
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent


def command(config: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "recipes" / "sft.py"), "--config", str(config), "--output_dir", str(out)]


def adapter_weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(directory / "adapter_model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [{}, {"use_dora": True, "loraplus_lr_ratio": 16.0},
                                     {"use_dora": True, "loraplus_lr_ratio": 16.0, "ema_decay": 0.9}],
                         ids=["lora", "dora-loraplus", "dora-loraplus-ema"])
def test_killed_run_resumes_to_the_same_adapter(tmp_path, default_model_path, adapter):
    """Also with DoRA's magnitudes and LoRA+'s groups (the optimizer state resumes into the same groups), and with
    ema_decay (the average resumes from the checkpoint's optimizer state, not from the resumed weights)."""
    model = save_tiny_llama(tmp_path / "tiny", default_model_path, tie_word_embeddings=True)
    recipe = {
        "model_name_or_path": str(model), "use_peft": True, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.1,  # dropout draws random numbers: resuming must restore the RNG state too
        "lora_target_modules": "all-linear",
        "dataset_mixture": {"datasets": [{"name": "fpb", "weight": 1}, {"name": "tfns", "weight": 0.01}],
                            "max_samples": 32},
        "max_length": 96, "per_device_train_batch_size": 4, "num_train_epochs": 2,  # 16 steps, 2 epochs
        "learning_rate": 3.0e-3, "lr_scheduler_type": "linear", "bf16": False, "use_cpu": True,
        "activation_checkpointing": False, "logging_steps": 1, "save_strategy": "steps", "save_steps": 4,
        "save_total_limit": 1, "report_to": "none", "seed": 11, "disable_tqdm": True, **adapter,
    }
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    straight = tmp_path / "straight"
    done = subprocess.run(command(config, straight), capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(config, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not any(killed.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, "the run ended before its first checkpoint: " + proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    info = read_run_info(killed)
    assert info["status"] == "running" and not (killed / "adapter_model.safetensors").exists()
    checkpoint_step = max(int(p.name.split("-")[1]) for p in killed.glob("checkpoint-*"))
    assert checkpoint_step < 16, "the kill came too late to test resuming"

    again = subprocess.run(command(config, killed), capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    info = read_run_info(killed)
    assert info["status"] == "completed" and info["resumed_from"].startswith(str(killed / "checkpoint-"))
    assert info["global_step"] == 16 == read_run_info(straight)["global_step"]

    import torch

    expected, got = adapter_weights(straight), adapter_weights(killed)
    assert expected.keys() == got.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    # ... and the adapter did move away from its initialisation (B starts at zero).
    assert any(t.abs().sum() > 0 for n, t in got.items() if "lora_B" in n)
