"""Our runs side by side with published numbers, as a markdown or CSV table.

A run is one results file (``results.json`` of an eval output directory, or one data set's
``result.json``), read through :func:`fingpt_hf.evaluation.results.load_results`, which rejects a
missing file or an unknown schema version and names the file. Published rows come from
:mod:`fingpt_hf.evaluation.published`. Values are fractions in memory and shown x100.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.published import PUBLISHED_METRICS, PublishedModel, PublishedSource, load_published
from fingpt_hf.evaluation.results import load_results

METRICS: tuple[str, ...] = PUBLISHED_METRICS  # accuracy, f1_macro, f1_weighted
FORMATS: tuple[str, ...] = ("markdown", "csv")
METRIC_TITLES: dict[str, str] = {"accuracy": "Acc", "f1_macro": "F1 macro", "f1_weighted": "F1 weighted"}
BENCHMARK_TITLES: dict[str, str] = {"fpb": "FPB", "fiqa": "FiQA-SA", "tfns": "TFNS", "nwgi": "NWGI"}


@dataclass(frozen=True)
class ScoreRow:
    """One line of a comparison: a run of ours or a published model.

    ``origin`` is ``"run"``, ``"seed"`` or ``"published"``; ``location`` is the results file for
    a run and the source label(s) for a published row; ``scores[benchmark][metric]`` is a fraction.
    """

    name: str
    origin: str
    location: str
    scores: dict[str, dict[str, float]]
    sources: tuple[PublishedSource, ...] = ()


def run_name(aggregate: dict[str, Any], path: Path) -> str:
    """A run's display name: its adapter if it has one, else its model, else the ``run`` block's name."""
    first = next(iter(aggregate["results"].values()), {})
    for key in ("adapter", "model"):
        entry = first.get(key)
        if isinstance(entry, dict) and entry.get("name_or_path"):
            return str(entry["name_or_path"])
    run = aggregate.get("run") or {}
    return str(run.get("name") or path.parent.name or path.name)


def load_run(path: str | os.PathLike) -> ScoreRow:
    """Read one results file or eval output directory into a :class:`ScoreRow`."""
    given = Path(path)
    if not given.exists():
        raise FinGPTError(f"{given}: no such results file or directory")
    aggregate = load_results(given)
    file_path = given / "results.json" if given.is_dir() else given
    scores: dict[str, dict[str, float]] = {}
    for name, result in aggregate["results"].items():
        metrics = result["metrics"]
        scores[name] = {}
        for metric in METRICS:
            value = metrics.get(metric)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise FinGPTError(f"{file_path} (results.{name}): metrics.{metric} is {value!r}, not a fraction in [0, 1]")
            scores[name][metric] = float(value)
    return ScoreRow(name=run_name(aggregate, file_path), origin="run", location=str(given), scores=scores)


def published_rows(path: str | os.PathLike | None = None) -> list[ScoreRow]:
    """The published rows (FinGPT README, seed) as :class:`ScoreRow`."""
    return [_published_row(model) for model in load_published(path)]


def _published_row(model: PublishedModel) -> ScoreRow:
    return ScoreRow(
        name=model.name,
        origin=model.origin,
        location="; ".join(model.source_labels()),
        scores=model.scores,
        sources=tuple(dict.fromkeys(model.sources.values())),
    )


def benchmark_order(rows: Iterable[ScoreRow]) -> list[str]:
    """FinGPT's four benchmarks first (those any row has), then other data sets by name."""
    seen = {name for row in rows for name in row.scores}
    return [b for b in BENCHMARK_NAMES if b in seen] + sorted(seen - set(BENCHMARK_NAMES))


def benchmark_title(name: str) -> str:
    return BENCHMARK_TITLES.get(name, name)


def format_value(value: float | None) -> str:
    """A fraction shown x100 with two decimals; ``-`` when the row has no such number."""
    return "-" if value is None else f"{100 * value:.2f}"


def check_metrics(metrics: Sequence[str]) -> list[str]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise FinGPTError(f"--metric {unknown[0]!r} is not one of {', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def compare_table(
    rows: Sequence[ScoreRow],
    metrics: Sequence[str] = METRICS,
    benchmarks: Sequence[str] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells: one line per row, one column per (benchmark, metric)."""
    metrics = check_metrics(metrics)
    benchmarks = list(benchmarks) if benchmarks is not None else benchmark_order(rows)
    headers = ["Model", "Origin", "Source"]
    headers += [f"{benchmark_title(b)} {METRIC_TITLES[m]}" for b in benchmarks for m in metrics]
    cells = []
    for row in rows:
        line = [row.name, row.origin, row.location]
        line += [format_value(row.scores.get(b, {}).get(m)) for b in benchmarks for m in metrics]
        cells.append(line)
    return headers, cells


def _is_number(text: str) -> bool:
    if text == "-":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "markdown") -> str:
    """A GitHub-flavoured markdown table or RFC 4180 CSV (with a header line)."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt != "markdown":
        raise FinGPTError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(_markdown_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def source_notes(rows: Iterable[ScoreRow]) -> str:
    """Markdown lines naming each published source (URL and table), for under a table."""
    sources = dict.fromkeys(s for row in rows for s in row.sources)
    lines = []
    for source in sources:
        where = f"<{source.url}>" if source.url else "no public URL"
        lines.append(f"- {source.label}: {source.title}, {where}; {source.table}.")
    return ("\nSources of published rows:\n\n" + "\n".join(lines) + "\n") if lines else ""


def render_comparison(
    results: Sequence[str | os.PathLike],
    metrics: Sequence[str] = METRICS,
    fmt: str = "markdown",
    include_published: bool = True,
    published_path: str | os.PathLike | None = None,
) -> str:
    """The whole ``fingpt-hf compare`` output for these results files."""
    rows = [load_run(path) for path in results]
    if include_published:
        rows += published_rows(published_path)
    if not rows:
        raise FinGPTError("nothing to compare: give results files or keep the published rows")
    headers, cells = compare_table(rows, metrics)
    text = render_table(headers, cells, fmt)
    if fmt == "markdown":
        text += "\nValues x100.\n" + source_notes(rows)
    return text
