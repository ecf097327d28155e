"""The GPU recipes' training path on one CUDA GPU: correctness and throughput of padding-free batches
and Liger kernels, through ``recipes/sft.py`` itself (its ``main``, with a step timer).

The GPU recipes (``recipes/llama2-13b``, ``recipes/baichuan2-7b``) set ``liger_when_available: true``
and offer ``padding_free``. This script checks both on a real GPU without the Hub: the model
is a randomly initialised Llama with Llama-2-13B's layer shapes (hidden 5120, MLP 13824, 40 heads)
but only ``--layers`` of its 40 layers, sized to the tokenizer given; the rows are real FinGPT rows
from the data mirror. Random weights cost the same arithmetic as trained ones.

1. Correctness (fp32, sdpa): the loss and the LoRA gradients of a padding-free batch equal those of
   the padded batch; with Liger's kernels applied they equal those without.
2. Throughput: the llama2-13b recipe (fp16, LoRA r8 on q/k/v, activation checkpointing, 32 rows
   per optimizer step) with FinGPT's 4 rows x 8 accumulation steps (``@4x8``) or the recipe's one
   micro-batch of 32, padded or padding-free batches, with and without Liger, side by side;
   tokens/s (real tokens, not padding), the speed-ups over the first, and the share of an fp16
   matmul peak timed in the same run. Useful work per token: 4 x (linear weights, LM head
   included): the forward pass and the backward pass to the activations; a frozen base needs no
   weight gradients, and recomputation by activation checkpointing is not counted.
3. The user's command: ``accelerate launch --num_processes 1 recipes/sft.py --config
   recipes/llama2-13b/sft_lora.yaml`` (a sample of the mixture, ``--launch-steps`` steps, a
   checkpoint halfway, no warm-up, lr 1e-3), then ``PeftModel.from_pretrained`` on the output directory: the adapter
   loads and lowers the loss of held-out rows against the bare model.

Liger patches the Llama module's functions for the whole process, so its configurations run last.

    python benchmarks/gpu_recipe_check.py --tokenizer DIR --data-dir DIR          # one CUDA GPU, ~3 min
    python benchmarks/gpu_recipe_check.py --tokenizer DIR --device cpu --tiny     # dry run on CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

LLAMA2_13B_SHAPE = {"hidden_size": 5120, "intermediate_size": 13824, "num_attention_heads": 40,
                    "num_key_value_heads": 40, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
TINY_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 4, "max_position_embeddings": 512, "rms_norm_eps": 1e-5}
RECIPE = REPO / "recipes" / "llama2-13b" / "sft_lora.yaml"
DEFAULT_CONFIGS = "padded@4x8,padding-free@4x8,padded,padded+liger@4x8,padded+liger,padding-free+liger"


@dataclass(frozen=True)
class Setting:
    """One throughput configuration, named ``padded|padding-free[+liger][@BATCHxACCUM]``; without
    ``@`` it is the recipe's batch (32 rows per device, no accumulation; FinGPT's is ``@4x8``)."""

    name: str
    padding_free: bool
    liger: bool
    batch: int | None = None
    accum: int | None = None

    @classmethod
    def parse(cls, name: str) -> "Setting":
        layout, _, shape = name.partition("@")
        base, _, extra = layout.partition("+")
        if base not in ("padded", "padding-free") or extra not in ("", "liger"):
            raise ValueError(f"unknown configuration {name!r} (padded|padding-free[+liger][@BATCHxACCUM])")
        batch = accum = None
        if shape:
            batch, accum = (int(x) for x in shape.split("x"))
        return cls(name, base == "padding-free", extra == "liger", batch, accum)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def free_memory(device: str) -> None:
    """Give back what the last model held before the next one loads."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """Median TFLOP/s of a (size x size) @ (size x size) product on random data."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[len(times) // 2] / 1e12


