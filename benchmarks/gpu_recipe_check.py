"""The GPU recipes' training path on one CUDA GPU: correctness and throughput of padding-free batches
and Liger kernels, through ``recipes/sft.py`` itself (its ``main``, with a step timer).

The GPU recipes (``recipes/llama2-13b``, ``recipes/baichuan2-7b``) set ``liger_when_available: true``
and offer ``padding_free``. This script checks both on a real GPU without the Hub: the model
is a randomly initialised Llama with the real shapes of Llama-2-13B (``--shape llama2-13b``: 40
layers, hidden 5120, MLP 13824, vocabulary 32,000) or of Baichuan2-7B as ``model convert`` makes it
(``--shape baichuan2-7b``: 32 layers, hidden 4096, MLP 11008, vocabulary 125,696), all layers unless
``--layers`` says fewer (the JSON then says ``"full_depth": false``: a proxy, not the model); the rows
are real FinGPT rows from the data mirror, tokenized by ``--tokenizer`` (its ids must fit the
vocabulary). Random weights cost the same arithmetic as trained ones.

1. Correctness (fp32, sdpa): the loss and the LoRA gradients of a padding-free batch equal those of
   the padded batch; with Liger's kernels applied they equal those without.
2. Throughput: the shape's recipe (fp16, LoRA r8 on q/k/v, activation checkpointing) through
   ``recipes/sft.py``, with its own batch or another (``@BATCHxACCUM``; FinGPT's 4 rows x 8
   accumulation steps is ``@4x8``), padded or padding-free batches, with and without Liger, and the
   baseline ``trl``: plain ``trl.SFTTrainer`` with the seed's settings (FinGPT's batch, fp16,
   gradient checkpointing, LoRA r8/alpha 32/dropout 0.1 on q/k/v, TRL's own prompt-completion
   loss), side by side in one script run, **each configuration in its own process** (nothing one
   leaves behind, such as Liger's patches or the allocator's cache, reaches the next); tokens/s
   (real tokens, not padding), speed-ups over the first, and the share of an fp16 matmul peak
   timed in the same run. FLOPs are counted for what ran: 4 x (decoder linear weights) per real
   token (the forward pass and the backward pass to the activations: a frozen base needs no weight
   gradients; recomputation by activation checkpointing and attention scores are not counted), and
   4 x (vocabulary x hidden) per position the LM head ran on: the answer positions (counted batch by
   batch), since both our answer-only head and TRL's fused head on CUDA score only those.
3. The user's command: ``accelerate launch --num_processes 1 recipes/sft.py --config
   recipes/llama2-13b/sft_lora.yaml`` (a sample of the mixture, ``--launch-steps`` steps, a
   checkpoint halfway, no warm-up, lr 1e-3), then ``PeftModel.from_pretrained`` on the output directory: the adapter
   loads and lowers the loss of held-out rows against the bare model.

    python benchmarks/gpu_recipe_check.py --shape baichuan2-7b --tokenizer DIR --data-dir DIR   # one CUDA GPU
    python benchmarks/gpu_recipe_check.py --tokenizer DIR --device cpu --tiny                  # dry run on CPU

(DIR for ``baichuan2-7b``: the tokenizer ``fingpt-hf model convert`` writes for Baichuan2-7B, or any
tokenizer of at most 125,696 tokens; for ``llama2-13b``, one of at most 32,000, e.g. Llama-2's.)
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


@dataclass(frozen=True)
class Shape:
    """A model's real layer shapes (as a Llama), the recipe that trains it and the seed's batch."""

    config: dict
    recipe: Path
    seed_batch: tuple[int, int]  # (rows per device, accumulation steps) of the seed's own training

    @property
    def layers(self) -> int:
        return self.config["num_hidden_layers"]


SHAPES = {
    # Llama-2-13B's config.json; FinGPT trained it with 4 rows x 8 accumulation steps per device.
    "llama2-13b": Shape({"hidden_size": 5120, "intermediate_size": 13824, "num_attention_heads": 40,
                         "num_key_value_heads": 40, "num_hidden_layers": 40, "vocab_size": 32000,
                         "max_position_embeddings": 4096, "rms_norm_eps": 1e-5},
                        REPO / "recipes" / "llama2-13b" / "sft_lora.yaml", (4, 8)),
    # Baichuan2-7B-Base as `fingpt-hf model convert` makes it a Llama (../shared/reference-models/SOURCES.md);
    # the research report trained it with 4 rows per device, no accumulation.
    "baichuan2-7b": Shape({"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
                           "num_key_value_heads": 32, "num_hidden_layers": 32, "vocab_size": 125696,
                           "max_position_embeddings": 4096, "rms_norm_eps": 1e-6},
                          REPO / "recipes" / "baichuan2-7b" / "sft_lora.yaml", (4, 1)),
    # A CPU dry run: the vocabulary is the tokenizer's.
    "tiny": Shape({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
                   "num_hidden_layers": 2, "vocab_size": None, "max_position_embeddings": 512, "rms_norm_eps": 1e-5},
                  REPO / "recipes" / "llama2-13b" / "sft_lora.yaml", (4, 8)),
}
DEFAULT_CONFIGS = "trl,padded@4x8,padded,padded+liger,padding-free+liger"


@dataclass(frozen=True)
class Setting:
    """One throughput configuration, named ``trl|padded|padding-free[+liger][@BATCHxACCUM]``; without
    ``@`` it is the recipe's batch (``trl``: the seed's batch). ``trl`` is plain ``trl.SFTTrainer``."""

    name: str
    padding_free: bool
    liger: bool
    batch: int | None = None
    accum: int | None = None
    plain_trl: bool = False

    @classmethod
    def parse(cls, name: str) -> "Setting":
        layout, _, shape = name.partition("@")
        base, _, extra = layout.partition("+")
        if base not in ("trl", "padded", "padding-free") or extra not in ("", "liger"):
            raise ValueError(f"unknown configuration {name!r} (trl|padded|padding-free[+liger][@BATCHxACCUM])")
        batch = accum = None
        if shape:
            batch, accum = (int(x) for x in shape.split("x"))
        return cls(name, base == "padding-free", extra == "liger", batch, accum, plain_trl=base == "trl")


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


def model_config(shape: Shape, tokenizer, layers: int | None, vocab_size: int | None) -> dict:
    """The random model's config: the shape's, all layers and its real vocabulary unless told otherwise."""
    config = {**shape.config, "num_hidden_layers": layers or shape.layers}
    config["vocab_size"] = vocab_size or config["vocab_size"] or len(tokenizer)
    if len(tokenizer) > config["vocab_size"]:
        raise SystemExit(f"--tokenizer has {len(tokenizer):,} tokens, more than the vocabulary of "
                         f"{config['vocab_size']:,}: give a tokenizer of the model (see --help), or --vocab-size "
                         f"{len(tokenizer)} (then the LM head is not the model's and the JSON says so)")
    return config


def build_model(path: Path, tokenizer_dir: str, config: dict, device: str) -> Path:
    """A random Llama of ``config``'s shapes, fp16, saved with the tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **config)
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


