#!/usr/bin/env python
"""`fingpt-hf predict` throughput: score mode and generate mode side by side on the same rows.

The rows are TFNS test texts without their labels, written to a JSONL file; each mode runs the
whole command path (``run_prediction``: validation pass, chunks, durable chunk files, final
output) with one model loaded once for both. Each mode first labels one untimed batch (one-off
costs such as allocating kernel work buffers are not throughput). Reported per mode: rows/s of
the model's work (``PredictionSummary.seconds``) and rows/s end to end (reading, hashing and
writing included), and the score/generate ratio of each.

    python benchmarks/predict_throughput.py --rows 200 --json predict_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--rows", type=int, default=200, help="TFNS test rows (2,388 at most)")
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

    rows = load_benchmark("tfns", "test")
    texts = rows.select(range(min(args.rows, len(rows))))["input"]
    loaded = load_model(inspect_sources(args.model, args.adapter), args.dtype, args.device)
    print(f"model {args.model}{' + ' + args.adapter if args.adapter else ''}, TFNS test first {len(texts)} rows, "
          f"dtype {loaded.dtype}, device {loaded.device}, batch {args.batch_size}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report = {"model": args.model, "adapter": args.adapter, "rows": len(texts), "batch_size": args.batch_size,
              "chunk_size": args.chunk_size, "max_new_tokens": args.max_new_tokens,
              "dtype": str(loaded.dtype).replace("torch.", ""), "device": str(loaded.device),
              "threads": torch.get_num_threads(), "started_at": now_iso(), "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "tfns.jsonl"
        source.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        for mode in ("score", "generate"):
            config = PredictConfig(model=args.model, adapter=args.adapter, input=str(source),
                                   output=str(Path(tmp) / f"{mode}.jsonl"), mode=mode, batch_size=args.batch_size,
                                   chunk_size=args.chunk_size, max_new_tokens=args.max_new_tokens, dtype=args.dtype,
                                   device=args.device, prompt_style="fingpt")
            predict_texts(loaded, config, texts[:args.batch_size])  # untimed warm-up batch
            start = time.perf_counter()
            summary = run_prediction(config, echo=lambda message: None, loaded=loaded)
            wall = time.perf_counter() - start
            labels = [json.loads(line)["label"] for line in Path(config.output).read_text(encoding="utf-8").splitlines()]
            report["modes"][mode] = {
                "rows_per_second": summary.rows_per_second, "rows_per_second_end_to_end": len(texts) / wall,
                "model_seconds": summary.seconds, "wall_seconds": wall,
                "label_counts": {label: labels.count(label) for label in sorted(set(labels))},
            }
            print(f"{mode:>8}: {summary.rows_per_second:8.2f} rows/s (model), {len(texts) / wall:8.2f} rows/s "
                  f"end to end, labels {report['modes'][mode]['label_counts']}")
    score, generate = report["modes"]["score"], report["modes"]["generate"]
    report["score_over_generate"] = score["rows_per_second"] / generate["rows_per_second"]
    report["score_over_generate_end_to_end"] = score["rows_per_second_end_to_end"] / generate["rows_per_second_end_to_end"]
    report["versions"] = package_versions()
    print(f"score / generate: {report['score_over_generate']:.2f}x (model), "
          f"{report['score_over_generate_end_to_end']:.2f}x end to end")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