def build_model(path: Path, tokenizer_dir: str, layers: int, tiny: bool, device: str) -> Path:
    """A random Llama of Llama-2-13B's layer shapes (or a tiny one), fp16, saved with the tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), num_hidden_layers=layers,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         **(TINY_SHAPE if tiny else LLAMA2_13B_SHAPE))
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.float16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    return path


def real_rows(tokenizer, n: int, data_dir: str | None):
    """``n`` FPB + TFNS training rows, tokenized as the recipes do (answer-only labels)."""
    from fingpt_hf.data.benchmarks import load_benchmark
    from fingpt_hf.families import family_by_name
    from fingpt_hf.training.sft import build_training_rows
    from datasets import concatenate_datasets

    rows = concatenate_datasets([load_benchmark(name, "train", data_dir=data_dir).select(range(n // 2))
                                 for name in ("fpb", "tfns")])
    return list(build_training_rows(rows, tokenizer, family_by_name("llama"), "fingpt", 512))


def loss_and_grads(model, batch: dict) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch, use_cache=False).loss
    loss.backward()
    grads = [p.grad.flatten() for p in model.parameters() if p.requires_grad and p.grad is not None]
    return loss.item(), torch.cat(grads).double()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def correctness(model_path: Path, data_dir: str | None, device: str, liger_ok: bool) -> list[dict]:
    """Loss and LoRA gradients: padding-free vs padded, Liger vs plain (fp32, sdpa)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from fingpt_hf.training.collator import AnswerOnlyCollator

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    rows = real_rows(tokenizer, 8, data_dir)
    feats = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    padded = AnswerOnlyCollator(pad_token_id=tokenizer.pad_token_id)(
        [{**f, "completion_mask": r["completion_mask"]} for f, r in zip(feats, rows)])
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(feats)
    to = lambda b: {k: v.to(device) for k, v in b.items() if torch.is_tensor(v)}  # noqa: E731

    def lora_model():
        torch.manual_seed(1)
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
        model = get_peft_model(base.to(device), LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj"],
                                                           lora_dropout=0.0, task_type="CAUSAL_LM"))
        with torch.no_grad():  # non-zero B, so that A's gradients are compared too
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.02)
        return model

    results = []
    model = lora_model()
    ref_loss, ref_grads = loss_and_grads(model, to(padded))
    loss, grads = loss_and_grads(model, to(flat))
    results.append({"check": "padding-free vs padded (fp32, sdpa)", "loss": loss, "ref_loss": ref_loss,
                    "loss_rel": abs(loss - ref_loss) / abs(ref_loss), "grad_rel": rel(grads, ref_grads),
                    "tokens_padded": int(padded["input_ids"].numel()), "tokens_flat": int(flat["input_ids"].numel())})
    if liger_ok:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model.get_base_model(), fused_linear_cross_entropy=False)
        for name, batch in (("padded", padded), ("padding-free", flat)):
            loss, grads = loss_and_grads(model, to(batch))
            results.append({"check": f"Liger vs plain, {name} (fp32)", "loss": loss, "ref_loss": ref_loss,
                            "loss_rel": abs(loss - ref_loss) / abs(ref_loss), "grad_rel": rel(grads, ref_grads)})
    del model
    free_memory(device)
    return results


