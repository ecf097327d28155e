"""LoRA training throughput on CPU: FastSFTTrainer vs plain TRL SFTTrainer, side by side.

Same model (the embedded SmolLM2-135M-Instruct by default), same FPB train rows with FinGPT's
prompt, same LoRA (r=16, all linear layers unless ``--lora-target-modules`` names some, dropout as the CPU
recipe: 0), batch 8. Each configuration trains a fresh LoRA for ``--warmup`` + ``--steps`` optimizer steps; only
the last ``--steps`` are timed. Every configuration
computes in the dtype this CPU runs natively: bf16 where it has AVX512-BF16 or AMX (TRL's default
``bf16=True``, the fast trainer's autocast), float32 elsewhere (``bf16=False`` for every
configuration: on an AVX2-only CPU a bf16 matmul is emulated, ~500x slower than float32, so TRL's
default would measure the emulation, not the trainer). A matmul in that dtype is timed in the same
run, before and after the configurations, to get this machine's peak, and each configuration's
useful work is reported as a share of the higher of the two:

    useful FLOPs / step = 2 x (linear params of the decoder body) x (non-pad tokens)
                        + 2 x (frozen linear params whose input needs a gradient) x (non-pad tokens)
                        + 4 x (vocab x hidden) x (answer tokens)

(forward 2NT + backward to the activations 2NT; a frozen base needs no weight gradients, and a frozen linear
layer runs its input-gradient matmul only where its input needs a gradient, i.e. above the lowest adapted module:
``backward_linear_params`` finds those layers from what autograd runs, for ``--lora-top-layers`` and
``--lora-target-modules``; the LM head is only needed where the loss is; LoRA's own matmuls are not counted).
Recomputation by gradient checkpointing, padding and prompt-token logits are not useful work, so they lower the
share. With the shared prefix, the tokens a shared instruction saves are not counted (they never ran), so its share
is that of the work it did, while its samples/s carries the saving.

That count (``gflops``, the figure of every run recorded before it was added) leaves out two kinds of matmul that
every configuration runs: LoRA's own and the attention's. ``gflops_all`` adds them, counted the same way:

    + (LoRA matmul FLOPs per token) x (tokens that ran)
    + (attention matmul FLOPs per attended query-key pair) x (attended pairs that ran)

A trainable linear layer (LoRA's A and B) costs 2P per token forward, 2P for its weight gradient and 2P more where
its input needs a gradient. A query-key pair costs 4 x (query width) forward (scores and the weighted values) and
2 x (query width) in the backward pass for each of dQ, dK, dV and the probabilities' gradient that autograd runs
(``step_work`` finds them with hooks). Only the causal pairs between real tokens count (n(n+1)/2 for a row of n;
the shared prefix's once per group), not padding or masked scores, nor the one-hot matmul that hands a group's
prefix keys to its rows. ``tests/test_train_throughput.py`` checks the per-token and per-pair figures against
torch's ``FlopCounterMode`` (what the dispatcher ran) on a tiny Llama.

    python benchmarks/train_throughput.py                # ~6 minutes on 2 cores
    python benchmarks/train_throughput.py --steps 6 --configs trl-default,trl-tuned,fast-shared \
        --output benchmarks/results/train_throughput/cpu.json

``--isolate`` runs each configuration in a fresh Python process of its own (the peak is still timed in this one,
before and after them all). In one process a configuration can run at a speed that depends on the one before it:
glibc hands a freed block larger than its mmap threshold back to the kernel, which zeroes the pages again when a
later block is touched, and the threshold and the heap grow with what was freed before. TRL's configurations compute
full-vocabulary logits (hundreds of MB a step), so ``trl-tuned`` run after ``trl-default`` reuses heap memory that it
would fault in afresh every step if run alone (README, Speed, for the measured difference). ``glibc_tunables`` in the
output records ``GLIBC_TUNABLES`` (e.g. ``glibc.malloc.mmap_max=0`` keeps every block on the heap).

``--profile-steps N`` runs N more steps after the timed ones under ``torch.profiler`` (``step_timer.StepProfiler``)
and adds to each result where their time went (``profile``): the self time of the matmuls (``aten::mm``, ``bmm``,
``addmm``, ``baddbmm``), of inductor's fused C++ kernels, and of everything else, against the steps' wall time; the
matmuls' own rate (each call's FLOPs from its recorded shapes over its time, by shape too) and the useful FLOPs of
``gflops_all`` per second of matmul time, the share the step would reach were it all matmuls. So that the fused kernels
are named in the profile, inductor's ``cpp.enable_kernel_profile`` is set before compiling: then the timed steps'
kernels open a profiler record too (with no profiler listening), so quote speeds from runs without the option.

Ratios are printed against each baseline that ran: ``trl-default`` (TRL's SFTConfig defaults, which turn
gradient checkpointing on), ``trl-tuned`` (the fair one: plain SFTTrainer with the same
settings as the fast trainer, no checkpointing, length-grouped batches) and ``trl-compiled`` (``trl-tuned`` with
TrainingArguments' ``torch_compile``, the whole model compiled: the strongest plain-TRL baseline measured).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


@dataclass
class Config:
    name: str
    fast: bool  # FastSFTTrainer or plain SFTTrainer
    overrides: dict = field(default_factory=dict)  # SFTConfig fields changed from TRL's defaults
    note: str = ""
    compile_layers: bool = False  # FastSFTTrainer's regional torch.compile (the CPU recipe's setting)
    shared_prefix: bool = False  # FastSFTTrainer's shared-prefix batching


TUNED = {"activation_checkpointing": False, "train_sampling_strategy": "group_by_length"}
CONFIGS = {c.name: c for c in (
    Config("trl-default", False, {}, "trl.SFTTrainer, SFTConfig defaults (bf16 where native, grad. checkpointing)"),
    Config("fast-same-args", True, {}, "FastSFTTrainer, same SFTConfig defaults"),
    Config("fast", True, TUNED, "FastSFTTrainer, no grad. checkpointing, length-grouped batches"),
    Config("fast-compiled", True, TUNED, "as 'fast', plus compiled decoder layers", compile_layers=True),
    Config("fast-shared", True, TUNED, "as 'fast-compiled', plus the shared instruction prefix once per batch "
           "(recipes/smollm2-135m)", compile_layers=True, shared_prefix=True),
    Config("trl-tuned", False, TUNED, "trl.SFTTrainer with the same tuned args as 'fast'"),
    Config("trl-compiled", False, {**TUNED, "torch_compile": True},
           "as 'trl-tuned', plus TrainingArguments' torch_compile (the whole model compiled)"),
)}


def matmul_peak_gflops(size: int, repeats: int, dtype: torch.dtype) -> tuple[float, float]:
    """GFLOP/s of a (size x size) @ (size x size) matmul in ``dtype``: (best wall time, median by CPU time).

    The CPU-time figure divides the process CPU time by the thread count, i.e. what the threads
    achieve while they actually run; on a shared machine it is less noisy than wall time. Its
    median is used, since a preempted thread makes single repeats look too fast.
    """
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        walls.append(time.perf_counter() - wall)
        cpus.append((time.process_time() - cpu) / torch.get_num_threads())
    flops = 2 * size**3
    return flops / min(walls) / 1e9, flops / sorted(cpus)[len(cpus) // 2] / 1e9


class CountingCollator:
    """Wraps the trainer's collator to count the real, answer, padded and shared-prefix tokens of
    every batch it builds (shared: token passes the shared-prefix layout saves on that batch, 0 for a
    configuration without it), and the query-key pairs its attention computes usefully (``attended_pairs``)."""

    def __init__(self, inner, shared_prefix: bool):
        self.inner = inner
        self.shared_prefix = shared_prefix
        self.batches: list[tuple[int, int, int, int, int]] = []

    def __call__(self, features):
        from fingpt_hf.training.shared_prefix import plan_shared_prefixes

        batch = self.inner(features)
        mask = batch["attention_mask"]
        answer = int((batch["labels"][:, 1:] != -100).sum())
        plan = plan_shared_prefixes(batch["input_ids"], mask, batch["labels"]) if self.shared_prefix else None
        pairs = attended_pairs(mask.sum(-1).tolist(), plan)
        self.batches.append((int(mask.sum()), answer, mask.numel(), plan.shared_tokens if plan else 0, pairs))
        return batch


def attended_pairs(lengths: list[int], plan=None) -> int:
    """Causal query-key pairs between real tokens: n(n+1)/2 for a row of n; under a shared-prefix ``plan`` a group's
    prefix (p tokens, g rows) attends among itself once instead of g times, so (g - 1) p(p+1)/2 fewer."""
    pairs = sum(n * (n + 1) // 2 for n in lengths)
    if plan is not None:
        pairs -= sum((g - 1) * p * (p + 1) // 2 for g, p in zip(plan.group_sizes, plan.prefix_lengths))
    return pairs


def body_linear_params(model) -> int:
    """Weights of the linear layers that every token passes through (not embeddings, not the LM head)."""
    head = model.get_output_embeddings()
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)


@dataclass
class StepWork:
    """What one token and one attended query-key pair cost in a training step, found from what autograd runs."""

    backward_linear_params: int  # frozen body weights whose input-gradient matmul runs
    lora_flops_per_token: int  # LoRA's A and B: forward, weight gradient, input gradient where needed
    attention_flops_per_pair: int | None  # summed over layers; None for a model without q/k/v projections


def step_work(model, lora, sample: torch.Tensor) -> StepWork:
    """Apply ``lora`` to ``model`` and find, by one forward pass of ``sample`` with hooks, which matmuls run.

    A frozen linear layer runs its input-gradient matmul only where its input needs a gradient: below the lowest
    adapted module nothing does (with LoRA on the top layers, every lower layer; with LoRA on the MLP only, the
    lowest layer's attention too). A trainable one (LoRA's A or B) also runs its weight gradient. An attention
    block's backward runs dQ where its queries need a gradient, dK where its keys do, the probabilities' gradient
    where either does, dV where its values do. ``model`` is changed (LoRA is applied to it): pass a copy that is
    not trained."""
    from peft import get_peft_model

    head = model.get_output_embeddings()
    peft_model = get_peft_model(model, lora)
    backward: dict[int, int] = {}
    trainable: dict[int, int] = {}
    needs_grad: dict[int, bool] = {}

    def linear_hook(module, inputs, output):
        size = module.weight.numel()
        if module.weight.requires_grad:
            trainable[id(module)] = 2 * size * (2 + inputs[0].requires_grad)
        elif inputs[0].requires_grad:
            backward[id(module)] = size

    def output_hook(module, inputs, output):
        needs_grad[id(module)] = output.requires_grad

    linears = [m for m in peft_model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    blocks = [m for m in peft_model.modules() if all(hasattr(m, n) for n in ("q_proj", "k_proj", "v_proj"))]
    projections = [getattr(b, n) for b in blocks for n in ("q_proj", "k_proj", "v_proj")]
    handles = [m.register_forward_hook(linear_hook) for m in linears]
    handles += [m.register_forward_hook(output_hook) for m in projections]
    try:
        peft_model(input_ids=sample)
    finally:
        for handle in handles:
            handle.remove()
    attention = 0
    for block in blocks:
        q, k, v = (needs_grad[id(getattr(block, n))] for n in ("q_proj", "k_proj", "v_proj"))
        width = block.q_proj.out_features  # heads x head dim: each query head scores its (shared) key head
        attention += 4 * width + 2 * width * (q + k + (q or k) + v)
    return StepWork(sum(backward.values()), sum(trainable.values()), attention if blocks else None)


def run_config(cfg: Config, model_path: str, dataset, args, native_bf16: bool) -> dict:
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from fingpt_hf.families.lora import all_linear_targets, top_layers
    from fingpt_hf.training.fast_trainer import FastSFTTrainer
    from step_timer import StepProfiler, StepTimer

    if args.profile_steps:  # name each compiled C++ kernel in the profile (set before anything compiles)
        from torch._inductor import config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    n_body = body_linear_params(model)
    vocab_x_hidden = model.get_output_embeddings().weight.numel()
    targets = args.lora_target_modules.split(",") if args.lora_target_modules else all_linear_targets(model)
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=args.lora_dropout,
                      use_dora=args.use_dora, target_modules=targets, task_type="CAUSAL_LM",
                      layers_to_transform=top_layers(model, args.lora_top_layers))
    sample = tokenizer(dataset[0]["prompt"] + dataset[0]["completion"], return_tensors="pt")["input_ids"]
    work = step_work(copy.deepcopy(model), copy.deepcopy(lora), sample)
    n_backward = work.backward_linear_params
    with tempfile.TemporaryDirectory() as out:
        sft_args = SFTConfig(
            output_dir=out, per_device_train_batch_size=args.batch_size,
            max_steps=args.warmup + args.steps + args.profile_steps,
            logging_steps=1, save_strategy="no", report_to="none", seed=0, disable_tqdm=True,
            use_cpu=True,  # TRL defaults to bf16=True, which transformers refuses on CPU without it
            **({} if native_bf16 else {"bf16": False}), **cfg.overrides,
        )
        trainer_cls = FastSFTTrainer if cfg.fast else SFTTrainer
        extra = {"compile_layers": cfg.compile_layers, "shared_prefix": cfg.shared_prefix} if cfg.fast else {}
        trainer = trainer_cls(model=model, args=sft_args, train_dataset=dataset,
                              processing_class=tokenizer, peft_config=lora, **extra)
        counter = CountingCollator(trainer.data_collator, cfg.shared_prefix)
        trainer.data_collator = counter
        timer = StepTimer()
        trainer.add_callback(timer)
        profiler = StepProfiler(args.warmup + args.steps, args.profile_steps)
        trainer.add_callback(profiler)
        trainer.train()
    ends = timer.ends[: args.warmup + args.steps + 1]  # the profiled steps after them are not timed
    seconds = ends[-1][0] - ends[args.warmup][0]
    cpu_seconds = (ends[-1][1] - ends[args.warmup][1]) / torch.get_num_threads()

    def work_of(batches: list[tuple[int, int, int, int, int]]) -> tuple[int, int | None, int, int]:
        """Counted FLOPs, FLOPs with LoRA's and attention's matmuls (None without q/k/v), token passes that ran,
        attended pairs, for these batches."""
        ran = sum(b[0] - b[3] for b in batches)  # the token passes that really ran
        pairs = sum(b[4] for b in batches)
        flops = 2 * (n_body + n_backward) * ran + 4 * vocab_x_hidden * sum(b[1] for b in batches)
        flops_all = (None if work.attention_flops_per_pair is None
                     else flops + work.lora_flops_per_token * ran + work.attention_flops_per_pair * pairs)
        return flops, flops_all, ran, pairs

    timed = counter.batches[args.warmup: args.warmup + args.steps]
    real = sum(b[0] for b in timed)
    padded = sum(b[2] for b in timed)
    flops, flops_all, ran, pairs = work_of(timed)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h][: args.warmup + args.steps]
    profile = None
    if args.profile_steps:
        profile = profiler.breakdown()
        # the collator also builds the batch after the last step (the data loader reads one ahead): not profiled
        profiled = counter.batches[args.warmup + args.steps: args.warmup + args.steps + args.profile_steps]
        profile["padded_tokens_per_step"] = sum(b[2] for b in profiled) / args.profile_steps
        profiled_flops_all = work_of(profiled)[1]
        matmul_s = profile["self_s_per_step"]["matmul"]
        # the useful FLOPs (``gflops_all``'s count) per second of matmul time: the rate the share would have if the
        # step were all matmuls (None without q/k/v projections to count attention's)
        profile["useful_gflops_all_per_matmul_s"] = (None if profiled_flops_all is None or not matmul_s
                                                     else profiled_flops_all / args.profile_steps / matmul_s / 1e9)
    return {
        "name": cfg.name, "note": cfg.note, "bf16": bool(trainer.args.bf16 or getattr(trainer, "fast_bf16", False)),
        "pid": os.getpid(),
        "s_per_step": seconds / args.steps,
        "samples_per_s": args.steps * args.batch_size / seconds, "tokens_per_s": real / seconds,
        "pad_share": 1 - real / padded, "gflops": flops / seconds / 1e9,
        "gflops_all": None if flops_all is None else flops_all / seconds / 1e9,
        "flops_per_step": {"counted": flops / args.steps, "all": None if flops_all is None else flops_all / args.steps,
                           "lora_per_token": work.lora_flops_per_token,
                           "attention_per_pair": work.attention_flops_per_pair,
                           "tokens_ran": ran / args.steps, "attended_pairs": pairs / args.steps},
        "cpu_s_per_step": cpu_seconds / args.steps, "gflops_cpu": flops / cpu_seconds / 1e9,
        "first_loss": losses[0] if losses else float("nan"), "last_loss": losses[-1] if losses else float("nan"),
        **({"profile": profile} if profile else {}),
    }


def child_argv(argv: list[str], name: str, output: str) -> list[str]:
    """``argv`` for one configuration in a process of its own: the same options, ``--configs name``, its own output.

    argparse keeps the last value of an option given twice, so the child's settings are appended, not filtered."""
    return [*argv, "--no-isolate", "--configs", name, "--output", output]


