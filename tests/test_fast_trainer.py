"""FastSFTTrainer: the answer-only LM head gives the same loss/gradients as the model's own loss."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, LlamaModel

from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.prompts import format_prompt
from fingpt_hf.training.answer_logits import add_answer_only_lm_head, find_backbone_and_head
from fingpt_hf.training.fast_trainer import FastSFTTrainer, cpu_supports_bf16, resolve_fast_bf16
from tiny_models import tiny_llama, tiny_llama_config

BF16_LOSS_RTOL = 2e-2


@pytest.fixture(scope="module")
def tokenizer(default_model_path):
    return AutoTokenizer.from_pretrained(default_model_path)


@pytest.fixture(scope="module")
def fpb_rows(data_dir):
    return load_benchmark("fpb", "train", data_dir=data_dir).select(range(48))


def lora(model):
    # init_lora_weights=False: B is random too, so LoRA changes the output and gradients reach A and B.
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def make_batch(tokenizer, rows, padding_side: str) -> dict[str, torch.Tensor]:
    """Prompt + label word + EOS per row; loss only on the answer; padded on either side."""
    seqs = []
    for row in rows:
        prompt = tokenizer(format_prompt(row), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append((prompt + answer, [-100] * len(prompt) + answer))
    width = max(len(ids) for ids, _ in seqs)
    batch = {k: torch.full((len(seqs), width), v) for k, v in
             (("input_ids", tokenizer.pad_token_id), ("labels", -100), ("attention_mask", 0))}
    for i, (ids, labels) in enumerate(seqs):
        span = slice(0, len(ids)) if padding_side == "right" else slice(width - len(ids), width)
        batch["input_ids"][i, span] = torch.tensor(ids)
        batch["labels"][i, span] = torch.tensor(labels)
        batch["attention_mask"][i, span] = 1
    batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return batch


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def loss_and_grads(model, batch, **kwargs):
    model.zero_grad()
    loss = model(**batch, **kwargs).loss
    loss.backward()
    return loss.detach(), lora_grads(model)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_fast_head_matches_model_loss_fp32(tokenizer, fpb_rows, padding_side):
    model = lora(tiny_llama(len(tokenizer), tie_word_embeddings=True))
    batch = make_batch(tokenizer, fpb_rows.select(range(6)), padding_side)
    slow_loss, slow_grads = loss_and_grads(model, batch)
    assert add_answer_only_lm_head(model.get_base_model())
    fast_loss, fast_grads = loss_and_grads(model, batch, fused_lm_head=True)
    torch.testing.assert_close(fast_loss, slow_loss, atol=1e-5, rtol=1e-5)
    assert slow_grads.keys() == fast_grads.keys() and len(slow_grads) > 0
    for name in slow_grads:
        torch.testing.assert_close(fast_grads[name], slow_grads[name], atol=1e-6, rtol=1e-4, msg=name)
    # Without the flag the model's own forward (full logits) is unchanged: generation/eval are untouched.
    assert model(**batch).logits.shape[:2] == batch["input_ids"].shape


def test_num_items_in_batch_normalises_like_transformers(tokenizer, fpb_rows):
    model = lora(tiny_llama(len(tokenizer), tie_word_embeddings=True))
    batch = make_batch(tokenizer, fpb_rows.select(range(4)), "right")
    slow = model(**batch, num_items_in_batch=torch.tensor(37)).loss
    add_answer_only_lm_head(model.get_base_model())
    fast = model(**batch, fused_lm_head=True, num_items_in_batch=torch.tensor(37))
    torch.testing.assert_close(fast.loss, slow, atol=1e-5, rtol=1e-5)
    answer_tokens = int((batch["labels"][:, 1:] != -100).sum())
    assert int(fast.label_mask.sum()) == answer_tokens
    assert (fast.log_probs[~fast.label_mask] == 0).all() and (fast.log_probs[fast.label_mask] < 0).all()


def test_fast_head_bf16_autocast_is_close(tokenizer, fpb_rows):
    model = lora(tiny_llama(len(tokenizer), tie_word_embeddings=True))
    batch = make_batch(tokenizer, fpb_rows.select(range(8)), "right")
    slow_loss, slow_grads = loss_and_grads(model, batch)
    add_answer_only_lm_head(model.get_base_model())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.zero_grad()
        loss = model(**batch, fused_lm_head=True).loss
    assert loss.dtype == torch.float32  # the softmax/NLL stay in float32
    loss.backward()
    fast_grads = lora_grads(model)
    assert abs(loss.item() - slow_loss.item()) <= BF16_LOSS_RTOL * abs(slow_loss.item())
    flat = lambda g: torch.cat([v.flatten() for _, v in sorted(g.items())])  # noqa: E731
    cosine = torch.nn.functional.cosine_similarity(flat(fast_grads), flat(slow_grads), dim=0)
    assert cosine > 0.99


def test_untied_head_and_large_chunks(tokenizer, fpb_rows, monkeypatch):
    """Full-sequence loss (every token labelled) goes through the checkpointed chunks."""
    from fingpt_hf.training import answer_logits

    model = tiny_llama(len(tokenizer), tie_word_embeddings=False)
    batch = make_batch(tokenizer, fpb_rows.select(range(3)), "right")
    batch["labels"] = torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100)
    for p in model.parameters():
        p.requires_grad_(False)
    model.lm_head.weight.requires_grad_(True)  # the head's own gradient must survive chunking too
    slow_loss, slow_grads = loss_and_grads(model, batch)
    monkeypatch.setattr(answer_logits, "CHUNK_ROWS", 16)
    add_answer_only_lm_head(model)
    fast_loss, fast_grads = loss_and_grads(model, batch, fused_lm_head=True)
    torch.testing.assert_close(fast_loss, slow_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_grads["lm_head.weight"], slow_grads["lm_head.weight"], atol=1e-6, rtol=1e-4)


def test_models_without_a_head_split_are_left_alone():
    bare = LlamaModel(tiny_llama_config(64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=1))
    assert find_backbone_and_head(bare) is None
    forward = bare.forward
    assert add_answer_only_lm_head(bare) is False and bare.forward == forward


def test_resolve_fast_bf16():
    assert resolve_fast_bf16("auto", "cpu") == cpu_supports_bf16()
    assert resolve_fast_bf16(True, "cpu") is True and resolve_fast_bf16(False, "cpu") is False
    with pytest.raises(ValueError, match="fast_bf16"):
        resolve_fast_bf16("yes", "cpu")


def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_warned_about(monkeypatch):
    from fingpt_hf import hardware

    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    assert "set `bf16: false`" in hardware.emulated_bf16_warning("cpu", True)
    assert hardware.emulated_bf16_warning("cpu", False) is None and hardware.emulated_bf16_warning("cuda", True) is None
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: True)
    assert hardware.emulated_bf16_warning("cpu", True) is None


def _trainer(cls, tokenizer, rows, tmp_path, seed=0, label_smoothing_factor=0.0, peft_config=None, **kwargs):
    from datasets import Dataset
    from trl import SFTConfig

    data = Dataset.from_dict({"prompt": [format_prompt(r) for r in rows], "completion": [r["output"] for r in rows]})
    args = SFTConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3, logging_steps=1, learning_rate=1e-3,
        save_strategy="no", report_to="none", use_cpu=True, bf16=False, activation_checkpointing=False,
        disable_tqdm=True, seed=0, label_smoothing_factor=label_smoothing_factor,
    )
    peft_config = peft_config or LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    return cls(model=tiny_llama(len(tokenizer), seed=seed, tie_word_embeddings=True), args=args, train_dataset=data,
               processing_class=tokenizer, peft_config=peft_config, **kwargs)


def test_compute_loss_and_metrics_match_sft_trainer(tokenizer, fpb_rows, tmp_path):
    from trl import SFTTrainer

    fast = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "fast", fast_bf16=False)
    slow = _trainer(SFTTrainer, tokenizer, fpb_rows, tmp_path / "slow")
    assert fast.answer_only_head and not fast.fast_bf16
    batch = fast.data_collator([fast.train_dataset[i] for i in range(8)])
    losses = {}
    for name, trainer in (("fast", fast), ("slow", slow)):
        trainer.model.train()
        with trainer.compute_loss_context_manager():
            losses[name] = trainer.compute_loss(trainer.model, dict(batch)).item()
    assert math.isclose(losses["fast"], losses["slow"], rel_tol=1e-5)
    for key in ("entropy", "mean_token_accuracy"):
        assert fast._metrics["train"][key] == pytest.approx(slow._metrics["train"][key], rel=1e-4)


@pytest.mark.parametrize("chunk_rows", [1024, 4])
def test_label_smoothing_on_answer_tokens_is_transformers_label_smoother(tokenizer, fpb_rows, monkeypatch, chunk_rows):
    """The smoothed objective from the answer-only head equals transformers' LabelSmoother over the full logits."""
    from transformers.trainer_pt_utils import LabelSmoother

    from fingpt_hf.training import answer_logits

    monkeypatch.setattr(answer_logits, "CHUNK_ROWS", chunk_rows)  # 4: the checkpointed chunks smooth too
    model = lora(tiny_llama(len(tokenizer), tie_word_embeddings=True))
    batch = make_batch(tokenizer, fpb_rows.select(range(6)), "right")
    labels = batch.pop("labels")
    model.zero_grad()
    slow_loss = LabelSmoother(epsilon=0.1)(model(**batch), labels, shift_labels=True)
    slow_loss.backward()
    slow_grads = lora_grads(model)
    assert add_answer_only_lm_head(model.get_base_model(), label_smoothing=0.1)
    fast_loss, fast_grads = loss_and_grads(model, {**batch, "labels": labels}, fused_lm_head=True)
    torch.testing.assert_close(fast_loss, slow_loss.detach(), atol=1e-5, rtol=1e-5)
    unsmoothed = LabelSmoother(epsilon=0.0)(model(**batch), labels, shift_labels=True)
    assert abs(fast_loss - unsmoothed) > 1e-3  # the smoothing is not a no-op on this batch
    for name in slow_grads:
        torch.testing.assert_close(fast_grads[name], slow_grads[name], atol=1e-6, rtol=1e-4, msg=name)


