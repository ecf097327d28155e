"""What the data looks like: rows and labels per benchmark split, mixture totals, leakage.

Everything is computed from the loaded rows (nothing is hard-coded), so ``fingpt-hf data stats``
is a check of the mirror or Hub copy in use.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Mapping

import datasets

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES, BENCHMARKS, SPLITS, load_benchmark
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.leakage import LeakageReport, SplitLeakage, check_leakage
from fingpt_hf.data.mixture import FINGPT_WEIGHTS, weighted_count
from fingpt_hf.data.sources import resolve_data_dir

NOT_IN_MIRROR = "not in mirror"


def label_counts(dataset: datasets.Dataset) -> dict[str, int]:
    counts = Counter(dataset["output"])
    return {label: counts.get(label, 0) for label in LABELS}


def mixture_totals(rows: Mapping[str, int | None], weights: Mapping[str, float]) -> dict[str, Any]:
    """Rows each source contributes with ``weights`` (the same rule as ``build_mixture``)."""
    sources, left_out = {}, {}
    for name, weight in weights.items():
        if rows.get(name) is None:
            left_out[name] = "train split " + NOT_IN_MIRROR
            continue
        sources[name] = {"weight": weight, "rows_in": rows[name], "rows_out": weighted_count(rows[name], weight)}
    total = sum(s["rows_out"] for s in sources.values())
    return {"sources": sources, "left_out": left_out, "total_rows": total}


def collect_stats(
    data_dir: str | os.PathLike | None = None, weights: Mapping[str, float] = FINGPT_WEIGHTS
) -> dict[str, Any]:
    """Counts and label distributions for every benchmark split, mixture totals and leakage."""
    root = resolve_data_dir(data_dir)
    benchmarks: dict[str, dict[str, Any]] = {}
    loaded: dict[tuple[str, str], datasets.Dataset] = {}
    for name in BENCHMARK_NAMES:
        benchmarks[name] = {"title": BENCHMARKS[name].title}
        for split in SPLITS:
            try:
                rows = load_benchmark(name, split, data_dir)
            except MissingSplitError as err:
                benchmarks[name][split] = {"missing": NOT_IN_MIRROR, "reason": str(err)}
                continue
            loaded[(name, split)] = rows
            benchmarks[name][split] = {"rows": len(rows), "labels": label_counts(rows)}
    train_rows = {n: len(loaded[(n, "train")]) if (n, "train") in loaded else None for n in BENCHMARK_NAMES}
    leakage = check_leakage(
        {n: loaded[(n, "train")]["input"] for n in BENCHMARK_NAMES if (n, "train") in loaded},
        {n: loaded[(n, "test")]["input"] for n in BENCHMARK_NAMES if (n, "test") in loaded},
    )
    leakage.missing = {f"{n} train": NOT_IN_MIRROR for n in BENCHMARK_NAMES if (n, "train") not in loaded}
    return {
        "data_dir": str(root) if root is not None else None,
        "benchmarks": benchmarks,
        "mixture": {"weights": dict(weights), "seed": 42, **mixture_totals(train_rows, weights)},
        "leakage": leakage.to_dict(),
    }


def _labels_text(labels: Mapping[str, int], rows: int) -> str:
    return "  ".join(f"{label} {n} ({100 * n / rows:.1f}%)" for label, n in labels.items())


def format_stats(stats: Mapping[str, Any]) -> str:
    """The human-readable report printed by ``fingpt-hf data stats``."""
    lines = [f"data: {stats['data_dir'] or 'Hugging Face Hub'}"]
    for name, info in stats["benchmarks"].items():
        lines.append(f"{name} ({info['title']})")
        for split in SPLITS:
            part = info[split]
            if "missing" in part:
                lines.append(f"  {split}: {part['missing']}")
            else:
                note = "  (a seeded 10% of train, left out of mixtures by default)" if split == "validation" else ""
                lines.append(f"  {split}: {part['rows']} rows  {_labels_text(part['labels'], part['rows'])}{note}")
    mix = stats["mixture"]
    recipe = ", ".join(f"{n} x{w:g}" for n, w in mix["weights"].items())
    lines.append(f"training mixture ({recipe}; seed {mix['seed']}):")
    for name, s in mix["sources"].items():
        lines.append(f"  {name} train x{s['weight']:g}: {s['rows_in']} -> {s['rows_out']} rows")
    for name, why in mix["left_out"].items():
        lines.append(f"  left out {name}: {why}")
    lines.append(f"  total: {mix['total_rows']} rows")
    lines.append("leakage (test rows whose normalised text is in a train split):")
    lines += [f"  {line}" for line in leakage_lines(stats["leakage"])]
    return "\n".join(lines)


def leakage_lines(leakage: Mapping[str, Any]) -> list[str]:
    """Lines for a leakage report given as a dict (as stored in JSON reports)."""
    tests = [SplitLeakage(**t) for t in leakage["tests"]]
    return LeakageReport(**{**leakage, "tests": tests}).lines()