def recipe_file(tmp: Path, model_path: Path, args, setting: Setting, out: Path) -> Path:
    """The llama2-13b recipe with the random model, a sample of the mixture, and no checkpoints."""
    import yaml

    recipe = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    recipe["dataset_mixture"]["max_samples"] = args.rows
    recipe.update({"model_name_or_path": str(model_path), "max_steps": args.warmup + args.steps,
                   "padding_free": setting.padding_free, "liger_when_available": setting.liger, "logging_steps": 1,
                   "save_strategy": "no", "report_to": "none", "output_dir": str(out), "disable_tqdm": True,
                   "warmup_steps": 0})
    if setting.batch:
        recipe.update({"per_device_train_batch_size": setting.batch, "gradient_accumulation_steps": setting.accum})
    if args.device == "cpu":
        recipe.update({"fp16": False, "dtype": "float32", "use_cpu": True})
    path = tmp / f"recipe-{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def throughput(setting: Setting, model_path: Path, tmp: Path, args) -> dict:
    from transformers import AutoConfig

    import importlib.util

    from fingpt_hf.training.run_info import read_run_info
    from step_timer import StepTimer

    spec = importlib.util.spec_from_file_location("sft_recipe_script", REPO / "recipes" / "sft.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    out = tmp / f"run-{setting.name.replace('@', '-').replace('+', '-')}"
    argv = ["--config", str(recipe_file(tmp, model_path, args, setting, out))]
    if args.data_dir:
        argv += ["--data_dir", args.data_dir]
    timer = StepTimer(cuda=args.device == "cuda")
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if script.main(argv, callbacks=[timer]) != 0:
        raise SystemExit(f"{setting.name}: recipes/sft.py failed")
    info = read_run_info(out)
    history = [e for e in info["log_history"] if "loss" in e]
    tokens = [e["num_tokens"] for e in history]  # TRL: cumulative real (non-pad) tokens
    seconds = timer.ends[-1][0] - timer.ends[args.warmup][0]
    timed_tokens = tokens[-1] - tokens[args.warmup - 1]
    cfg = AutoConfig.from_pretrained(model_path)
    h, i, v, n = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    linear = n * (4 * h * h + 3 * h * i) + v * h
    result = {"name": setting.name, "padding_free": setting.padding_free, "liger": bool(info.get("liger_kernel")),
              "s_per_step": seconds / args.steps, "tokens_per_s": timed_tokens / seconds,
              "tflops": 4 * linear * timed_tokens / seconds / 1e12,
              "first_loss": history[0]["loss"], "last_loss": history[-1]["loss"],
              "adapter": (out / "adapter_model.safetensors").is_file()}
    if args.device == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    free_memory(args.device)
    return result


def launch_end_to_end(model_path: Path, tmp: Path, args) -> dict:
    """Train with ``accelerate launch`` as a user does, then load the adapter with peft."""
    import subprocess

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from fingpt_hf.training.collator import AnswerOnlyCollator

    out = tmp / "launch"
    mixture = {"datasets": [{"name": "fpb", "weight": 6}, {"name": "fiqa", "weight": 21}, {"name": "tfns", "weight": 2}],
               "seed": 42, "max_samples": args.rows}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", str(REPO / "recipes" / "sft.py"),
           "--config", str(RECIPE), "--model_name_or_path", str(model_path), "--dataset_mixture", json.dumps(mixture),
           "--max_steps", str(args.launch_steps), "--save_steps", "0.5", "--logging_steps", "5",
           # the recipe warms up over 500 steps; a short run needs a usable learning rate at once
           "--warmup_steps", "0", "--learning_rate", "1e-3",
           "--report_to", "none", "--output_dir", str(out), "--disable_tqdm", "true"]
    if args.data_dir:
        cmd += ["--data_dir", args.data_dir]
    if args.device == "cpu":
        cmd += ["--fp16", "false", "--dtype", "float32", "--use_cpu", "true"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if args.json:  # the launch's own log, beside the results
        Path(args.json).with_name("launch.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n")
        return {"ok": False, "returncode": proc.returncode, "seconds": seconds}

    dtype = torch.float16 if args.device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(out)
    rows = real_rows(tokenizer, 64, args.data_dir)[-16:]  # the mixture sample may hold these; a sanity check, not a test score
    batch = AnswerOnlyCollator(pad_token_id=tokenizer.pad_token_id)(rows)
    batch = {k: v.to(args.device) for k, v in batch.items()}
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(args.device).eval()
    with torch.no_grad():
        bare = base(**batch, use_cache=False).loss.item()
        tuned_model = PeftModel.from_pretrained(base, str(out)).eval()
        tuned = tuned_model(**batch, use_cache=False).loss.item()
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    return {"ok": tuned < bare, "seconds": seconds, "bare_loss": bare, "adapter_loss": tuned,
            "checkpoints": checkpoints, "files": sorted(p.name for p in out.iterdir() if p.is_file())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="a tokenizer directory (e.g. the prepared SmolLM2's)")
    parser.add_argument("--data-dir", default=None, help="FinGPT data mirror (default: $FINGPT_DATA_DIR)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of Llama-2-13B's shape (of its 40)")
    parser.add_argument("--tiny", action="store_true", help="tiny layer shapes (a CPU dry run)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="comma-separated padded|padding-free[+liger][@BATCHxACCUM]; Liger's run last")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps")
    parser.add_argument("--rows", type=int, default=2000, help="mixture rows each configuration loads")
    parser.add_argument("--launch-steps", type=int, default=30, help="steps of the accelerate launch run (0: skip it)")
    parser.add_argument("--json", default=None, help="write the results here (and the launch's log beside them)")
    args = parser.parse_args(argv)
    try:
        settings = [Setting.parse(n.strip()) for n in args.configs.split(",") if n.strip()]
    except ValueError as err:
        parser.error(str(err))
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first timed step starts where a warm-up step ends)")
    settings.sort(key=lambda s: s.liger)  # Liger patches the Llama module for the whole process
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (use --device cpu --tiny for a dry run)")

    import importlib.metadata as md

    from transformers.utils import is_liger_kernel_available

    versions = {p: md.version(p) for p in ("torch", "transformers", "trl", "peft", "accelerate")}
    liger_ok = args.device == "cuda" and is_liger_kernel_available()
    versions["liger-kernel"] = md.version("liger-kernel") if liger_ok else None
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{gpu}; {versions}", flush=True)
    report: dict = {"device": gpu, "versions": versions}
    size = 8192 if args.device == "cuda" else 1024
    report["fp16_peak_tflops"] = matmul_peak_tflops(args.device, torch.float16, size)
    print(f"fp16 matmul peak ({size}^3): {report['fp16_peak_tflops']:.3g} TFLOP/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        model_path = build_model(tmp / "model", args.tokenizer, args.layers, args.tiny, args.device)
        print(f"model: random Llama, {'tiny' if args.tiny else 'Llama-2-13B'} shapes, {args.layers} layers "
              f"({time.perf_counter() - start:.0f} s to build and save)", flush=True)

        report["correctness"] = correctness(model_path, args.data_dir, args.device, liger_ok)
        for r in report["correctness"]:
            print(f"{r['check']:40s} loss {r['loss']:.6f} vs {r['ref_loss']:.6f} (rel {r['loss_rel']:.1e}), "
                  f"LoRA grads rel {r['grad_rel']:.1e}", flush=True)

        report["throughput"] = []
        for setting in settings:
            if setting.liger and not liger_ok:
                print(f"{setting.name}: skipped (Liger needs CUDA and liger-kernel)", flush=True)
                continue
            res = throughput(setting, model_path, tmp, args)
            report["throughput"].append(res)
            mem = f", peak {res['peak_mem_gib']:.1f} GiB" if "peak_mem_gib" in res else ""
            print(f"{setting.name:24s} {res['s_per_step'] * 1000:7.1f} ms/step {res['tokens_per_s']:9.0f} tok/s "
                  f"{res['tflops']:7.1f} TFLOP/s ({res['tflops'] / report['fp16_peak_tflops']:.0%} of fp16 peak)"
                  f"{mem} | liger {res['liger']} | loss {res['first_loss']:.3f}->{res['last_loss']:.3f} | "
                  f"adapter saved {res['adapter']}", flush=True)
        if args.launch_steps:
            report["launch"] = launch_end_to_end(model_path, tmp, args)
            print(f"accelerate launch recipes/sft.py: {report['launch']}", flush=True)
    base, *others = report["throughput"] or [None]
    for res in others:
        print(f"speed-up {res['name']} vs {base['name']}: {res['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s")
    ok = all(r["loss_rel"] < 1e-4 and r["grad_rel"] < 1e-3 for r in report["correctness"])
    ok = ok and all(r["adapter"] and math.isfinite(r["last_loss"]) for r in report["throughput"])
    ok = ok and report.get("launch", {"ok": True})["ok"]
    print("checks:", "passed" if ok else "FAILED")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