def load_recipe(args) -> dict:
    import yaml

    return yaml.safe_load(SHAPES[args.shape].recipe.read_text(encoding="utf-8"))


def recipe_file(tmp: Path, model_path: Path, args, setting: Setting, out: Path) -> Path:
    """The shape's recipe with the random model, a sample of the mixture, and no checkpoints."""
    import yaml

    recipe = load_recipe(args)
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


class BatchCounter:
    """A TrainerCallback that counts, batch by batch, the real tokens and the answer positions (where
    the next token carries loss) of what the trainer's collator builds: the FLOP count's inputs."""

    def __init__(self, accumulation: int):
        from transformers import TrainerCallback

        self.accumulation = accumulation
        self.batches: list[tuple[int, int]] = []
        counter = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
                # accelerate's DataLoaderShard wraps the DataLoader that iterates (base_dataloader)
                loader = getattr(train_dataloader, "base_dataloader", train_dataloader)
                inner = loader.collate_fn

                def counting(features):
                    batch = inner(features)
                    mask = batch.get("attention_mask")
                    real = int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
                    counter.batches.append((real, int((batch["labels"][:, 1:] != -100).sum())))
                    return batch

                loader.collate_fn = counting

        self.callback = _Callback()

    def steps(self, first: int, last: int) -> tuple[int, int]:
        """(real tokens, answer positions) of optimizer steps ``first+1 .. last`` (1-based)."""
        timed = self.batches[first * self.accumulation: last * self.accumulation]
        return sum(b[0] for b in timed), sum(b[1] for b in timed)


