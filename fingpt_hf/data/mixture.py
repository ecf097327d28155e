"""FinGPT's sentiment training mixture, rebuilt from the benchmark train splits.

FinGPT/fingpt-sentiment-train (76,772 rows) is FPB train x6 + FiQA train x21 + TFNS train x2 +
NWGI train x1, concatenated in that order and shuffled with ``Dataset.shuffle(seed=42)``. The
mirror has no NWGI train split, so offline the same recipe gives 60,588 rows and the report says
what was left out.

Weight semantics: the integer part of a weight repeats the whole split that many times; a
fractional part adds a seeded random sample (without replacement) of ``frac * rows`` rows,
rounded half up.
So ``6`` is six copies, ``0.5`` is half the rows, ``2.25`` is two copies plus a quarter.
A source's ``label_weights`` (e.g. ``{neutral: 3}``) multiply its weight for the rows of those labels
(label-balanced sampling): each label's rows are weighted on their own, with a sampling stream of
their own, so naming any label changes which fractional rows are drawn.
FiQA-SA's ``score_noise`` (e.g. ``0.1``) reads its labels from its continuous scores as known only to
within that noise (``fingpt_hf.data.labels.fiqa_label_probabilities``): a row's copies carry each label
in proportion to its probability, by a seeded systematic draw over the copies (the same rows, the same
count, only labels near FinGPT's cuts at -0.1 and 0.1 change): soft targets, made of whole rows, so
every trainer trains on them unchanged.

A benchmark's train split enters without its validation rows (``fingpt_hf.data.benchmarks``:
a seeded 10% slice of train) unless the mixture says ``exclude_validation: false``, as FinGPT's
own recipe (``MixtureConfig.fingpt_default``) and the recipes that reproduce it do.

One deliberate difference from FinGPT: its training set keeps NWGI's seven fine-grained labels
(with a seven-way instruction); here every row's ``output`` is one of the three ``LABELS``, so
NWGI rows use FinGPT's own 7->3 evaluation collapse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import datasets
import numpy as np

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES, COLUMNS, SCORE_COLUMN, load_benchmark, load_train_rows
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.labels import LABELS, fiqa_label_probabilities
from fingpt_hf.data.leakage import normalize_text, scored_texts
from fingpt_hf.data.names import check_dataset_name
from fingpt_hf.errors import FinGPTError

FINGPT_WEIGHTS: dict[str, float] = {"fpb": 6, "fiqa": 21, "tfns": 2, "nwgi": 1}
ON_MISSING: tuple[str, ...] = ("error", "skip")


@dataclass
class MixtureSource:
    """One part of the mixture: a FinGPT benchmark by name, or a user data set when ``path`` is set."""

    name: str
    weight: float = 1.0
    split: str = "train"
    path: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    label_map: dict | None = None
    instruction: str | None = None
    label_weights: dict[str, float] | None = None  # per label, multiplies ``weight`` (label-balanced sampling)
    score_noise: float | None = None  # FiQA-SA only: labels drawn from its scores read as noisy (soft targets)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise FinGPTError(f"dataset_mixture: a source needs a non-empty 'name', got {self.name!r}")
        if self.label_weights is not None:
            self.label_weights = self._checked_label_weights(self.label_weights)
        if self.score_noise is not None:
            self.score_noise = self._checked_score_noise(self.score_noise)
        if self.path is not None:  # a user's name: it becomes the rows' data set name and file names
            check_dataset_name(self.name, f"dataset_mixture: source name (path {self.path})")
        try:
            self.weight = float(self.weight)
        except (TypeError, ValueError):
            raise FinGPTError(f"dataset_mixture: {self.name}: weight {self.weight!r} is not a number") from None
        if not math.isfinite(self.weight) or self.weight < 0:
            raise FinGPTError(f"dataset_mixture: {self.name}: weight must be a finite number >= 0, got {self.weight}")
        if self.path is None and self.name not in BENCHMARK_NAMES:
            raise FinGPTError(
                f"dataset_mixture: unknown data set {self.name!r}; choose one of {', '.join(BENCHMARK_NAMES)} "
                f"or give a 'path' to a CSV/JSONL/JSON file"
            )
        if self.path is None and self.split not in ("train", "test"):
            hint = (" (validation rows are for choosing recipes, never for training)"
                    if self.split == "validation" else "")
            raise FinGPTError(f"dataset_mixture: {self.name}: split must be 'train' or 'test', got {self.split!r}{hint}")

    def _checked_score_noise(self, given: Any) -> float:
        where = f"dataset_mixture: {self.name}: score_noise"
        if self.name != "fiqa" or self.path is not None:
            raise FinGPTError(f"{where}: only the fiqa benchmark has continuous scores to read labels from")
        if self.label_weights is not None:
            raise FinGPTError(f"{where}: cannot be combined with label_weights (a row's label is drawn per copy)")
        if isinstance(given, bool) or not isinstance(given, (int, float)) or not math.isfinite(given) or given <= 0:
            raise FinGPTError(f"{where} must be a number > 0 (the score's standard deviation), got {given!r}")
        return float(given)

    def _checked_label_weights(self, given: Any) -> dict[str, float]:
        where = f"dataset_mixture: {self.name}: label_weights"
        if not isinstance(given, Mapping) or not given:
            raise FinGPTError(f"{where} must map labels ({', '.join(LABELS)}) to weights, got {given!r}")
        checked = {}
        for label, value in given.items():
            if label not in LABELS:
                raise FinGPTError(f"{where}: unknown label {label!r}; choose among {', '.join(LABELS)}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise FinGPTError(f"{where}: {label}: {value!r} is not a number") from None
            if isinstance(value, bool) or not math.isfinite(number) or number < 0:
                raise FinGPTError(f"{where}: {label}: must be a finite number >= 0, got {value!r}")
            checked[label] = number
        return checked


@dataclass
class MixtureConfig:
    """Which sources, how much of each, and the shuffle seed (the recipe's ``dataset_mixture`` block)."""

    sources: list[MixtureSource]
    seed: int = 42
    on_missing: Literal["error", "skip"] = "skip"
    max_samples: int | None = None
    allow_test_split: bool = False
    exclude_validation: bool = True
    # Also leave out train rows whose text (normalised as `data stats` compares them) is that of a
    # row the benchmarks score: any benchmark's test rows, and its validation rows when
    # exclude_validation. FinGPT's splits repeat sentences (FiQA-SA: 36 of its 275 test texts and
    # 12 of our 94 validation texts are also train rows), so leaving out rows alone is not enough.
    exclude_scored_texts: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise FinGPTError("dataset_mixture: 'datasets' is empty; list at least one source")
        on_test = [s.name for s in self.sources if s.path is None and s.split == "test"]
        if on_test and self.allow_test_split is not True:
            raise FinGPTError(
                f"dataset_mixture: {', '.join(on_test)} with split: test would train on the rows the "
                "benchmarks are scored on; set allow_test_split: true in dataset_mixture if that is meant"
            )
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise FinGPTError(f"dataset_mixture: data set(s) listed twice: {', '.join(duplicates)}")
        if self.on_missing not in ON_MISSING:
            raise FinGPTError(f"dataset_mixture: on_missing must be 'error' or 'skip', got {self.on_missing!r}")
        for flag in ("exclude_validation", "exclude_scored_texts"):
            if not isinstance(getattr(self, flag), bool):
                raise FinGPTError(f"dataset_mixture: {flag} must be true or false, got {getattr(self, flag)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise FinGPTError(f"dataset_mixture: seed must be an integer, got {self.seed!r}")
        if self.max_samples is not None and (
            isinstance(self.max_samples, bool) or not isinstance(self.max_samples, int) or self.max_samples < 1
        ):
            raise FinGPTError(f"dataset_mixture: max_samples must be a positive integer, got {self.max_samples!r}")

    @classmethod
    def fingpt_default(cls) -> MixtureConfig:
        """FinGPT's recipe: fpb x6, fiqa x21, tfns x2, nwgi x1, seed 42, on the whole train splits
        (validation rows included, as FinGPT trained on them)."""
        return cls([MixtureSource(name, weight) for name, weight in FINGPT_WEIGHTS.items()], exclude_validation=False)

    @classmethod
    def from_weights(cls, weights: Mapping[str, float], **kwargs: Any) -> MixtureConfig:
        return cls([MixtureSource(name, weight) for name, weight in weights.items()], **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MixtureConfig:
        """Parse ``{datasets: [{name, weight, ...}], seed, on_missing, max_samples}``.

        Also accepts the whole ``{dataset_mixture: {...}}`` mapping. Unknown keys are errors, so a
        typo never silently falls back to a default.
        """
        if not isinstance(data, Mapping):
            raise FinGPTError(f"dataset_mixture must be a mapping, got {type(data).__name__}")
        if set(data) == {"dataset_mixture"}:
            data = data["dataset_mixture"]
            if not isinstance(data, Mapping):
                raise FinGPTError(f"dataset_mixture must be a mapping, got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)} - {"sources"} | {"datasets"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise FinGPTError(
                f"dataset_mixture: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
            )
        entries = data.get("datasets")
        if not isinstance(entries, list):
            raise FinGPTError("dataset_mixture: 'datasets' must be a list of {name: ..., weight: ...} entries")
        source_keys = {f.name for f in dataclasses.fields(MixtureSource)}
        sources = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise FinGPTError(f"dataset_mixture.datasets[{index}] must be a mapping, got {entry!r}")
            bad = sorted(set(entry) - source_keys)
            if bad:
                raise FinGPTError(
                    f"dataset_mixture.datasets[{index}]: unknown key(s) {', '.join(bad)}; "
                    f"expected {', '.join(sorted(source_keys))}"
                )
            if "name" not in entry:
                raise FinGPTError(f"dataset_mixture.datasets[{index}]: missing 'name'")
            sources.append(MixtureSource(**entry))
        kwargs = {k: data[k] for k in ("seed", "on_missing", "max_samples", "allow_test_split", "exclude_validation",
                                       "exclude_scored_texts") if k in data}
        return cls(sources, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": [dataclasses.asdict(s) for s in self.sources], "seed": self.seed,
                "on_missing": self.on_missing, "max_samples": self.max_samples,
                "allow_test_split": self.allow_test_split, "exclude_validation": self.exclude_validation,
                "exclude_scored_texts": self.exclude_scored_texts}


def parse_weights(text: str) -> dict[str, float]:
    """``"fpb=6,fiqa=21"`` -> ``{"fpb": 6.0, "fiqa": 21.0}`` (the ``--weights`` flag)."""
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise FinGPTError(f"--weights: {item.strip()!r} is not NAME=WEIGHT (e.g. fpb=6,fiqa=21)")
        try:
            weights[name] = float(value)
        except ValueError:
            raise FinGPTError(f"--weights: weight for {name!r} is {value.strip()!r}, not a number") from None
    return weights


def weighted_count(rows: int, weight: float) -> int:
    """How many rows ``weight`` makes from ``rows``: whole copies plus the rounded fraction."""
    whole = int(math.floor(weight))
    return whole * rows + int((weight - whole) * rows + 0.5)


def _source_seed(seed: int, name: str) -> np.random.Generator:
    # A separate, stable stream per source, so adding a source never changes another's sample.
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def weighted_indices(rows: int, weight: float, seed: int, name: str) -> np.ndarray:
    """The row positions ``weight`` makes: ``floor(weight)`` passes over all rows, then a seeded sample
    (sorted, without replacement) for the fraction."""
    whole = int(math.floor(weight))
    extra = weighted_count(rows, weight) - whole * rows
    sample = np.sort(_source_seed(seed, name).choice(rows, size=extra, replace=False)) if extra else []
    return np.concatenate([np.tile(np.arange(rows), whole), sample]).astype(np.int64)


def apply_weight(dataset: datasets.Dataset, weight: float, seed: int, name: str) -> datasets.Dataset:
    """Repeat ``dataset`` ``floor(weight)`` times and add a seeded sample for the fraction."""
    return dataset.select(weighted_indices(len(dataset), weight, seed, name).tolist())


def noisy_score_labels(scores: list[float], indices: np.ndarray, noise: float, seed: int, name: str) -> list[str]:
    """A label for each copy (``indices``: positions in ``scores``) drawn from ``fiqa_label_probabilities``.

    Systematic sampling per row: its k copies take the quantiles (j + u) / k, j = 0..k-1, of its label
    distribution (labels ordered by score), with one seeded u per row, so a row's copies carry each
    label in proportion to its probability up to one copy, and a row far from the cuts keeps its label.
    """
    offsets = _source_seed(seed, f"{name}:score_noise").random(len(scores))
    copies = np.bincount(indices, minlength=len(scores))
    order = np.argsort(indices, kind="stable")
    first = np.concatenate([[0], np.cumsum(copies)[:-1]])
    rank = np.empty(len(indices), dtype=np.int64)
    rank[order] = np.arange(len(indices)) - first[indices[order]]
    quantile = (rank + offsets[indices]) / copies[indices]
    cumulative = np.array([np.cumsum(fiqa_label_probabilities(score, noise)) for score in scores])
    picked = (quantile[:, None] >= cumulative[indices][:, :2]).sum(axis=1)
    return [LABELS[i] for i in picked]


def weight_scored_rows(rows: datasets.Dataset, source: MixtureSource, seed: int, scores: list[float]
                       ) -> tuple[datasets.Dataset, int]:
    """A ``score_noise`` source's rows weighted by its ``weight``, each copy's label drawn from its row's
    score; also how many copies were labelled otherwise than their row."""
    if source.score_noise is None or len(scores) != len(rows):
        raise FinGPTError(f"dataset_mixture: {source.name}: drawing labels from scores needs score_noise and "
                          "one score per row")
    indices = weighted_indices(len(rows), source.weight, seed, source.name)
    weighted = rows.select(indices.tolist())
    labels = noisy_score_labels(scores, indices, source.score_noise, seed, source.name)
    relabelled = sum(own != label for own, label in zip(weighted["output"], labels))
    return weighted.map(lambda _, i: {"output": labels[i]}, with_indices=True), relabelled


def weight_source_rows(rows: datasets.Dataset, source: MixtureSource, seed: int) -> datasets.Dataset:
    """A source's rows weighted by its ``weight`` and, when given, per label by its ``label_weights``."""
    if not source.label_weights:
        return apply_weight(rows, source.weight, seed, source.name)
    outputs = rows["output"]
    parts = []
    for label in LABELS:
        of_label = rows.select([i for i, output in enumerate(outputs) if output == label])
        weight = source.weight * source.label_weights.get(label, 1.0)
        parts.append(apply_weight(of_label, weight, seed, f"{source.name}:{label}"))
    return datasets.concatenate_datasets(parts)


def content_hash(dataset: datasets.Dataset) -> str:
    """sha256 over the rows in order (one JSON list per row), so a run can record its exact data."""
    digest = hashlib.sha256()
    for batch in dataset.select_columns(list(COLUMNS)).iter(batch_size=4096):
        for row in zip(*(batch[c] for c in COLUMNS)):
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


@dataclass
class SourceReport:
    name: str
    split: str
    weight: float
    rows_in: int
    rows_out: int
    path: str | None = None
    scored_texts_left_out: int = 0  # rows dropped by exclude_scored_texts (rows_in counts what is left)
    label_weights: dict[str, float] | None = None
    score_noise: float | None = None
    relabelled: int = 0  # copies whose label score_noise drew otherwise than the row's own


@dataclass
class SkippedSource:
    name: str
    split: str
    weight: float
    reason: str


@dataclass
class MixtureReport:
    """What went into a built mixture, for logs, ``mixture_report.json`` and training metadata."""

    seed: int
    sources: list[SourceReport] = field(default_factory=list)
    skipped: list[SkippedSource] = field(default_factory=list)
    rows_before_max_samples: int = 0
    max_samples: int | None = None
    total_rows: int = 0
    content_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary_lines(self) -> list[str]:
        lines = [f"{s.name} {s.split} x{s.weight:g}"
                 + (" (" + ", ".join(f"{k} x{v:g}" for k, v in s.label_weights.items()) + ")" if s.label_weights else "")
                 + f": {s.rows_in} rows -> {s.rows_out}"
                 + (f" (score noise {s.score_noise:g}: {s.relabelled} copies labelled otherwise)"
                    if s.score_noise is not None else "")
                 + (f" ({s.scored_texts_left_out} rows left out: a test or validation text)"
                    if s.scored_texts_left_out else "") for s in self.sources]
        lines += [f"left out {s.name} {s.split} (x{s.weight:g}): {s.reason}" for s in self.skipped]
        if self.max_samples is not None and self.max_samples < self.rows_before_max_samples:
            lines.append(f"max_samples {self.max_samples}: kept the first {self.total_rows} of "
                         f"{self.rows_before_max_samples} shuffled rows")
        lines.append(f"total: {self.total_rows} rows (seed {self.seed}, {self.content_hash})")
        return lines


def load_source(source: MixtureSource, data_dir: str | os.PathLike | None = None, exclude_validation: bool = True
                ) -> datasets.Dataset:
    """The rows of one source, before weighting; a benchmark's train split without its validation
    rows unless ``exclude_validation`` is False."""
    if source.path is not None:
        from fingpt_hf.data.custom import load_custom_dataset

        return load_custom_dataset(source.path, source.text_column, source.label_column, source.label_map,
                                   instruction=source.instruction, name=source.name)
    with_scores = source.score_noise is not None
    if source.split == "train":
        rows = load_train_rows(source.name, data_dir, exclude_validation, with_scores)
    else:
        rows = load_benchmark(source.name, source.split, data_dir, with_scores)
    if source.instruction is not None:
        rows = rows.map(lambda _: {"instruction": source.instruction})
    return rows


def validation_rows(config: MixtureConfig, data_dir: str | os.PathLike | None = None) -> datasets.Dataset | None:
    """The validation splits of the mixture's benchmark sources (in source order), or None when
    none is available (e.g. only custom files, or NWGI offline)."""
    parts = []
    for source in config.sources:
        if source.path is not None or source.split != "train":
            continue
        try:
            parts.append(load_benchmark(source.name, "validation", data_dir).select_columns(list(COLUMNS)))
        except MissingSplitError:
            continue
    return datasets.concatenate_datasets(parts) if parts else None


def build_mixture(
    config: MixtureConfig, data_dir: str | os.PathLike | None = None
) -> tuple[datasets.Dataset, MixtureReport]:
    """Load, weight, concatenate in config order and shuffle with the seed, like FinGPT did."""
    report = MixtureReport(seed=config.seed, max_samples=config.max_samples)
    scored = scored_texts(data_dir, config.exclude_validation) if config.exclude_scored_texts else set()
    parts = []
    for source in config.sources:
        try:
            rows = load_source(source, data_dir, config.exclude_validation)
        except MissingSplitError as err:
            if config.on_missing == "error":
                raise
            report.skipped.append(SkippedSource(source.name, source.split, source.weight, str(err)))
            continue
        dropped = 0
        if scored:
            keep = [i for i, text in enumerate(rows["input"]) if normalize_text(text) not in scored]
            dropped = len(rows) - len(keep)
            rows = rows.select(keep) if dropped else rows
        columns, relabelled = rows.select_columns(list(COLUMNS)), 0
        if source.score_noise is not None:
            weighted, relabelled = weight_scored_rows(columns, source, config.seed, list(rows[SCORE_COLUMN]))
        else:
            weighted = weight_source_rows(columns, source, config.seed)
        report.sources.append(
            SourceReport(source.name, source.split if source.path is None else "file", source.weight,
                         len(rows), len(weighted), source.path, dropped, source.label_weights,
                         source.score_noise, relabelled)
        )
        if len(weighted):
            parts.append(weighted)
    if not parts:
        raise FinGPTError("dataset_mixture: no rows left to train on (every source was skipped or weight 0): "
                          + "; ".join(f"{s.name}: {s.reason}" for s in report.skipped))
    mixture = datasets.concatenate_datasets(parts).shuffle(seed=config.seed)
    report.rows_before_max_samples = len(mixture)
    if config.max_samples is not None and config.max_samples < len(mixture):
        mixture = mixture.select(range(config.max_samples))
    mixture = mixture.flatten_indices()
    report.total_rows = len(mixture)
    report.content_hash = content_hash(mixture)
    return mixture, report
