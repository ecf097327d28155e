"""TF-IDF + logistic regression: the floor every fine-tuned LLM should clear.

Trained on the train splits the FinGPT mixture is built from (FPB, FiQA-SA, TFNS; NWGI's train
split is not in the offline mirror, so it is used only when it loads), evaluated on the four
FinGPT test splits. Each train row counts once by default; ``--sample-weights fingpt`` weights
rows by FinGPT's repeat counts (FPB x6, FiQA x21, TFNS x2, NWGI x1), which for logistic
regression is the same as training on the repeated mixture.

Writes a standard eval output directory (``DIR/NAME/result.json``, ``DIR/NAME/predictions.jsonl``,
``DIR/results.json``, ``DIR/results.md``) with model name ``tfidf-logreg``, so ``fingpt-hf compare``
and ``fingpt-hf leaderboard`` read it like any run, and prints the comparison table.

The regularisation ``C`` is chosen on validation rows, never on test: each value of ``--c`` is fit
on the train splits less their validation slices and scored on those slices (mean weighted F1);
the best is then fit on the whole train splits and evaluated on the test sets once. Every tried
value and its validation figures are recorded in ``results.json`` (``run.c_selection``).

    python benchmarks/tfidf_baseline.py [--output-dir benchmarks/results/tfidf_logreg]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import datasets
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES, dataset_reference, load_benchmark, load_train_rows
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.mixture import FINGPT_WEIGHTS
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.compare import render_comparison
from fingpt_hf.evaluation.results import PREDICTIONS_FILE, RESULTS_SCHEMA_VERSION, write_predictions, write_result
from fingpt_hf.metrics.scores import compute_sentiment_metrics

MODEL_NAME = "tfidf-logreg"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "tfidf_logreg"
SAMPLE_WEIGHTS = ("none", "fingpt")
# Word uni+bigrams with sublinear tf; the L2 penalty's C is chosen on validation (``--c``).
VECTORIZER = {"ngram_range": (1, 2), "sublinear_tf": True}
CLASSIFIER = {"max_iter": 2000}
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    out = {}
    for package in ("fingpt-hf", "scikit-learn", "datasets", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def _limit(ds: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    return ds.select(range(min(limit, len(ds)))) if limit is not None else ds


def load_training(names: list[str], data_dir: str | None, limit: int | None, exclude_validation: bool = False,
                  quiet: bool = False) -> tuple[datasets.Dataset, list[str]]:
    """Concatenated train rows of ``names`` (less their validation rows when ``exclude_validation``);
    a split that is not available is skipped and reported."""
    parts, used = [], []
    for name in names:
        try:
            parts.append(_limit(load_train_rows(name, data_dir, exclude_validation=exclude_validation), limit))
            used.append(name)
        except MissingSplitError as err:
            if not quiet:
                print(f"note: {name} train skipped: {err}", file=sys.stderr)
    if not parts:
        raise FinGPTError("no training split could be loaded")
    return datasets.concatenate_datasets(parts), used


def build_model(seed: int, c: float) -> Pipeline:
    return Pipeline([
        ("tfidf", TfidfVectorizer(**VECTORIZER)),
        ("logreg", LogisticRegression(random_state=seed, C=c, **CLASSIFIER)),
    ])


def _weights(rows: datasets.Dataset, sample_weights: str) -> list[float] | None:
    return [float(FINGPT_WEIGHTS[name]) for name in rows["dataset"]] if sample_weights == "fingpt" else None


def choose_c(args: argparse.Namespace) -> tuple[float, dict[str, dict[str, float]]]:
    """The ``C`` with the best mean validation weighted F1, and every tried value's figures."""
    if len(args.c) == 1:
        return args.c[0], {}
    train, used = load_training(args.train, args.data_dir, args.limit, exclude_validation=True, quiet=True)
    validation = {name: _limit(load_benchmark(name, "validation", args.data_dir), args.limit) for name in used}
    tried: dict[str, dict[str, float]] = {}
    for c in args.c:
        model = build_model(args.seed, c)
        model.fit(train["input"], train["output"], logreg__sample_weight=_weights(train, args.sample_weights))
        figures = {name: compute_sentiment_metrics([str(p) for p in model.predict(rows["input"])],
                                                   rows["output"])["f1_weighted"]
                   for name, rows in validation.items()}
        figures["mean"] = sum(figures.values()) / len(validation)
        tried[str(c)] = figures
        print(f"C={c}: validation weighted F1 " + ", ".join(f"{k} {100 * v:.2f}" for k, v in figures.items()),
              file=sys.stderr)
    best = max(args.c, key=lambda c: tried[str(c)]["mean"])
    return best, tried


