#!/usr/bin/env python
"""Evaluation throughput, side by side on the same model and examples:

* ``fingpt``: FinGPT_Benchmark's loop (its prompt, left padding, batch 8,
  ``generate(max_length=512, eos_token_id=eos)``, answer after ``"Answer: "``, ``change_target``);
* ``generate``: our generate mode (stops at newline/EOS, ``--max-new-tokens``, strict parser);
* ``score``: our label scoring (one forward pass per example, shared instruction encoded once).

Each mode first runs one untimed batch (one-off costs such as allocating the kernels' work
buffers are not throughput). Prints examples/s, speed ratios, accuracy, and the share of a timed matmul peak (in the model's
dtype) that score mode reaches. FLOPs counted for score mode: 2 x (parameters without the
embedding table) x (real tokens processed, padding excluded) + 2 x hidden x vocab per scored
position; the ``naive`` figure uses 2 x all parameters x tokens as a rough cross-check.

    python benchmarks/eval_throughput.py --limit 128
    python benchmarks/eval_throughput.py --adapter runs/smollm2-lora --limit 128
    python benchmarks/eval_throughput.py --limit 128 --output benchmarks/results/eval_throughput/cpu_fpb128.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def matmul_peak(dtype, n: int = 2048, repeats: int = 8) -> float:
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def fingpt_style(model, tokenizer, prompts, batch_size: int) -> list[str]:
    """FinGPT_Benchmark/benchmarks/fpb.py's loop, on our model object."""
    import torch

    from fingpt_hf.metrics.parsing import fingpt_change_target

    tokenizer.padding_side = "left"
    out = []
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            tokens = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True, max_length=512,
                               return_token_type_ids=False).to(model.device)
            res = model.generate(**tokens, max_length=512, eos_token_id=tokenizer.eos_token_id, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            sentences = [tokenizer.decode(r, skip_special_tokens=True) for r in res]
            out += [fingpt_change_target(s.split("Answer: ")[1]) for s in sentences]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--dataset", default="fpb")
    parser.add_argument("--limit", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="our modes (default 32)")
    parser.add_argument("--fingpt-batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--skip-fingpt", action="store_true", help="skip the (slow) FinGPT-style loop")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from fingpt_hf.data.benchmarks import load_benchmark
    from fingpt_hf.data.labels import LABELS
    from fingpt_hf.data.prompts import format_prompt
    from fingpt_hf.evaluation.generation import generate_answers
    from fingpt_hf.evaluation.model_loading import inspect_sources, load_model
    from fingpt_hf.evaluation.scoring import pick_labels, score_labels, shared_prefix_length, tokenize_labels
    from fingpt_hf.metrics.parsing import parse_answer

    rows = load_benchmark(args.dataset, "test").select(range(args.limit))
    gold = rows["output"]
    loaded = load_model(inspect_sources(args.model, args.adapter), args.dtype, None)
    model, tokenizer = loaded.model, loaded.tokenizer
    prompts = [format_prompt(r) for r in rows]
    print(f"model {args.model}{' + ' + args.adapter if args.adapter else ''}, {args.dataset} first {len(rows)} rows, "
          f"dtype {loaded.dtype}, device {loaded.device}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    def timed(fn):
        start = time.perf_counter()
        preds = fn()
        return preds, len(rows) / (time.perf_counter() - start)

    def accuracy(preds):
        return sum(p == g for p, g in zip(preds, gold)) / len(gold)

    modes = {
        "fingpt": lambda p: fingpt_style(model, tokenizer, p, args.fingpt_batch_size),
        "generate": lambda p: [parse_answer(a, "strict") for a in generate_answers(
            model, tokenizer, p, args.batch_size, args.max_new_tokens)],
        "score": lambda p: pick_labels(score_labels(model, tokenizer, p, LABELS, args.batch_size), LABELS),
    }
    if args.skip_fingpt:
        del modes["fingpt"]
    report = {}
    for name, run in modes.items():
        run(prompts[:args.fingpt_batch_size if name == "fingpt" else args.batch_size])  # untimed warm-up batch
        report[name] = timed(lambda: run(prompts))

    items = tokenize_labels(tokenizer, prompts, LABELS)
    prefix = shared_prefix_length(items)
    tokens = prefix + sum(len(it.context) - prefix for it in items)
    config = model.config
    embed_w, head_w = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    body = sum(p.numel() for p in model.parameters() if p is not embed_w and p is not head_w)
    head = config.hidden_size * config.vocab_size
    params = body + embed_w.numel()  # the published parameter count (tied head)
    flops_per_example = (2 * body * tokens + 2 * head * len(items)) / len(items)
    peak = matmul_peak(loaded.dtype if loaded.device.type == "cpu" else torch.float32)

    base = report.get("fingpt", report["generate"])[1]
    print(f"{'mode':<10}{'ex/s':>9}{'x vs fingpt' if 'fingpt' in report else 'x vs generate':>15}{'accuracy':>10}")
    for name, (preds, speed) in report.items():
        print(f"{name:<10}{speed:>9.2f}{speed / base:>15.1f}{100 * accuracy(preds):>10.2f}")
    speed = report["score"][1]
    naive_share = 2 * params * sum(len(it.context) for it in items) / len(items) * speed / peak
    print(f"score vs our generate: {speed / report['generate'][1]:.1f}x")
    print(f"matmul peak ({str(loaded.dtype).replace('torch.', '')}, 2048^3): {peak / 1e9:.1f} GFLOPS; score mode "
          f"{flops_per_example * speed / 1e9:.1f} GFLOPS = {100 * flops_per_example * speed / peak:.0f}% of peak "
          f"({tokens / len(items):.1f} tokens/example after the {prefix}-token shared prefix; naive 2 x params x "
          f"full prompt tokens: {100 * naive_share:.0f}%)")
    if args.output:
        from fingpt_hf.io import atomic_write_json
        from fingpt_hf.provenance import package_versions

        atomic_write_json(args.output, {
            "command": "python benchmarks/eval_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "model": args.model, "adapter": args.adapter, "dataset": args.dataset, "rows": len(rows),
            "dtype": str(loaded.dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "matmul_peak_gflops": peak / 1e9, "score_gflops": flops_per_example * speed / 1e9,
            "score_share_of_peak": flops_per_example * speed / peak, "naive_score_share_of_peak": naive_share,
            "tokens_per_example_after_shared_prefix": tokens / len(items), "shared_prefix_tokens": prefix,
            "modes": {name: {"examples_per_s": ex_s, "accuracy": accuracy(preds)}
                      for name, (preds, ex_s) in report.items()},
            "versions": package_versions(),
        })


if __name__ == "__main__":
    main()