def test_fast_trainer_smooths_labels_like_sft_trainer_in_one_forward(tokenizer, fpb_rows, tmp_path, recwarn):
    from trl import SFTTrainer

    fast = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "fast", fast_bf16=False, label_smoothing_factor=0.2)
    assert not [w for w in recwarn if "label_smoothing_factor" in str(w.message)]  # no "expect slower training"
    slow = _trainer(SFTTrainer, tokenizer, fpb_rows, tmp_path / "slow", label_smoothing_factor=0.2)
    plain = _trainer(SFTTrainer, tokenizer, fpb_rows, tmp_path / "plain")
    assert fast.label_smoother is None and slow.label_smoother is not None
    batch = fast.data_collator([fast.train_dataset[i] for i in range(8)])
    losses, calls = {}, []
    fast.model.get_base_model().model.register_forward_hook(lambda *a: calls.append(1))
    for name, trainer in (("fast", fast), ("slow", slow), ("plain", plain)):
        trainer.model.train()
        with trainer.compute_loss_context_manager():
            losses[name] = trainer.compute_loss(trainer.model, dict(batch)).item()
    assert math.isclose(losses["fast"], losses["slow"], rel_tol=1e-5)
    assert abs(losses["fast"] - losses["plain"]) > 1e-3  # same random weights (seed 0): the smoothing shows
    assert len(calls) == 1  # one backbone forward per step, where SFTTrainer runs two