def make_result(name: str, rows: datasets.Dataset, predictions: list[str], seconds: float,
                seed: int, started_at: str) -> dict[str, Any]:
    """A schema-1 result; the classifier has no prompt or answer parser, so those are null."""
    reference = dataset_reference(name)
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "model": {"name_or_path": MODEL_NAME, "revision": None, "hash": None},
        "adapter": None,
        "dataset": name,
        "dataset_id": reference["dataset_id"],
        "dataset_config": reference["dataset_config"],
        "split": "test",
        "num_rows": len(rows),
        "mode": "score",
        "parser": None,
        "prompt_style": None,
        "metrics": compute_sentiment_metrics(predictions, rows["output"]),
        "examples_per_second": len(rows) / seconds if seconds > 0 else 0.0,
        "seed": seed,
        "versions": _versions(),
        "started_at": started_at,
        "finished_at": _now(),
    }


def run(args: argparse.Namespace) -> Path:
    output_dir = Path(args.output_dir)
    c, tried = choose_c(args)
    train, used = load_training(args.train, args.data_dir, args.limit)
    model = build_model(args.seed, c)
    start = time.perf_counter()
    model.fit(train["input"], train["output"], logreg__sample_weight=_weights(train, args.sample_weights))
    fit_seconds = time.perf_counter() - start
    run_info = {
        "name": MODEL_NAME,
        "kind": "baseline",
        "script": "benchmarks/tfidf_baseline.py",
        "train": {"datasets": used, "rows": len(train), "sample_weights": args.sample_weights,
                  "limit_per_dataset": args.limit, "fit_seconds": round(fit_seconds, 3)},
        "vectorizer": {k: list(v) if isinstance(v, tuple) else v for k, v in VECTORIZER.items()},
        "classifier": {"type": "LogisticRegression", "C": c, **CLASSIFIER},
        "c_selection": {"chosen_on": "mean validation weighted F1 (train less validation rows)",
                        "tried": tried, "chosen": c} if tried else None,
    }
    for name in args.datasets:
        started_at = _now()
        rows = _limit(load_benchmark(name, "test", args.data_dir), args.limit)
        start = time.perf_counter()
        predictions = [str(p) for p in model.predict(rows["input"])]
        seconds = time.perf_counter() - start
        result = make_result(name, rows, predictions, seconds, args.seed, started_at)
        if args.predictions:
            write_predictions(output_dir / name / PREDICTIONS_FILE, [
                {"index": i, "text": text, "gold": gold, "raw_answer": pred, "prediction": pred}
                for i, (text, gold, pred) in enumerate(zip(rows["input"], rows["output"], predictions))
            ])
        write_result(output_dir, result, run=run_info)
    return output_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT), help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--data-dir", default=None, help="FinGPT data mirror (default: $FINGPT_DATA_DIR, else the Hub)")
    parser.add_argument("--train", default=",".join(BENCHMARK_NAMES),
                        help="comma-separated train splits (default: all four; NWGI is skipped when unavailable)")
    parser.add_argument("--datasets", default=",".join(BENCHMARK_NAMES), help="comma-separated test splits")
    parser.add_argument("--sample-weights", choices=SAMPLE_WEIGHTS, default="none",
                        help="none: each train row once (default); fingpt: FinGPT's mixture repeat counts")
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split (for quick checks)")
    parser.add_argument("--c", default=",".join(str(c) for c in C_GRID),
                        help="comma-separated values of LogisticRegression's C; several: chosen on validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-predictions", dest="predictions", action="store_false",
                        help="do not write predictions.jsonl files")
    args = parser.parse_args(argv)
    for option in ("train", "datasets"):
        names = [n.strip() for n in getattr(args, option).split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARK_NAMES]
        if unknown or not names:
            parser.error(f"--{option}: {unknown or names!r} not in {', '.join(BENCHMARK_NAMES)}")
        setattr(args, option, names)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    try:
        args.c = [float(c) for c in args.c.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--c {args.c!r}: comma-separated numbers, e.g. 1,10")
    if not args.c or any(c <= 0 for c in args.c):
        parser.error("--c: values must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        output_dir = run(args)
        print(render_comparison([output_dir], metrics=("accuracy", "f1_macro", "f1_weighted")))
    except FinGPTError as err:
        print(f"tfidf_baseline: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
