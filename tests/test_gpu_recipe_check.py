"""benchmarks/gpu_recipe_check.py: its CPU dry run passes its own checks, so the GPU script does not rot
between the sessions that have a GPU to run it on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_recipe_check.py"


def test_configuration_names_parse():
    Setting = load_benchmark_script("gpu_recipe_check").Setting
    assert Setting.parse("padding-free+liger@4x8") == Setting("padding-free+liger@4x8", True, True, 4, 8)
    assert Setting.parse("padded") == Setting("padded", False, False, None, None)
    assert Setting.parse("trl") == Setting("trl", False, False, None, None, plain_trl=True)
    with pytest.raises(ValueError, match="unknown configuration 'packed'"):
        Setting.parse("packed")


def test_cpu_dry_run_passes_its_checks(tmp_path, default_model_path, data_dir):
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tokenizer", str(default_model_path), "--data-dir", str(data_dir),
         "--device", "cpu", "--tiny", "--layers", "2", "--steps", "2", "--warmup", "1", "--rows", "32",
         "--configs", "trl@2x2,padded@2x2,padding-free@2x2", "--launch-steps", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    (check,) = report["correctness"]  # no Liger on CPU
    assert check["loss_rel"] < 1e-5 and check["grad_rel"] < 1e-4
    assert [r["name"] for r in report["throughput"]] == ["trl@2x2", "padded@2x2", "padding-free@2x2"]
    assert [r["trainer"] for r in report["throughput"]] == ["trl.SFTTrainer"] + ["recipes/sft.py"] * 2
    assert all(r["adapter"] and r["tokens_per_s"] > 0 and r["tflops"] > 0 for r in report["throughput"])
    # Answer positions were counted batch by batch: a few per row (label word + EOS), far fewer than tokens.
    assert all(0 < r["answer_positions_per_s"] < r["tokens_per_s"] / 4 for r in report["throughput"])
    assert report["model"] == {"shape": "tiny", "layers": 2, "vocab_size": report["model"]["vocab_size"],
                               "full_depth": False, "each_configuration_in_its_own_process": True}
    assert report["launch"]["ok"] and report["launch"]["checkpoints"] == ["checkpoint-2"]
    assert (tmp_path / "launch.log").is_file()


def _script():
    return load_benchmark_script("gpu_recipe_check")


def test_full_depth_shapes_and_the_vocabulary_check():
    """The default model is the real shape (all layers, real vocabulary); a tokenizer whose ids do not
    fit it is refused with the way out, rather than silently making a proxy."""
    script = _script()
    tokenizer = list(range(49152))  # len() is all model_config asks of a tokenizer
    with pytest.raises(SystemExit, match="49,152 tokens, more than the vocabulary of 32,000"):
        script.model_config(script.SHAPES["llama2-13b"], tokenizer, None, None)
    config = script.model_config(script.SHAPES["baichuan2-7b"], tokenizer, None, None)
    assert (config["num_hidden_layers"], config["vocab_size"], config["hidden_size"]) == (32, 125696, 4096)
    proxy = script.model_config(script.SHAPES["llama2-13b"], tokenizer, 4, 49152)
    assert (proxy["num_hidden_layers"], proxy["vocab_size"]) == (4, 49152)


def test_liger_loss_change_pairs_configurations():
    script = _script()
    results = [{"name": "padded", "liger": False, "first_loss": 11.5},
               {"name": "padded+liger", "liger": True, "first_loss": 11.5},
               {"name": "padding-free@4x8", "liger": False, "first_loss": 11.25},
               {"name": "padding-free+liger@4x8", "liger": True, "first_loss": 11.0},
               {"name": "trl+liger", "liger": True, "first_loss": 9.0}]  # no plain twin: not paired
    assert script.liger_loss_changes(results) == {"padded+liger": 0.0, "padding-free+liger@4x8": -0.25}
