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
                           "--profile-steps", "1", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["compute_dtype"] == "float32" and "bf16_peak_gflops" not in data
    assert data["fp32_peak_gflops"]["before"] > 0
    assert [(r["name"], r["bf16"]) for r in data["results"]] == [("trl-default", False), ("fast", False)]
    assert data["speedups_samples_per_s"]["fast vs trl-default"] > 0
    for res in data["results"]:  # one more step after the timed one, profiled; neither configuration compiles
        profile = res["profile"]
        assert profile["steps"] == 1 and profile["self_s_per_step"]["compiled_kernels"] == 0
        assert profile["self_s_per_step"]["matmul"] > 0 and profile["useful_gflops_all_per_matmul_s"] > 0
        assert profile["matmul_gflops_ran"] > 0 and profile["matmul_shapes"][0]["gflops"] > 0
        assert sum(profile["self_s_per_step"].values()) <= profile["wall_s_per_step"]
        assert "aten::mm" in [op["name"] for op in profile["top_ops"]]
        # the batch whose FLOPs the profile counts is the one it saw run: every product by the MLP's gate and up
        # weights (and the input gradient through down's) has a row per token of it, padding included
        rows = {m["shapes"][0][0] for m in profile["matmul_shapes"] if m["shapes"][1] == [576, 1536]}
        assert rows == {profile["padded_tokens_per_step"]}


def test_the_step_profiler_records_only_its_steps_and_splits_matmuls_compiled_kernels_and_the_rest(monkeypatch):
    """The profile of ``--profile-steps`` covers the steps after the timed ones and nothing else, and sorts the self
    time into matrix products, inductor's fused C++ kernels (named so only with inductor's ``cpp.enable_kernel_profile``,
    which ``run_config`` sets; here torch's own compiler names them) and the rest."""
    from types import SimpleNamespace

    import torch
    import torch._inductor.config

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from step_timer import StepProfiler

    a, b = torch.randn(256, 128), torch.randn(128, 64)
    with torch._inductor.config.patch({"cpp.enable_kernel_profile": True}):
        fused = torch.compile(lambda x: torch.sigmoid(x) * x + 1)
        fused(a)  # compiles here, outside the profile
    profiler, state = StepProfiler(first=1, count=2), SimpleNamespace(global_step=0)
    for step, work in enumerate([1, 2, 2, 5], start=1):  # steps 2 and 3 are profiled, each runs two products
        for _ in range(work):
            torch.mm(a, b)
        fused(a)
        torch.flip(a, [0])
        state.global_step = step
        profiler.on_step_end(None, state, None)
    profile = profiler.breakdown(top=100)
    calls = {op["name"]: op["calls_per_step"] for op in profile["top_ops"]}
    assert profile["steps"] == 2 and calls["aten::mm"] == 2 and calls["aten::flip"] == 1
    assert [calls[name] for name in calls if "cpp_fused" in name] == [1]
    assert all(seconds > 0 for seconds in profile["self_s_per_step"].values())
    assert sum(profile["self_s_per_step"].values()) <= profile["wall_s_per_step"]
    [mm] = profile["matmul_shapes"]  # its rate is its FLOPs (2 x 256 x 128 x 64 a call) over its time
    assert mm["shapes"] == [[256, 128], [128, 64]] and mm["calls_per_step"] == 2
    assert mm["gflops"] * 1e9 * mm["self_s_per_step"] / mm["calls_per_step"] == pytest.approx(2 * 256 * 128 * 64)
    assert profile["matmul_gflops_ran"] == pytest.approx(mm["gflops"])


@pytest.mark.parametrize("name, shapes, flops", [
    ("aten::mm", [[5, 3], [3, 7]], 2 * 5 * 3 * 7),
    ("aten::mm", [[5, 3], [3, 7], [5, 7]], 2 * 5 * 3 * 7),  # inductor's mm(a, b, out=buffer)
    ("aten::bmm", [[4, 5, 3], [4, 3, 7]], 2 * 4 * 5 * 3 * 7),
    ("aten::addmm", [[7], [5, 3], [3, 7]], 2 * 5 * 3 * 7),
    ("aten::baddbmm", [[4, 5, 7], [4, 5, 3], [4, 3, 7]], 2 * 4 * 5 * 3 * 7),
    ("aten::mm", [[5, 3], [4, 7]], None),  # not a product the profile can have seen: no rate rather than a wrong one
])
def test_a_matmuls_flops_come_from_its_factors_shapes(monkeypatch, name, shapes, flops):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from step_timer import matmul_flops

    assert matmul_flops(name, shapes) == flops