def run_isolated(name: str, argv: list[str]) -> dict:
    """One configuration's result from a fresh Python process (this script again), so that nothing a configuration
    leaves behind in the process (the C allocator's heap and thresholds, kernel caches) changes the next one's speed."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        subprocess.run([sys.executable, os.path.abspath(__file__), *child_argv(argv, name, out)], check=True)
        with open(out) as f:
            [res] = json.load(f)["results"]
    return res


def load_rows(n: int, data_dir: str | None):
    from datasets import Dataset

    from fingpt_hf.data.benchmarks import load_benchmark
    from fingpt_hf.data.prompts import format_prompt

    fpb = load_benchmark("fpb", "train", data_dir=data_dir)
    fpb = fpb.select(range(min(n, len(fpb))))
    return Dataset.from_dict({
        "prompt": [format_prompt(row) for row in fpb],
        "completion": [row["output"] for row in fpb],
    })


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--configs", default="trl-default,trl-tuned,fast,fast-compiled,fast-shared",
                        help=f"comma-separated, from: {', '.join(CONFIGS)}")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (they include compiling)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-top-layers", type=int, default=0,
                        help="LoRA on the last N layers only, for every configuration (default 0: all)")
    parser.add_argument("--lora-target-modules", default=None,
                        help="comma-separated module names LoRA wraps, for every configuration (default: all linear "
                             "layers)")
    parser.add_argument("--lora-dropout", type=float, default=0.0,
                        help="the same for every configuration (default: the CPU recipe's 0.0)")
    parser.add_argument("--use-dora", action="store_true",
                        help="DoRA instead of plain LoRA, for every configuration (the CPU recipe's since round 23); "
                             "its per-weight norms and rescaling are not in the counted FLOPs")
    parser.add_argument("--profile-steps", type=int, default=0,
                        help="after the timed steps, this many more steps recorded by torch.profiler: where their "
                             "time went (matmuls, compiled kernels, the rest) goes into each result's 'profile'")
    parser.add_argument("--data-dir", default=None, help="FinGPT data mirror (default: $FINGPT_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=False,
                        help="run each configuration in a Python process of its own (the peak is still timed here, "
                             "before and after them all)")
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument("--peak-repeats", type=int, default=10)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from fingpt_hf.families.default_model import resolve_model_path
    from fingpt_hf.hardware import cpu_description, cpu_supports_bf16

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {', '.join(CONFIGS)}")
    if args.profile_steps < 0:
        parser.error(f"--profile-steps must be 0 or more, not {args.profile_steps}")
    model_path = resolve_model_path(args.model)
    dataset = None if args.isolate else load_rows(200 * args.batch_size, args.data_dir)
    native_bf16 = cpu_supports_bf16()
    dtype = torch.bfloat16 if native_bf16 else torch.float32
    dtype_name = str(dtype).removeprefix("torch.")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu {torch.backends.cpu.get_cpu_capability()}, native bf16 {native_bf16}: computing in {dtype_name}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    peak, peak_cpu = matmul_peak_gflops(args.peak_size, args.peak_repeats, dtype)
    print(f"{dtype_name} matmul peak ({args.peak_size}^3): {peak:.1f} GFLOP/s wall, "
          f"{peak_cpu:.1f} GFLOP/s by CPU time", flush=True)

    argv = list(argv if argv is not None else sys.argv[1:])
    results = []
    for name in names:
        res = (run_isolated(name, argv) if args.isolate
               else run_config(CONFIGS[name], model_path, dataset, args, native_bf16))
        results.append(res)
        print(f"{name:15s} {res['s_per_step']:6.2f} s/step  {res['samples_per_s']:6.2f} samples/s  "
              f"{res['tokens_per_s']:7.1f} tok/s  pad {res['pad_share']:.0%}  {res['gflops']:6.1f} GFLOP/s "
              f"({res['gflops'] / peak:.0%} of the first peak) | by CPU time: {res['cpu_s_per_step']:.2f} s/step "
              f"{res['gflops_cpu']:.1f} GFLOP/s ({res['gflops_cpu'] / peak_cpu:.0%} of the first peak) | "
              f"loss {res['first_loss']:.3f}->{res['last_loss']:.3f}  [{res['note']}]", flush=True)
        if "profile" in res:
            prof = res["profile"]
            wall = prof["wall_s_per_step"]
            parts = ", ".join(f"{kind} {s:.2f} s ({s / wall:.0%})" for kind, s in prof["self_s_per_step"].items())
            print(f"{'':15s} profiled {prof['steps']} more steps: {wall:.2f} s/step; self time {parts}; the matmuls "
                  f"ran {prof['matmul_gflops_ran'] or float('nan'):.0f} GFLOP/s of their own FLOPs, "
                  f"{prof['useful_gflops_all_per_matmul_s'] or float('nan'):.0f} of the useful ones", flush=True)
    peak_after, peak_cpu_after = matmul_peak_gflops(args.peak_size, args.peak_repeats, dtype)
    print(f"{dtype_name} matmul peak again: {peak_after:.1f} GFLOP/s wall, {peak_cpu_after:.1f} by CPU time; "
          f"load {os.getloadavg()[0]:.2f}")
    # The share is against the higher of the two timings: this VM's speed drifts, and a peak timed in
    # a slow moment would flatter every share (one run here timed 212 GFLOP/s before and 410 after).
    higher = max(peak, peak_after)
    for res in results:
        with_all = ("" if res["gflops_all"] is None else
                    f"; {res['gflops_all'] / higher:.0%} with LoRA's and the attention's matmuls ({res['gflops_all']:.1f})")
        print(f"{res['name']:15s} {res['gflops'] / higher:.0%} of the higher peak ({higher:.1f} GFLOP/s){with_all}")
    ratios = {}
    for baseline in ("trl-default", "trl-tuned", "trl-compiled"):
        base = next((r for r in results if r["name"] == baseline), None)
        for res in results if base else []:
            if res is not base:
                wall = res["samples_per_s"] / base["samples_per_s"]
                ratios[f"{res['name']} vs {baseline}"] = round(wall, 3)
                print(f"speed-up {res['name']} vs {baseline}: {wall:.2f}x wall, "
                      f"{base['cpu_s_per_step'] / res['cpu_s_per_step']:.2f}x by CPU time")
    if args.output:
        from fingpt_hf.io import atomic_write_json
        from fingpt_hf.provenance import package_versions

        atomic_write_json(args.output, {
            "command": "python benchmarks/train_throughput.py " + " ".join(argv),
            "isolated": args.isolate, "pid": os.getpid(),
            # glibc's allocator settings change how often large tensors go back to the kernel (README, Speed)
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "cpu": cpu_description(),
            "compute_dtype": dtype_name,
            ("bf16_peak_gflops" if native_bf16 else "fp32_peak_gflops"): {
                "before": peak, "after": peak_after, "cpu_time_before": peak_cpu, "cpu_time_after": peak_cpu_after},
            "results": results, "speedups_samples_per_s": ratios, "versions": package_versions(),
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
