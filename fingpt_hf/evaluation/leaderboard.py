"""A leaderboard over every ``results.json`` under a directory, ranked like a Hub leaderboard.

Ranking: by default the mean of one metric (F1 weighted) over the benchmarks each run has.
A run missing a benchmark is averaged over the ones it has, so its mean is not comparable
one-for-one with a complete run's; the ``Benchmarks`` column shows how many each run covers
(``3/4``), and ``require_all=True`` drops runs that lack any of the listed benchmarks.
Sorting by one benchmark puts runs without it last. Ties break by name, then path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.compare import (
    METRIC_TITLES,
    METRICS,
    ScoreRow,
    benchmark_order,
    benchmark_title,
    format_value,
    load_run,
    published_rows,
    render_table,
    source_notes,
)
from fingpt_hf.evaluation.results import AGGREGATE_FILE

MEAN = "mean"


@dataclass(frozen=True)
class RankedRow:
    rank: int
    row: ScoreRow
    mean: float | None
    path: str


def find_results(directory: str | os.PathLike) -> list[Path]:
    """Every ``results.json`` under ``directory`` (recursively), sorted by path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FinGPTError(f"{directory}: not a directory")
    return sorted(p for p in directory.rglob(AGGREGATE_FILE) if p.is_file())


def mean_score(row: ScoreRow, metric: str, benchmarks: Sequence[str]) -> float | None:
    """Mean of ``metric`` over the listed benchmarks this row has; ``None`` when it has none."""
    values = [row.scores[b][metric] for b in benchmarks if metric in row.scores.get(b, {})]
    return sum(values) / len(values) if values else None


def rank_rows(
    rows: Sequence[ScoreRow],
    metric: str = "f1_weighted",
    sort_by: str = MEAN,
    benchmarks: Sequence[str] | None = None,
    require_all: bool = False,
    paths: Sequence[str] | None = None,
) -> list[RankedRow]:
    """Sort rows best first by the mean (``sort_by="mean"``) or one benchmark's ``metric``."""
    if metric not in METRICS:
        raise FinGPTError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
    benchmarks = list(benchmarks) if benchmarks is not None else benchmark_order(rows)
    if sort_by != MEAN and sort_by not in benchmarks:
        raise FinGPTError(f"--sort-by {sort_by!r}: choose {MEAN} or one of {', '.join(benchmarks) or '(no data sets)'}")
    paths = list(paths) if paths is not None else [row.location for row in rows]
    entries = []
    for row, path in zip(rows, paths):
        if require_all and any(metric not in row.scores.get(b, {}) for b in benchmarks):
            continue
        mean = mean_score(row, metric, benchmarks)
        key = mean if sort_by == MEAN else row.scores.get(sort_by, {}).get(metric)
        entries.append((key is None, -(key or 0.0), row.name, path, row, mean))
    entries.sort(key=lambda e: e[:4])
    return [RankedRow(rank=i + 1, row=e[4], mean=e[5], path=e[3]) for i, e in enumerate(entries)]


def leaderboard_table(
    ranked: Sequence[RankedRow], metric: str, benchmarks: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells: rank, model, mean, one column per benchmark, coverage, origin, path."""
    title = METRIC_TITLES[metric]
    headers = ["Rank", "Model", f"Mean {title}"] + [f"{benchmark_title(b)} {title}" for b in benchmarks]
    headers += ["Benchmarks", "Origin", "Path"]
    cells = []
    for entry in ranked:
        scores = entry.row.scores
        have = sum(metric in scores.get(b, {}) for b in benchmarks)
        line = [str(entry.rank), entry.row.name, format_value(entry.mean)]
        line += [format_value(scores.get(b, {}).get(metric)) for b in benchmarks]
        line += [f"{have}/{len(benchmarks)}", entry.row.origin, entry.path]
        cells.append(line)
    return headers, cells


def render_leaderboard(
    directory: str | os.PathLike,
    fmt: str = "markdown",
    metric: str = "f1_weighted",
    sort_by: str = MEAN,
    require_all: bool = False,
    include_published: bool = False,
    warn: Callable[[str], None] | None = None,
) -> str:
    """The whole ``fingpt-hf leaderboard`` output for ``directory``.

    One unreadable results file (corrupt, another schema) must not hide every other run: it is
    reported through ``warn`` (default: stderr) and, in markdown, under the table, and the rest
    are ranked. Only when no file is readable is it an error.
    """
    warn = warn or (lambda line: print(line, file=sys.stderr))
    directory = Path(directory)
    files = find_results(directory)
    rows, paths, unreadable = [], [], []
    for path in files:
        try:
            rows.append(load_run(path))
        except FinGPTError as err:
            unreadable.append(str(err))
            warn(f"leaderboard: not ranked: {err}")
            continue
        paths.append(str(path.relative_to(directory)))
    if unreadable and not rows:
        raise FinGPTError(f"{directory}: no readable {AGGREGATE_FILE}: " + "; ".join(unreadable))
    if include_published:
        extra = published_rows()
        rows += extra
        paths += [row.location for row in extra]
    if not rows:
        raise FinGPTError(f"{directory}: no {AGGREGATE_FILE} found (searched recursively)")
    benchmarks = benchmark_order(rows)
    ranked = rank_rows(rows, metric, sort_by, benchmarks, require_all, paths)
    headers, cells = leaderboard_table(ranked, metric, benchmarks)
    text = render_table(headers, cells, fmt)
    if fmt == "markdown":
        basis = "the mean over the benchmarks each run has" if sort_by == MEAN else f"{benchmark_title(sort_by)}"
        text += (f"\nRanked by {basis} ({METRIC_TITLES[metric]}, x100); 'Benchmarks' is how many of the "
                 f"{len(benchmarks)} data sets a run covers.\n")
        text += source_notes(entry.row for entry in ranked)
        if unreadable:
            text += "\nNot ranked (unreadable results files):\n\n" + "".join(f"- {e}\n" for e in unreadable)
    return text
