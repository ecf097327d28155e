"""benchmarks/gpu_recipe_check.py: its CPU dry run passes its own checks, so the GPU script does not rot
between the sessions that have a GPU to run it on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_recipe_check.py"


def test_configuration_names_parse():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from gpu_recipe_check import Setting
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert Setting.parse("padding-free+liger@4x8") == Setting("padding-free+liger@4x8", True, True, 4, 8)
    assert Setting.parse("padded") == Setting("padded", False, False, None, None)
    with pytest.raises(ValueError, match="unknown configuration 'packed'"):
        Setting.parse("packed")


def test_cpu_dry_run_passes_its_checks(tmp_path, default_model_path, data_dir):
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tokenizer", str(default_model_path), "--data-dir", str(data_dir),
         "--device", "cpu", "--tiny", "--layers", "2", "--steps", "2", "--warmup", "1", "--rows", "32",
         "--configs", "padded@2x2,padding-free@2x2", "--launch-steps", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    (check,) = report["correctness"]  # no Liger on CPU
    assert check["loss_rel"] < 1e-5 and check["grad_rel"] < 1e-4
    assert [r["name"] for r in report["throughput"]] == ["padded@2x2", "padding-free@2x2"]
    assert all(r["adapter"] and r["tokens_per_s"] > 0 for r in report["throughput"])
    assert report["launch"]["ok"] and report["launch"]["checkpoints"] == ["checkpoint-2"]
    assert (tmp_path / "launch.log").is_file()