def useful_tflops(model_path: Path, tokens: int, answers: int, seconds: float) -> float:
    """TFLOP/s of what ran and was needed: the decoder's linear layers forward and backward to the
    activations on every real token, the LM head on the answer positions (see the module docstring)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_path)
    h, i, v, n = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    kv = h * cfg.num_key_value_heads // cfg.num_attention_heads
    body = n * (2 * h * h + 2 * h * kv + 3 * h * i)
    return 4 * (body * tokens + v * h * answers) / seconds / 1e12


def timed_result(setting: Setting, model_path: Path, args, timer, counter: BatchCounter, history: list[dict],
                 liger: bool, adapter: bool) -> dict:
    seconds = timer.ends[-1][0] - timer.ends[args.warmup][0]
    tokens, answers = counter.steps(args.warmup, args.warmup + args.steps)
    result = {"name": setting.name, "trainer": "trl.SFTTrainer" if setting.plain_trl else "recipes/sft.py",
              "padding_free": setting.padding_free, "liger": liger,
              "s_per_step": seconds / args.steps, "tokens_per_s": tokens / seconds,
              "answer_positions_per_s": answers / seconds, "tflops": useful_tflops(model_path, tokens, answers, seconds),
              "first_loss": history[0]["loss"], "last_loss": history[-1]["loss"], "adapter": adapter}
    if args.device == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def throughput(setting: Setting, model_path: Path, tmp: Path, args) -> dict:
    """One configuration through ``recipes/sft.py`` itself (its ``main``), timed step by step."""
    import importlib.util

    from fingpt_hf.training.run_info import read_run_info
    from step_timer import StepTimer

    spec = importlib.util.spec_from_file_location("sft_recipe_script", REPO / "recipes" / "sft.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    out = tmp / f"run-{setting.name.replace('@', '-').replace('+', '-')}"
    recipe = recipe_file(tmp, model_path, args, setting, out)
    argv = ["--config", str(recipe)]
    if args.data_dir:
        argv += ["--data_dir", args.data_dir]
    timer = StepTimer(cuda=args.device == "cuda")
    counter = BatchCounter(setting.accum or load_recipe(args)["gradient_accumulation_steps"])
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if script.main(argv, callbacks=[timer, counter.callback]) != 0:
        raise SystemExit(f"{setting.name}: recipes/sft.py failed")
    info = read_run_info(out)
    history = [e for e in info["log_history"] if "loss" in e]
    result = timed_result(setting, model_path, args, timer, counter, history, bool(info.get("liger_kernel")),
                          (out / "adapter_model.safetensors").is_file())
    free_memory(args.device)
    return result


def plain_trl(setting: Setting, model_path: Path, tmp: Path, args) -> dict:
    """The baseline: plain ``trl.SFTTrainer`` with the seed's settings on the recipe's mixture rows
    (FinGPT prompt, TRL's prompt-completion loss), fp16 LoRA r8/alpha 32/dropout 0.1 on q/k/v,
    gradient checkpointing, the seed's batch unless ``@BATCHxACCUM`` gives another."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from fingpt_hf.data.mixture import MixtureConfig, build_mixture
    from fingpt_hf.data.prompts import format_prompt
    from step_timer import StepTimer

    recipe = load_recipe(args)
    mixture = MixtureConfig.from_dict({**recipe["dataset_mixture"], "max_samples": args.rows})
    rows, _ = build_mixture(mixture, args.data_dir)
    dataset = Dataset.from_dict({"prompt": [format_prompt(r) for r in rows], "completion": list(rows["output"])})
    batch, accum = (setting.batch, setting.accum) if setting.batch else SHAPES[args.shape].seed_batch
    cuda = args.device == "cuda"
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float16 if cuda else torch.float32)
    config = SFTConfig(output_dir=str(tmp / f"run-{setting.name.replace('@', '-').replace('+', '-')}"),
                       per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                       max_steps=args.warmup + args.steps, learning_rate=recipe["learning_rate"],
                       weight_decay=recipe.get("weight_decay", 0.0), fp16=cuda, bf16=False, use_cpu=not cuda,
                       gradient_checkpointing=True, max_length=recipe.get("max_length", 512),
                       use_liger_kernel=setting.liger, logging_steps=1, save_strategy="no", report_to="none",
                       disable_tqdm=True, seed=42)
    lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj"],
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora)
    timer, counter = StepTimer(cuda=cuda), BatchCounter(accum)
    trainer.add_callback(timer)
    trainer.add_callback(counter.callback)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    history = [e for e in trainer.state.log_history if "loss" in e]
    result = timed_result(setting, model_path, args, timer, counter, history, setting.liger, True)
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
           "--config", str(SHAPES[args.shape].recipe), "--model_name_or_path", str(model_path), "--dataset_mixture", json.dumps(mixture),
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


def configuration(setting: Setting, model_path: Path, tmp: Path, args) -> dict:
    return (plain_trl if setting.plain_trl else throughput)(setting, model_path, tmp, args)


def in_child_process(setting: Setting, model_path: Path, tmp: Path, args, argv: list[str] | None) -> dict:
    """Run one configuration in a fresh Python process (this script with ``--worker``) and read its JSON."""
    import subprocess

    part = tmp / f"part-{len(list(tmp.glob('part-*')))}.json"
    passed = sys.argv[1:] if argv is None else argv
    cmd = [sys.executable, str(Path(__file__).resolve()), *passed, "--worker", setting.name,
           "--model-dir", str(model_path), "--json", str(part)]
    proc = subprocess.run(cmd)
    if proc.returncode != 0 or not part.is_file():
        raise SystemExit(f"{setting.name}: its process failed (exit {proc.returncode})")
    return json.loads(part.read_text(encoding="utf-8"))


