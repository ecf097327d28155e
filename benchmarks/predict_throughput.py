#!/usr/bin/env python
"""`fingpt-hf predict` throughput: score mode, generate mode and (given a server) the vLLM backend
side by side on the same rows.

The rows are TFNS texts without their labels (the test split first, then train, for runs past
its 2,388 rows), written to a JSONL file; each mode runs the
whole command path (``run_prediction``: validation pass, chunks, durable chunk files, final
output) with one model loaded once for both. Each mode first labels one untimed batch (one-off
costs such as allocating kernel work buffers are not throughput). Reported per mode: rows/s of
the model's work (``PredictionSummary.seconds``) and rows/s end to end (reading, hashing and
writing included), and the score/generate ratio of each. ``vllm-score`` / ``vllm-generate`` run
the same command path through ``--backend vllm`` against ``--vllm-url`` (a ``vllm serve`` of the
same model; see the README), and report their label agreement with our transformers modes.

    python benchmarks/predict_throughput.py --rows 200 --json predict_throughput.json
    python benchmarks/predict_throughput.py --rows 10000 --modes score --json predict_10k.json
    python benchmarks/predict_throughput.py --modes score,vllm-score --vllm-url http://127.0.0.1:8000 --vllm-model BASE
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--rows", type=int, default=200, help="TFNS texts: test rows, then train rows (11,931 in all)")
    parser.add_argument("--modes", default="score,generate",
                        help="comma-separated: score, generate, vllm-score, vllm-generate")
    parser.add_argument("--vllm-url", default=None, help="a running `vllm serve` (for the vllm-* modes)")
    parser.add_argument("--vllm-model", default=None, help="the served model name (default: --model)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)

    import torch

    from fingpt_hf.data.benchmarks import load_benchmark
    from fingpt_hf.evaluation.model_loading import inspect_sources, load_model
    from fingpt_hf.prediction import PredictConfig, predict_texts, run_prediction
    from fingpt_hf.provenance import now_iso, package_versions

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("score", "generate", "vllm-score", "vllm-generate")]
    if unknown or not modes:
        parser.error(f"--modes: unknown {unknown or modes}")
    if any(m.startswith("vllm-") for m in modes) and not args.vllm_url:
        parser.error("the vllm-* modes need --vllm-url (a running `vllm serve`)")
    texts = list(load_benchmark("tfns", "test")["input"])
    if args.rows > len(texts):
        texts += load_benchmark("tfns", "train")["input"]
    texts = texts[:args.rows]
    started = time.perf_counter()
    source_info = inspect_sources(args.model, args.adapter)
    loaded = load_model(source_info, args.dtype, args.device) if any(not m.startswith("vllm-") for m in modes) else None
    load_seconds = time.perf_counter() - started
    served = None
    if args.vllm_url:
        from fingpt_hf.evaluation.vllm_backend import connect

        served = connect(source_info, args.vllm_url, args.vllm_model or args.model, False)
    where = f"dtype {loaded.dtype}, device {loaded.device}, " if loaded is not None else ""
    print(f"model {args.model}{' + ' + args.adapter if args.adapter else ''}, TFNS first {len(texts)} rows, "
          f"{where}batch {args.batch_size}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report = {"model": args.model, "adapter": args.adapter, "rows": len(texts), "batch_size": args.batch_size,
              "chunk_size": args.chunk_size, "max_new_tokens": args.max_new_tokens,
              "dtype": str(loaded.dtype).replace("torch.", "") if loaded is not None else None,
              "device": str(loaded.device) if loaded is not None else None, "model_load_seconds": load_seconds,
              "threads": torch.get_num_threads(), "started_at": now_iso(), "modes": {},
              "command": "python benchmarks/predict_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    labels_of: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "tfns.jsonl"
        source.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        for mode in modes:
            vllm = mode.startswith("vllm-")
            backend = {"backend": "vllm", "vllm_url": args.vllm_url, "vllm_model": args.vllm_model or args.model} \
                if vllm else {}
            config = PredictConfig(model=args.model, adapter=args.adapter, input=str(source),
                                   output=str(Path(tmp) / f"{mode}.jsonl"), mode=mode.removeprefix("vllm-"),
                                   batch_size=args.batch_size, chunk_size=args.chunk_size,
                                   max_new_tokens=args.max_new_tokens, dtype=args.dtype, device=args.device,
                                   prompt_style="fingpt", **backend)
            model = served if vllm else loaded
            predict_texts(model, config, texts[:args.batch_size])  # untimed warm-up batch
            start = time.perf_counter()
            summary = run_prediction(config, echo=lambda message: None, loaded=model)
            wall = time.perf_counter() - start
            # JSON Lines ends records at "\n" only; str.splitlines would also cut at U+2028 inside a tweet.
            lines = Path(config.output).read_text(encoding="utf-8").split("\n")
            labels = [json.loads(line)["label"] for line in lines if line]
            labels_of[mode] = labels
            report["modes"][mode] = {
                "rows_per_second": summary.rows_per_second, "rows_per_second_end_to_end": len(texts) / wall,
                "model_seconds": summary.seconds, "wall_seconds": wall,
                "label_counts": {label: labels.count(label) for label in sorted(set(labels))},
            }
            print(f"{mode:>14}: {summary.rows_per_second:8.2f} rows/s (model), {len(texts) / wall:8.2f} rows/s "
                  f"end to end ({wall:.1f} s), labels {report['modes'][mode]['label_counts']}")
    for ours in ("score", "generate"):
        theirs = f"vllm-{ours}"
        if ours in labels_of and theirs in labels_of:
            same = sum(a == b for a, b in zip(labels_of[ours], labels_of[theirs]))
            report[f"{theirs}_agreement"] = same / len(texts)
            report[f"{theirs}_over_{ours}"] = (report["modes"][theirs]["rows_per_second"]
                                               / report["modes"][ours]["rows_per_second"])
            print(f"{theirs} vs {ours}: {same}/{len(texts)} labels agree, "
                  f"{report[f'{theirs}_over_{ours}']:.2f}x rows/s")
    if "score" in report["modes"] and "generate" in report["modes"]:
        score, generate = report["modes"]["score"], report["modes"]["generate"]
        report["score_over_generate"] = score["rows_per_second"] / generate["rows_per_second"]
        report["score_over_generate_end_to_end"] = (score["rows_per_second_end_to_end"]
                                                    / generate["rows_per_second_end_to_end"])
        print(f"score / generate: {report['score_over_generate']:.2f}x (model), "
              f"{report['score_over_generate_end_to_end']:.2f}x end to end")
    report["versions"] = package_versions()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
