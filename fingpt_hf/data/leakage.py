"""Train/test overlap: how many test rows also appear, as text, in a training set.

Texts are compared after ``normalize_text``: Unicode case folding, every run of whitespace
collapsed to one space, and punctuation (Unicode category P*) and whitespace stripped from both
ends, so "Profit rose ." and "profit rose" match but a changed word does not. Labels are not
compared: a leaked text counts even when its label differs. Duplicates inside one split are
reported too (FPB repeats some sentences); nothing is removed.
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES, load_benchmark
from fingpt_hf.data.errors import MissingSplitError


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def normalize_text(text: str) -> str:
    """casefold, collapse whitespace, strip punctuation and spaces at both ends."""
    collapsed = " ".join(text.casefold().split())
    start, end = 0, len(collapsed)
    while start < end and _is_edge(collapsed[start]):
        start += 1
    while end > start and _is_edge(collapsed[end - 1]):
        end -= 1
    return collapsed[start:end]


@dataclass
class SplitLeakage:
    """One test set against every training set."""

    name: str
    rows: int
    duplicate_rows: int  # rows whose normalised text already appeared earlier in this test set
    leaked_rows: int  # rows whose text is in any training set
    by_train: dict[str, int] = field(default_factory=dict)  # training set -> test rows found there


@dataclass
class LeakageReport:
    tests: list[SplitLeakage]
    train_rows: dict[str, int]
    train_duplicate_rows: dict[str, int]
    missing: dict[str, str] = field(default_factory=dict)  # "name split" -> why it was not checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = []
        for test in self.tests:
            parts = ", ".join(f"{name} train {count}" for name, count in test.by_train.items())
            out.append(
                f"{test.name} test: {test.leaked_rows}/{test.rows} rows also in training data ({parts}); "
                f"{test.duplicate_rows} duplicate rows within the test set"
            )
        for name, count in self.train_duplicate_rows.items():
            out.append(f"{name} train: {count}/{self.train_rows[name]} rows repeat an earlier row's text")
        out += [f"not checked: {what} ({why})" for what, why in self.missing.items()]
        return out


def _duplicates(normalised: list[str]) -> int:
    return len(normalised) - len(set(normalised))


def check_leakage(
    train_sets: Mapping[str, Iterable[str]], test_sets: Mapping[str, Iterable[str]]
) -> LeakageReport:
    """Count, per test set, rows whose normalised text appears in each training set and in any."""
    train_norm = {name: [normalize_text(t) for t in texts] for name, texts in train_sets.items()}
    train_keys = {name: set(texts) for name, texts in train_norm.items()}
    everything = set().union(*train_keys.values()) if train_keys else set()
    tests = []
    for name, texts in test_sets.items():
        normalised = [normalize_text(t) for t in texts]
        counts = Counter(normalised)
        by_train = {
            train: sum(n for text, n in counts.items() if text in keys) for train, keys in train_keys.items()
        }
        leaked = sum(n for text, n in counts.items() if text in everything)
        tests.append(SplitLeakage(name, len(normalised), _duplicates(normalised), leaked, by_train))
    return LeakageReport(
        tests,
        {name: len(texts) for name, texts in train_norm.items()},
        {name: _duplicates(texts) for name, texts in train_norm.items()},
    )


def split_texts(
    name: str, split: str, data_dir: str | os.PathLike | None = None, missing: dict[str, str] | None = None
) -> list[str] | None:
    """A benchmark split's input texts; ``None`` (noted in ``missing``) when the mirror lacks the split."""
    try:
        return load_benchmark(name, split, data_dir)["input"]
    except MissingSplitError as err:
        if missing is not None:
            missing[f"{name} {split}"] = str(err).split(";")[0]
        return None


def scored_texts(data_dir: str | os.PathLike | None = None, validation: bool = True) -> set[str]:
    """The normalised texts of every benchmark's test rows (and validation rows): what is scored.
    Splits the mirror lacks (NWGI train, hence its validation) add nothing."""
    splits = ("test", "validation") if validation else ("test",)
    return {normalize_text(text) for name in BENCHMARK_NAMES for split in splits
            for text in split_texts(name, split, data_dir) or ()}


def benchmark_leakage(
    data_dir: str | os.PathLike | None = None,
    train_names: Iterable[str] = BENCHMARK_NAMES,
    test_names: Iterable[str] = BENCHMARK_NAMES,
    train_sets: Mapping[str, Iterable[str]] | None = None,
) -> LeakageReport:
    """Leakage between the benchmarks' test splits and their train splits (or ``train_sets``).

    Splits the mirror lacks (NWGI train) are listed in ``missing`` rather than failing.
    """
    missing: dict[str, str] = {}
    if train_sets is None:
        train_sets = {n: t for n in train_names if (t := split_texts(n, "train", data_dir, missing)) is not None}
    tests = {n: t for n in test_names if (t := split_texts(n, "test", data_dir, missing)) is not None}
    report = check_leakage(train_sets, tests)
    report.missing = missing
    return report
