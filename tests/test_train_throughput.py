"""benchmarks/train_throughput.py on a CPU without native bf16: every configuration, TRL's included,
computes in float32 and the peak it is compared with is a float32 matmul's (an emulated bf16 baseline
would make any trainer look fast)."""

from __future__ import annotations

import json

from benchmark_scripts import BENCHMARKS, load_benchmark_script


def test_without_native_bf16_every_configuration_and_the_peak_are_float32(
        monkeypatch, tmp_path, data_dir, default_model_path):
    import fingpt_hf.hardware
    import fingpt_hf.training.fast_trainer

    for module in (fingpt_hf.hardware, fingpt_hf.training.fast_trainer):
        monkeypatch.setattr(module, "cpu_supports_bf16", lambda: False)
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # run_config imports step_timer when it runs
    out = tmp_path / "tp.json"
    assert load_benchmark_script("train_throughput").main(["--model", str(default_model_path), "--configs", "trl-default,fast",
                           "--steps", "1", "--warmup", "1", "--batch-size", "2", "--lora-top-layers", "2",
                           "--data-dir", str(data_dir), "--peak-size", "256", "--peak-repeats", "2",
                           "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["compute_dtype"] == "float32" and "bf16_peak_gflops" not in data
    assert data["fp32_peak_gflops"]["before"] > 0
    assert [(r["name"], r["bf16"]) for r in data["results"]] == [("trl-default", False), ("fast", False)]
    assert data["speedups_samples_per_s"]["fast vs trl-default"] > 0