def test_fast_trainer_trains_in_bf16_and_logs_trl_metrics(tokenizer, fpb_rows, tmp_path):
    trainer = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path, fast_bf16=True)
    assert trainer.fast_bf16
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for entry in logs:
        assert math.isfinite(entry["loss"]) and entry["loss"] > 0
        assert 0 <= entry["mean_token_accuracy"] <= 1 and entry["entropy"] > 0
    changed = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "LoRA weights should move"


def test_fast_trainer_warns_and_falls_back(tokenizer, fpb_rows, tmp_path, monkeypatch, caplog):
    from fingpt_hf.training import fast_trainer

    monkeypatch.setattr(fast_trainer, "add_answer_only_lm_head", lambda model, **kwargs: False)
    with caplog.at_level(logging.WARNING, logger=fast_trainer.__name__):
        trainer = _trainer(FastSFTTrainer, tokenizer, fpb_rows.select(range(8)), tmp_path)
    assert not trainer.answer_only_head
    assert "standard loss" in caplog.text


def test_bf16_frozen_weights_change_nothing_under_autocast(tokenizer, fpb_rows):
    from fingpt_hf.training.fast_trainer import cast_frozen_linear_weights

    model = lora(tiny_llama(len(tokenizer), tie_word_embeddings=True))
    add_answer_only_lm_head(model.get_base_model())
    batch = make_batch(tokenizer, fpb_rows.select(range(4)), "right")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference, ref_grads = loss_and_grads(model, batch, fused_lm_head=True)
        saved = cast_frozen_linear_weights(model, torch.bfloat16)
        cast_loss, cast_grads = loss_and_grads(model, batch, fused_lm_head=True)
    assert len(saved) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down); not the tied head, not LoRA
    assert model.get_base_model().lm_head.weight.dtype == torch.float32
    assert torch.equal(cast_loss, reference)
    for name in ref_grads:
        torch.testing.assert_close(cast_grads[name], ref_grads[name], atol=0, rtol=0, msg=name)


