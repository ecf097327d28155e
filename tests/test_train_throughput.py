"""benchmarks/train_throughput.py on a CPU without native bf16: every configuration, TRL's included,
computes in float32 and the peak it is compared with is a float32 matmul's (an emulated bf16 baseline
would make any trainer look fast)."""

from __future__ import annotations

import json

import pytest

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


ATTENTION, MLP = ("q_proj", "k_proj", "v_proj", "o_proj"), ("gate_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("targets, top, lowest, idle", [
    (ATTENTION + MLP, 0, 0, ("q_proj", "k_proj", "v_proj")),  # their input is layer 0's: the frozen embeddings'
    (MLP, 0, 0, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj")),  # only down's input follows an adapter
    (ATTENTION + MLP, 1, 1, ("q_proj", "k_proj", "v_proj")),  # and all of layer 0, below the adapters
    (("v_proj",), 0, 0, ("q_proj", "k_proj", "v_proj")),
])
def test_backward_matmuls_are_counted_only_above_the_lowest_adapted_module(targets, top, lowest, idle):
    """The share of peak counts a frozen linear layer's backward matmul only where it runs. Which ones run follows
    from the Llama layer's data flow (q/k/v read the layer's input, o the attention's output, gate/up the attention
    block's output, down the MLP's activations): here from that reasoning, in the script by autograd's hooks."""
    import torch
    from peft import LoraConfig

    from tiny_models import tiny_llama

    script = load_benchmark_script("train_throughput")
    model = tiny_llama(64)
    layers = model.model.layers
    expected = sum(getattr(getattr(layer, "self_attn" if name in ATTENTION else "mlp"), name).weight.numel()
                   for i, layer in enumerate(layers) if i >= lowest for name in ATTENTION + MLP
                   if not (i == lowest and name in idle))
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), task_type="CAUSAL_LM",
                      layers_to_transform=[1] if top else None)
    assert script.body_linear_params(model) > expected
    assert script.backward_linear_params(model, lora, torch.tensor([[1, 5, 9, 3]])) == expected
