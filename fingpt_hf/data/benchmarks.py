"""FinGPT's four sentiment benchmarks, split and labelled exactly as FinGPT_Benchmark does.

Every function returns rows with FinGPT's columns ``instruction``, ``input``, ``output`` plus
``dataset``. The splits use ``Dataset.train_test_split`` with FinGPT's seeds and sizes, so the
test sets equal the ones FinGPT-derived benchmarks publish, row for row and in order.

``validation`` is ours, not FinGPT's: a seeded ``VALIDATION_FRACTION`` of each benchmark's *train*
split (never test rows), taken before any mixture weighting, so recipes and settings can be
chosen without looking at the test sets. Training mixtures leave those rows out by default
(``load_train_rows``); ``train`` itself stays FinGPT's whole train split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used, so the CLI starts without loading datasets
    import datasets

from fingpt_hf.data.labels import FPB_HUB_LABELS, NWGI_LABELS, TFNS_LABELS, fiqa_label
from fingpt_hf.data.prompts import NEWS_INSTRUCTION, TWEET_INSTRUCTION
from fingpt_hf.data.sources import HUB_SOURCES, load_raw, mirror_has_split, missing_split_error
from fingpt_hf.errors import FinGPTError

BENCHMARK_NAMES: tuple[str, ...] = ("fpb", "fiqa", "tfns", "nwgi")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 2024
COLUMNS: tuple[str, ...] = ("instruction", "input", "output", "dataset")
SCORE_COLUMN = "sentiment_score"  # FiQA-SA's continuous score, kept only when asked (``with_scores``)


@dataclass(frozen=True)
class BenchmarkInfo:
    """What a benchmark is called and which source split FinGPT evaluates on."""

    name: str
    title: str
    source_split: dict[str, str]  # our split -> how it is made from the source


BENCHMARKS: dict[str, BenchmarkInfo] = {
    "fpb": BenchmarkInfo("fpb", "Financial PhraseBank (sentences_50agree)",
                         {"train": "train_test_split(seed=42) train", "test": "train_test_split(seed=42) test"}),
    "fiqa": BenchmarkInfo("fiqa", "FiQA-2018 sentiment (headlines and posts)",
                          {"train": "train+validation+test, train_test_split(0.226, seed=42) train",
                           "test": "train+validation+test, train_test_split(0.226, seed=42) test"}),
    "tfns": BenchmarkInfo("tfns", "Twitter Financial News Sentiment", {"train": "train", "test": "validation"}),
    "nwgi": BenchmarkInfo("nwgi", "News With GPT Instructions", {"train": "train", "test": "test"}),
}


def _rows(name: str, instructions: list[str], texts: list[str], labels: list[str]) -> datasets.Dataset:
    import datasets

    return datasets.Dataset.from_dict(
        {"instruction": instructions, "input": texts, "output": labels, "dataset": [name] * len(texts)}
    )


def fingpt_split(name: str, raw: datasets.DatasetDict, split: str, with_scores: bool = False) -> datasets.Dataset:
    """Turn a source data set (Hub schema) into FinGPT's train or test rows.

    ``with_scores`` keeps FiQA-SA's continuous score beside its label (column ``SCORE_COLUMN``), for a
    mixture that reads its labels as noisy (``MixtureSource.score_noise``); only FiQA-SA has one.
    """
    if with_scores and name != "fiqa":
        raise FinGPTError(f"{name} has no continuous sentiment score; only fiqa does")
    import datasets

    if name == "fpb":
        part = raw["train"].train_test_split(seed=42)["train" if split == "train" else "test"]
        labels = [FPB_HUB_LABELS[int(x)] for x in part["label"]]
        return _rows(name, [NEWS_INSTRUCTION] * len(part), part["sentence"], labels)
    if name == "fiqa":
        whole = datasets.concatenate_datasets([raw["train"], raw["validation"], raw["test"]])
        part = whole.train_test_split(0.226, seed=42)["train" if split == "train" else "test"]
        instructions = [TWEET_INSTRUCTION if f == "post" else NEWS_INSTRUCTION for f in part["format"]]
        labels = [fiqa_label(float(s)) for s in part["sentiment_score"]]
        rows = _rows(name, instructions, part["sentence"], labels)
        return rows.add_column(SCORE_COLUMN, [float(s) for s in part["sentiment_score"]]) if with_scores else rows
    if name == "tfns":
        part = raw["train" if split == "train" else "validation"]
        labels = [TFNS_LABELS[int(x)] for x in part["label"]]
        return _rows(name, [TWEET_INSTRUCTION] * len(part), part["text"], labels)
    if name == "nwgi":
        part = raw[split]
        unknown = sorted(set(part["label"]) - set(NWGI_LABELS))
        if unknown:
            raise FinGPTError(f"nwgi {split}: unknown label(s) {unknown}; expected one of {sorted(NWGI_LABELS)}")
        labels = [NWGI_LABELS[x] for x in part["label"]]
        return _rows(name, [NEWS_INSTRUCTION] * len(part), part["news"], labels)
    raise FinGPTError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARK_NAMES)}")


def check_name_and_split(name: str, split: str) -> None:
    if name not in BENCHMARKS:
        raise FinGPTError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARK_NAMES)}")
    if split not in SPLITS:
        raise FinGPTError(f"unknown split {split!r} for {name}; choose one of {', '.join(SPLITS)}")


def validation_indices(name: str, train_rows: int) -> list[int]:
    """Positions in ``name``'s train split that form its validation split (sorted).

    A permutation seeded by ``VALIDATION_SEED`` and the benchmark's name (so the four are drawn
    independently), the first ``VALIDATION_FRACTION`` of it (at least one row).
    """
    import zlib

    import numpy as np

    rng = np.random.default_rng([VALIDATION_SEED, zlib.crc32(name.encode())])
    count = max(1, round(VALIDATION_FRACTION * train_rows))
    return sorted(int(i) for i in rng.permutation(train_rows)[:count])


def load_benchmark(name: str, split: str = "test", data_dir: str | os.PathLike | None = None,
                   with_scores: bool = False) -> datasets.Dataset:
    """One benchmark split, from the mirror (``data_dir`` / $FINGPT_DATA_DIR) or the Hub."""
    check_name_and_split(name, split)
    source_split = "train" if split == "validation" else split
    if not mirror_has_split(name, source_split, data_dir):
        raise missing_split_error(name, source_split)
    rows = fingpt_split(name, load_raw(name, data_dir), source_split, with_scores)
    return rows.select(validation_indices(name, len(rows))) if split == "validation" else rows


def load_train_rows(name: str, data_dir: str | os.PathLike | None = None, exclude_validation: bool = True,
                    with_scores: bool = False) -> datasets.Dataset:
    """FinGPT's train split of ``name``, without its validation rows unless ``exclude_validation``
    is False (FinGPT's own recipes train on the whole split)."""
    rows = load_benchmark(name, "train", data_dir, with_scores)
    if not exclude_validation:
        return rows
    held_out = set(validation_indices(name, len(rows)))
    return rows.select([i for i in range(len(rows)) if i not in held_out])


def load_benchmark_dict(name: str, data_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """FinGPT's train and test splits and our validation slice of train (only ``test`` for NWGI
    when reading the mirror)."""
    import datasets

    check_name_and_split(name, "test")
    raw = load_raw(name, data_dir)
    splits = {s: fingpt_split(name, raw, s) for s in ("train", "test") if mirror_has_split(name, s, data_dir)}
    if "train" in splits:
        splits["validation"] = splits["train"].select(validation_indices(name, len(splits["train"])))
    return datasets.DatasetDict(splits)


def dataset_reference(name: str) -> dict[str, str | None]:
    """The Hub id, config and source split of a benchmark's test set (for results and cards)."""
    source = HUB_SOURCES[name]
    return {"dataset_id": source.repo_id, "dataset_config": source.config,
            "dataset_split": {"fpb": "train", "fiqa": "train+validation+test", "tfns": "validation",
                              "nwgi": "test"}[name]}