def test_train_restores_float32_weights(tokenizer, fpb_rows, tmp_path):
    trainer = _trainer(FastSFTTrainer, tokenizer, fpb_rows.select(range(16)), tmp_path, fast_bf16=True)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.train()
    for name, param in trainer.model.named_parameters():
        if name in frozen:
            assert param.dtype == torch.float32 and torch.equal(param, frozen[name]), name


@pytest.mark.parametrize("shared_prefix", [False, True])
def test_compiled_layers_give_the_same_loss_grads_and_names(tokenizer, fpb_rows, tmp_path, shared_prefix):
    """compile_layers compiles the decoder layers in place: loss and LoRA gradients match eager
    within float32 rounding, for batches of two different lengths (one dynamic graph), and the
    parameter names (what an adapter saves) do not change; so does the compiled shared-prefix
    layout (the CPU recipe's trainer) against the plain eager batch."""
    eager = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "eager", fast_bf16=False)
    compiled = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "compiled", fast_bf16=False,
                        compile_layers=True, shared_prefix=shared_prefix)
    assert compiled.compiled_layers == 2 and eager.compiled_layers == 0
    assert compiled.shared_prefix == shared_prefix and not eager.shared_prefix
    assert [n for n, _ in compiled.model.named_parameters()] == [n for n, _ in eager.model.named_parameters()]
    for rows in (range(8), range(8, 12)):
        batch = eager.data_collator([eager.train_dataset[i] for i in rows])
        results = {}
        for name, trainer in (("eager", eager), ("compiled", compiled)):
            trainer.model.train()
            trainer.model.zero_grad()
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(trainer.model, dict(batch))
            loss.backward()
            results[name] = (loss.item(), lora_grads(trainer.model))
        assert math.isclose(results["compiled"][0], results["eager"][0], rel_tol=1e-5)
        for key, grad in results["eager"][1].items():
            torch.testing.assert_close(results["compiled"][1][key], grad, rtol=1e-4, atol=1e-6, msg=key)


def test_compiled_dora_layers_run_as_one_graph_with_eager_gradients(tokenizer, fpb_rows, tmp_path):
    """With DoRA (the CPU recipe's adapter since round 23) the compiled layers have no graph break (peft's weight
    lookup broke each layer 7 times per MLP, and the CPU recipe's steps took 1.18x as long), and the loss and gradients,
    magnitudes included, are eager's within float32 rounding."""
    from torch._dynamo.utils import counters

    from fingpt_hf.training.fast_trainer import trace_dora_in_one_graph

    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", use_dora=True,
                        init_lora_weights=False)
    eager = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "eager", peft_config=config, fast_bf16=False)
    compiled = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "compiled", peft_config=config,
                        fast_bf16=False, compile_layers=True, shared_prefix=True)
    batch = eager.data_collator([eager.train_dataset[i] for i in range(8)])
    counters.clear()
    results = {}
    for name, trainer in (("eager", eager), ("compiled", compiled)):
        trainer.model.train()
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        results[name] = (loss.item(), lora_grads(trainer.model))
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert any("lora_magnitude_vector" in key for key in results["eager"][1])
    assert math.isclose(results["compiled"][0], results["eager"][0], rel_tol=1e-5)
    for key, grad in results["eager"][1].items():
        torch.testing.assert_close(results["compiled"][1][key], grad, rtol=1e-4, atol=1e-6, msg=key)

    class QuantizedLinear(torch.nn.Linear):  # an HQQ-style layer: peft's helper dequantizes what it holds
        W_q = None

        def dequantize(self):
            return torch.zeros_like(self.weight)

    from peft.tuners.lora import dora
    installed = dora.dequantize_module_weight
    trace_dora_in_one_graph()  # again: a no-op, peft's helper is not wrapped twice
    assert dora.dequantize_module_weight is installed
    plain, quantized = torch.nn.Linear(3, 2), QuantizedLinear(3, 2)
    assert dora.dequantize_module_weight(plain) is plain.weight
    assert torch.equal(dora.dequantize_module_weight(quantized), torch.zeros(2, 3))


