"""DeepSpeed ZeRO-2 and ZeRO-3 for real: two CPU processes under torchrun train a tiny random
Llama through recipes/sft.py; the loss falls, the saved adapter reproduces the trained model, and
the fast path's answer-only loss computed inside the ZeRO engine equals the single-process loss,
and each rank ends without the interpreter's teardown (fingpt_hf/training/teardown.py).

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
from tiny_models import save_tiny_llama, tiny_sft_recipe

REPO = Path(__file__).resolve().parent.parent
PROBE_IDS = [[1, 259, 1040, 5124, 42, 9, 300, 77], [1, 17, 18, 19, 20, 21, 22, 23]]

# Runs recipes/sft.py's main() with one callback that, at the end of training, computes the
# logits of the model *inside the trainer* (ZeRO-3: every rank must join the forward pass).
DRIVER = """
import atexit, os, runpy, sys, torch
from transformers import TrainerCallback

# Markers for how the rank ends: its atexit handlers must run, the interpreter's teardown (where
# module globals are cleared and DeepSpeed's leftover process groups would be destroyed) must not.
atexit.register(lambda: print("atexit handlers ran", flush=True))

class TeardownMarker:
    def __del__(self, write=os.write):  # bound now: teardown sets module globals to None first
        write(1, b"interpreter teardown ran\\n")

MARKER = TeardownMarker()

PROBE = torch.tensor({probe})

LABELS = PROBE.clone()
LABELS[:, :5] = -100  # the answer-only loss: the last three tokens of each row

class SaveLogits(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            mask = torch.ones_like(PROBE)
            logits = model(input_ids=PROBE, attention_mask=mask).logits.float()
            # The fast path's answer-only head, inside the ZeRO engine (ZeRO-3 gathers the head's
            # partitioned weight only if the head is called as a module).
            fast = model(input_ids=PROBE, attention_mask=mask, labels=LABELS, fused_lm_head=True).loss.float()
        model.train(was_training)
        if args.process_index == 0:
            torch.save({{"logits": logits, "fast_loss": fast}}, {out!r})

main = runpy.run_path({script!r})["main"]
sys.exit(main(sys.argv[1:], callbacks=[SaveLogits()]))
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("ds") / "llama", default_model_path, tie_word_embeddings=False)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_two_cpu_processes(stage, tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("torchrun is not installed next to the test interpreter")
    recipe = tiny_sft_recipe(tiny_model, max_steps=8, seed=3,
                             dataset_mixture={"datasets": [{"name": "fpb", "weight": 1}], "max_samples": 64})
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
    # Both ranks ended through fingpt_hf.training.teardown: atexit handlers, no interpreter teardown.
    assert proc.stdout.count("adapter saved") == 2 and proc.stdout.count("atexit handlers ran") == 2, proc.stdout[-2000:]
    assert "interpreter teardown ran" not in proc.stdout, proc.stdout[-2000:]

    info = json.loads((out / "fingpt_run.json").read_text())
    assert info["status"] == "completed" and info["world_size"] == 2
    losses = [e["loss"] for e in info["log_history"] if "loss" in e]
    assert len(losses) == 8 and losses[-1] < losses[0], losses

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tuned = PeftModel.from_pretrained(base, out).eval()
    probe = torch.tensor(PROBE_IDS)
    with torch.no_grad():
        reloaded = tuned(input_ids=probe, attention_mask=torch.ones_like(probe)).logits.float()
    saved = torch.load(logits_file)
    in_trainer = saved["logits"]
    torch.testing.assert_close(reloaded, in_trainer, rtol=1e-4, atol=1e-4)
    # The answer-only loss computed inside the ZeRO engine equals the plain loss of the same
    # model in one process (cross-entropy over the answer tokens of the reloaded logits).
    labels = probe.clone()
    labels[:, :5] = -100
    single = torch.nn.functional.cross_entropy(reloaded[:, :-1].reshape(-1, reloaded.shape[-1]),
                                               labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(saved["fast_loss"], single, rtol=1e-4, atol=1e-4)
    with tuned.disable_adapter(), torch.no_grad():
        before = tuned(input_ids=probe, attention_mask=torch.ones_like(probe)).logits.float()
    assert not torch.allclose(before, reloaded, atol=1e-3), "training did not change the model"