def test_isolate_runs_each_configuration_in_a_process_of_its_own(monkeypatch, tmp_path, data_dir, default_model_path):
    """``--isolate``: every configuration's figures come from a fresh process (a configuration run after another in
    one process can find the allocator warmed up by it: README, Speed), and the peak is timed in the parent."""
    import os

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    out = tmp_path / "tp.json"
    assert load_benchmark_script("train_throughput").main([
        "--model", str(default_model_path), "--configs", "trl-tuned,fast", "--steps", "1", "--warmup", "1",
        "--batch-size", "2", "--lora-top-layers", "2", "--data-dir", str(data_dir), "--peak-size", "256",
        "--peak-repeats", "2", "--isolate", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    pids = [r["pid"] for r in data["results"]]
    assert [r["name"] for r in data["results"]] == ["trl-tuned", "fast"]
    assert data["isolated"] and data["pid"] == os.getpid() and len({*pids, os.getpid()}) == 3
    assert all(r["s_per_step"] > 0 and r["gflops_all"] > r["gflops"] > 0 for r in data["results"])
    assert data["speedups_samples_per_s"]["fast vs trl-tuned"] > 0


def test_an_isolated_configurations_process_gets_the_same_options_with_its_own_config_and_output():
    """``--isolate`` starts this script again per configuration with the parent's argv plus its own settings: parsed as
    the child parses them, every other option is the parent's, the configuration and output are its own, and the
    child does not isolate again (it would start itself for ever)."""
    script = load_benchmark_script("train_throughput")
    parent = ["--steps", "6", "--configs=trl-tuned,fast-shared", "--isolate", "--batch-size", "32", "--output=x.json",
              "--output", "runs/all.json", "--lora-target-modules", "gate_proj,up_proj"]
    child = script.build_parser().parse_args(script.child_argv(parent, "fast-shared", "/tmp/one.json"))
    expected = script.build_parser().parse_args(["--steps", "6", "--batch-size", "32", "--lora-target-modules",
                                                 "gate_proj,up_proj", "--configs", "fast-shared",
                                                 "--output", "/tmp/one.json"])
    assert vars(child) == vars(expected) and child.isolate is False
    assert script.build_parser().parse_args(parent).isolate is True


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
    assert script.step_work(model, lora, torch.tensor([[1, 5, 9, 3]])).backward_linear_params == expected


@pytest.mark.parametrize("targets, top", [
    (ATTENTION + MLP, 0), (MLP, 0), (ATTENTION + MLP, 1), (("v_proj",), 0), (("k_proj",), 0),
])
def test_step_work_is_what_torchs_flop_counter_sees_run(targets, top):
    """``step_work``'s per-token and per-pair FLOPs against torch's FlopCounterMode, which counts every matmul the
    dispatcher runs in one forward and backward pass: one row of n tokens under eager attention (which scores all
    n x n pairs) and a loss on every token (the head runs on all n) costs 2 (body + backward) n + LoRA n +
    attention n^2 + 4 vocab hidden n. The placements differ in which backward matmuls autograd runs (the lowest
    layer's dK and dQ without their adapters, the LoRA A's input gradient, the layers below the adapters)."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode

    from tiny_models import tiny_llama

    script = load_benchmark_script("train_throughput")
    model = tiny_llama(64)
    model.set_attn_implementation("eager")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), task_type="CAUSAL_LM",
                      layers_to_transform=[1] if top else None)
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    n = ids.shape[1]
    work = script.step_work(copy.deepcopy(model), copy.deepcopy(lora), ids)
    body, head = script.body_linear_params(model), model.get_output_embeddings().weight.numel()
    peft_model = get_peft_model(model, lora).train()
    with FlopCounterMode(display=False) as counter:
        peft_model(input_ids=ids, labels=ids).loss.backward()
    assert work.lora_flops_per_token > 0 and work.attention_flops_per_pair > 0
    assert counter.get_total_flops() == (2 * (body + work.backward_linear_params) * n + work.lora_flops_per_token * n
                                         + work.attention_flops_per_pair * n * n + 4 * head * n)


@pytest.mark.parametrize("prompts", [
    ([1, 2, 3, 4, 5], [1, 2, 3, 9, 9, 9]),  # two rows sharing three tokens
    ([1, 2, 3, 4], [1, 2, 3, 6, 7], [1, 2, 8, 8], [5, 6, 7]),  # groups of two and of one, a row alone
])
def test_attended_pairs_are_the_real_queries_entries_of_the_shared_prefix_masks(prompts):
    """Without a shared prefix a row of n tokens attends n(n+1)/2 pairs; with one, the pairs are the entries the
    shared-prefix attention's masks open to real queries (padding queries' one key each is not useful work)."""
    import torch

    from fingpt_hf.training.shared_prefix import _layout, plan_shared_prefixes

    script = load_benchmark_script("train_throughput")
    width = max(len(p) for p in prompts) + 1
    ids = torch.tensor([[*p, 0, *[0] * (width - len(p) - 1)] for p in prompts])
    mask = torch.tensor([[1] * (len(p) + 1) + [0] * (width - len(p) - 1) for p in prompts])
    labels = torch.full_like(ids, -100)
    for r, p in enumerate(prompts):
        labels[r, len(p)] = 0  # the answer: the token after the prompt
    lengths = mask.sum(-1).tolist()
    plan = plan_shared_prefixes(ids, mask, labels)
    assert plan is not None and plan.shared_tokens > 0
    pre_mask, suf_mask, _ = _layout(plan, torch.device("cpu"))[3]
    starts = [plan.prefix_lengths[g] for g in plan.group_of_row]
    opened = (sum(int(pre_mask[g, 0, :p].sum()) for g, p in enumerate(plan.prefix_lengths))
              + sum(int(suf_mask[r, 0, : n - s].sum()) for r, (n, s) in enumerate(zip(lengths, starts))))
    assert script.attended_pairs(lengths, plan) == opened
    assert script.attended_pairs(lengths) == sum(n * (n + 1) // 2 for n in lengths) > opened


def test_a_negative_profile_step_count_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark_script("train_throughput").main(["--profile-steps", "-1", "--model", "/nonexistent"])
    assert exit_info.value.code == 2 and "--profile-steps must be 0 or more, not -1" in capsys.readouterr().err