def run_worker(args) -> int:
    """The child side of ``in_child_process``: one configuration, its result to ``--json``."""
    setting = Setting.parse(args.worker)
    with tempfile.TemporaryDirectory() as tmp_name:
        result = configuration(setting, Path(args.model_dir), Path(tmp_name), args)
    Path(args.json).write_text(json.dumps(result), encoding="utf-8")
    return 0


def liger_loss_changes(results: list[dict]) -> dict[str, float]:
    """First-step loss with Liger minus without, per pair of otherwise equal configurations: at fp16,
    kernels that really ran change the rounding, so a difference of exactly 0 says they did not."""
    by_name = {r["name"]: r for r in results}
    changes = {}
    for name, res in by_name.items():
        plain = by_name.get(name.replace("+liger", ""))
        if res["liger"] and plain is not None and plain is not res:
            changes[name] = res["first_loss"] - plain["first_loss"]
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="a tokenizer directory (e.g. the prepared SmolLM2's)")
    parser.add_argument("--data-dir", default=None, help="FinGPT data mirror (default: $FINGPT_DATA_DIR)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--shape", default="llama2-13b", choices=[n for n in SHAPES if n != "tiny"],
                        help="the real model whose shapes (all layers, vocabulary) the random model has")
    parser.add_argument("--layers", type=int, default=None,
                        help="fewer decoder layers than the shape's (a proxy: the JSON says full_depth false)")
    parser.add_argument("--vocab-size", type=int, default=None, help="another vocabulary size (a proxy too)")
    parser.add_argument("--tiny", action="store_true", help="tiny layer shapes (a CPU dry run)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="comma-separated trl|padded|padding-free[+liger][@BATCHxACCUM]")
    parser.add_argument("--in-process", action="store_true",
                        help="run every configuration in this process (default: each in its own process)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one configuration, in a child process
    parser.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)  # the worker's model
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
    if args.in_process:
        settings.sort(key=lambda s: s.liger)  # Liger patches the Llama module for the whole process
    args.shape = "tiny" if args.tiny else args.shape
    if args.worker:
        return run_worker(args)
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
        from transformers import AutoTokenizer

        shape = SHAPES[args.shape]
        config = model_config(shape, AutoTokenizer.from_pretrained(args.tokenizer), args.layers, args.vocab_size)
        model_path = build_model(tmp / "model", args.tokenizer, config, args.device)
        report["model"] = {"shape": args.shape, "layers": config["num_hidden_layers"],
                           "vocab_size": config["vocab_size"],
                           "full_depth": args.shape != "tiny" and config["num_hidden_layers"] == shape.layers
                           and config["vocab_size"] == shape.config["vocab_size"],
                           "each_configuration_in_its_own_process": not args.in_process}
        print(f"model: random Llama, {args.shape} shapes, {config['num_hidden_layers']} layers, vocabulary "
              f"{config['vocab_size']:,} ({time.perf_counter() - start:.0f} s to build and save)", flush=True)

        report["correctness"] = correctness(model_path, args.data_dir, args.device, liger_ok)
        for r in report["correctness"]:
            print(f"{r['check']:40s} loss {r['loss']:.6f} vs {r['ref_loss']:.6f} (rel {r['loss_rel']:.1e}), "
                  f"LoRA grads rel {r['grad_rel']:.1e}", flush=True)

        report["throughput"] = []
        for setting in settings:
            if setting.liger and not liger_ok:
                print(f"{setting.name}: skipped (Liger needs CUDA and liger-kernel)", flush=True)
                continue
            res = (configuration(setting, model_path, tmp, args) if args.in_process
                   else in_child_process(setting, model_path, tmp, args, argv))
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
    report["liger_first_loss_change"] = liger_loss_changes(report["throughput"])
    for name, change in report["liger_first_loss_change"].items():
        print(f"{name}: first loss {change:+.3g} against the same configuration without Liger"
              + (" (identical: Liger's kernels did not change the forward pass; check they ran)" if change == 0 else ""))
    ok = all(r["loss_rel"] < 1e-4 and r["grad_rel"] < 1e-3 for r in report["correctness"])
    ok = ok and all(r["adapter"] and math.isfinite(r["last_loss"]) for r in report["throughput"])
    ok = ok and report.get("launch", {"ok": True})["ok"]
    print("checks:", "passed" if ok else "FAILED")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