RSS_AFTER_FREE = """
import sys
import torch
from fingpt_hf.training.fast_trainer import keep_freed_memory_in_process
applied = keep_freed_memory_in_process() if sys.argv[1] == "on" else None
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = rss()
block = torch.ones(64 * 2**20)  # 256 MiB, far above glibc's largest mmap threshold (32 MiB)
del block
print(applied, (rss() - before) / 2**20)
"""


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_freed_memory_stays_in_the_process_only_when_asked():
    """With glibc's defaults a freed 256 MiB tensor goes back to the kernel (its pages are zeroed again when the next
    step touches them); after ``keep_freed_memory_in_process`` it stays on the heap. Each in a fresh process, since
    the setting is the whole process's."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    kept = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], check=True, capture_output=True, text=True)
        applied, megabytes = out.stdout.split()
        kept[mode] = float(megabytes)
        assert applied == {"off": "None", "on": "True"}[mode]
    assert kept["off"] < 16 and kept["on"] > 200, kept


def test_train_keeps_freed_memory_on_cpu(tokenizer, fpb_rows, tmp_path, monkeypatch):
    from fingpt_hf.training import fast_trainer

    calls = []
    monkeypatch.setattr(fast_trainer, "keep_freed_memory_in_process", lambda: calls.append(1) or False)
    trainer = _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path, fast_bf16=False)
    trainer.args.max_steps = 1
    trainer.train()
    assert calls == [1]


@pytest.mark.parametrize("autocast", [False, True])
def test_dora_rebuilds_b_times_a_without_an_identity_product_and_to_the_same_bits(autocast, monkeypatch):
    """The CPU recipe's DoRA rebuilt B times A for its norms at every step by multiplying A by an identity of the layer's
    input width (about 3% of a step: README, Speed). The trainer's rebuild passes A's transpose instead: peft's own
    result to the last bit, in float32 and under the trainer's bf16 autocast, with no identity built or multiplied;
    an A whose weight cannot be read outside its forward (DeepSpeed ZeRO-3 leaves it empty) still goes through peft's."""
    from peft import get_peft_model
    from peft.tuners.lora import dora
    from torch.profiler import ProfilerActivity, profile

    from fingpt_hf.training import fast_trainer

    peft_rebuild = fast_trainer._PEFT_GET_LORA_WEIGHT
    torch.manual_seed(0)
    model = get_peft_model(torch.nn.Sequential(torch.nn.Linear(96, 40, bias=False)),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["0"], use_dora=True, init_lora_weights=False))
    layer = model.base_model.model[0]
    magnitude, lora_a, lora_b = (layer.lora_magnitude_vector["default"], layer.lora_A["default"],
                                 layer.lora_B["default"])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        expected = peft_rebuild(magnitude, lora_A=lora_a, lora_B=lora_b, adapter_name="default")
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            rebuilt = fast_trainer._lora_weight_without_identity(magnitude, lora_A=lora_a, lora_B=lora_b,
                                                                 adapter_name="default")
    assert rebuilt.dtype == expected.dtype and rebuilt.stride() == expected.stride()
    assert torch.equal(rebuilt, expected)
    ran = {(event.key, str(event.input_shapes)) for event in prof.key_averages(group_by_input_shape=True)}
    assert not any(name == "aten::eye" or "[96, 96]" in shapes for name, shapes in ran)
    monkeypatch.setattr(dora.DoraLinearLayer, "get_lora_weight", peft_rebuild)
    fast_trainer.skip_dora_identity_product()
    assert dora.DoraLinearLayer.get_lora_weight is fast_trainer._lora_weight_without_identity

    class Peft:  # stands for peft's rebuild, to see which path a weight takes
        @staticmethod
        def __wrapped__(self, lora_A, lora_B, adapter_name=None):
            return "peft's"

    monkeypatch.setattr(fast_trainer, "_PEFT_GET_LORA_WEIGHT", Peft)
    rebuild = fast_trainer._lora_weight_without_identity
    assert isinstance(rebuild(magnitude, lora_A=lora_a, lora_B=lora_b), torch.Tensor)
    lora_a.weight.data = torch.empty(0)  # a partitioned ZeRO-3 parameter outside its module's forward
    assert rebuild(magnitude, lora_A=lora_a, lora_B=lora_b) == "peft's"


def test_the_trainer_installs_the_identity_free_rebuild_for_dora_models(tokenizer, fpb_rows, tmp_path, monkeypatch):
    from peft.tuners.lora import dora

    from fingpt_hf.training import fast_trainer

    monkeypatch.setattr(dora.DoraLinearLayer, "get_lora_weight", fast_trainer._PEFT_GET_LORA_WEIGHT)
    plain = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "lora", peft_config=plain, fast_bf16=False)
    assert dora.DoraLinearLayer.get_lora_weight is fast_trainer._PEFT_GET_LORA_WEIGHT  # no DoRA: peft left as it is
    with_dora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", use_dora=True)
    _trainer(FastSFTTrainer, tokenizer, fpb_rows, tmp_path / "dora", peft_config=with_dora, fast_bf16=False)
    assert dora.DoraLinearLayer.get_lora_weight is fast_trainer._lora_weight_without_identity
