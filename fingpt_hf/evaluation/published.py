"""Published sentiment numbers (FinGPT's README, the seed replication), loaded as fractions.

The numbers live in ``published_results.yaml`` next to this module, copied exactly as each
source prints them, with the source's URL and table, so a reader can check every value. Each
entry says its ``scale`` (``fraction`` or ``percent``); we convert to fractions on load so
published rows and our results files use one unit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fingpt_hf.errors import FinGPTError

PUBLISHED_METRICS: tuple[str, ...] = ("accuracy", "f1_macro", "f1_weighted")
SCALES: dict[str, float] = {"fraction": 1.0, "percent": 100.0}
ORIGINS: tuple[str, ...] = ("published", "seed")
DEFAULT_PUBLISHED_PATH = Path(__file__).with_name("published_results.yaml")


@dataclass(frozen=True)
class PublishedSource:
    """Where a number comes from: a short label for tables, plus the URL and table to check it."""

    key: str
    label: str
    title: str
    url: str | None
    table: str


@dataclass(frozen=True)
class PublishedModel:
    """One published row; ``scores[benchmark][metric]`` is a fraction in [0, 1]."""

    name: str
    model: str | None
    origin: str
    scores: dict[str, dict[str, float]]
    sources: dict[str, PublishedSource] = field(default_factory=dict)  # metric -> source

    def source_labels(self) -> list[str]:
        """The distinct source labels of this row, in metric order."""
        return list(dict.fromkeys(s.label for s in self.sources.values()))


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise FinGPTError(f"{where}: missing required field {key!r}")
    return mapping[key]


def _load_sources(raw: Any, where: str) -> dict[str, PublishedSource]:
    if not isinstance(raw, dict) or not raw:
        raise FinGPTError(f"{where}: 'sources' must be a non-empty mapping")
    out = {}
    for key, entry in raw.items():
        at = f"{where}: sources.{key}"
        out[key] = PublishedSource(
            key=key,
            label=str(_require(entry, "label", at)),
            title=str(_require(entry, "title", at)),
            url=entry.get("url"),
            table=str(_require(entry, "table", at)),
        )
    return out


def _load_model(entry: Any, index: int, sources: dict[str, PublishedSource], where: str) -> PublishedModel:
    at = f"{where}: models[{index}]"
    name = str(_require(entry, "name", at))
    at = f"{where}: model {name!r}"
    origin = _require(entry, "origin", at)
    if origin not in ORIGINS:
        raise FinGPTError(f"{at}: origin {origin!r} is not one of {list(ORIGINS)}")
    scale = _require(entry, "scale", at)
    if scale not in SCALES:
        raise FinGPTError(f"{at}: scale {scale!r} is not one of {list(SCALES)}")
    metric_sources = _require(entry, "source", at)
    values = _require(entry, "values", at)
    if not isinstance(values, dict) or not values:
        raise FinGPTError(f"{at}: 'values' must map benchmark names to metrics")
    scores: dict[str, dict[str, float]] = {}
    used: set[str] = set()
    for benchmark, metrics in values.items():
        if not isinstance(metrics, dict):
            raise FinGPTError(f"{at}: values.{benchmark} must map metric names to numbers")
        scores[benchmark] = {}
        for metric, value in metrics.items():
            if metric not in PUBLISHED_METRICS:
                raise FinGPTError(f"{at}: values.{benchmark}.{metric}: unknown metric; use {list(PUBLISHED_METRICS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FinGPTError(f"{at}: values.{benchmark}.{metric} is {value!r}, not a number")
            fraction = float(value) / SCALES[scale]
            if not 0.0 <= fraction <= 1.0:
                raise FinGPTError(f"{at}: values.{benchmark}.{metric} = {value} is out of range for scale {scale!r}")
            scores[benchmark][metric] = fraction
            used.add(metric)
    by_metric = {}
    for metric in sorted(used, key=PUBLISHED_METRICS.index):
        key = metric_sources.get(metric) if isinstance(metric_sources, dict) else None
        if key not in sources:
            raise FinGPTError(f"{at}: source for {metric!r} is {key!r}; expected one of {sorted(sources)}")
        by_metric[metric] = sources[key]
    return PublishedModel(name=name, model=entry.get("model"), origin=origin, scores=scores, sources=by_metric)


def load_published(path: str | os.PathLike | None = None) -> list[PublishedModel]:
    """Read the published rows (default: the file shipped with fingpt-hf), values as fractions."""
    path = Path(path) if path is not None else DEFAULT_PUBLISHED_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FinGPTError(f"published results file not found: {path}") from err
    except yaml.YAMLError as err:
        raise FinGPTError(f"{path}: not valid YAML: {err}") from err
    where = str(path)
    sources = _load_sources(_require(raw, "sources", where), where)
    models = _require(raw, "models", where)
    if not isinstance(models, list):
        raise FinGPTError(f"{where}: 'models' must be a list")
    return [_load_model(entry, i, sources, where) for i, entry in enumerate(models)]
