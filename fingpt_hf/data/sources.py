"""Where the raw data comes from: the local mirror (FINGPT_DATA_DIR) or the Hugging Face Hub.

Both readers return the Hub's own schema (column names and label ids), so one conversion in
``benchmarks.py`` serves both paths and they cannot drift apart.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used, so the CLI starts without loading datasets
    import datasets

from fingpt_hf.data.errors import DataFormatError, MissingSplitError
from fingpt_hf.errors import FinGPTError

DATA_DIR_ENV = "FINGPT_DATA_DIR"


@dataclass(frozen=True)
class HubSource:
    """A Hub data set id, its config, and the folder that mirrors it locally."""

    repo_id: str
    config: str | None
    mirror_folder: str


HUB_SOURCES: dict[str, HubSource] = {
    "fpb": HubSource("financial_phrasebank", "sentences_50agree", "financial_phrasebank"),
    "fiqa": HubSource("pauri32/fiqa-2018", None, "fiqa-2018"),
    "tfns": HubSource("zeroshot/twitter-financial-news-sentiment", None, "twitter-financial-news-sentiment"),
    "nwgi": HubSource("oliverwang15/news_with_gpt_instructions", None, "news_with_gpt_instructions"),
}

FPB_MIRROR_FILES = {
    "sentences_50agree": "Sentences_50Agree.txt",
    "sentences_66agree": "Sentences_66Agree.txt",
    "sentences_75agree": "Sentences_75Agree.txt",
    "sentences_allagree": "Sentences_AllAgree.txt",
}
FPB_LABEL_IDS = {"negative": 0, "neutral": 1, "positive": 2}
FIQA_COLUMNS = ("sentence", "snippets", "target", "sentiment_score", "aspects", "format", "label")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The mirror to read: the flag, then $FINGPT_DATA_DIR; ``None`` means load from the Hub."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        if hub_offline():
            raise FinGPTError(
                f"no data directory given and the Hub is offline (HF_HUB_OFFLINE=1): pass --data-dir (data_dir in a recipe) "
                f"or set {DATA_DIR_ENV} to a FinGPT data mirror (e.g. ../shared/fingpt-data)"
            )
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise FinGPTError(f"{origin} points to {path}, which is not a directory")
    return path


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataFormatError(path, None, "file not found in the data mirror (see its SOURCES.md)")
    if path.stat().st_size == 0:
        raise DataFormatError(path, None, "file is empty")
    return path


def _read_text(path: Path, encoding: str) -> str:
    raw = _require_file(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(path, f"line {line}", f"bytes that are not valid {encoding} ({err.reason})") from None


def read_fpb(path: Path) -> datasets.Dataset:
    """One ``sentence@label`` per line (ISO-8859-1), split at the last '@', as the Hub loader does."""
    import datasets

    text = _read_text(path, "iso-8859-1")
    sentences, labels = [], []
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if not line.strip():
            raise DataFormatError(path, f"line {number}", "empty line; expected 'sentence@label'")
        if "@" not in line:
            raise DataFormatError(path, f"line {number}", "no '@' separator; expected 'sentence@label'")
        sentence, label = line.rsplit("@", 1)
        label = label.strip()
        if label not in FPB_LABEL_IDS:
            raise DataFormatError(
                path, f"line {number}", f"unknown label {label!r}; expected one of {', '.join(FPB_LABEL_IDS)}"
            )
        sentences.append(sentence)
        labels.append(FPB_LABEL_IDS[label])
    if not sentences:
        raise DataFormatError(path, None, "no rows")
    return datasets.Dataset.from_dict({"sentence": sentences, "label": labels})


def read_csv_rows(path: Path, required: tuple[str, ...], encoding: str = "utf-8") -> list[dict[str, str]]:
    """Rows of a CSV file as strings, after checking its header and each row's width."""
    text = _read_text(path, encoding)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(
            path, "header", f"missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}"
        )
    rows = []
    for row in reader:
        where = f"row {reader.line_num - 1} (line {reader.line_num})"
        if None in row or any(row.get(c) is None for c in required):
            raise DataFormatError(path, where, f"expected {len(header)} fields, got a different number")
        rows.append(row)
    if not rows:
        raise DataFormatError(path, None, "no data rows after the header")
    return rows


def _int_column(path: Path, rows: list[dict[str, str]], column: str, allowed: set[int]) -> list[int]:
    values = []
    for index, row in enumerate(rows, start=1):
        try:
            value = int(row[column])
        except ValueError:
            value = None
        if value not in allowed:
            raise DataFormatError(
                path, f"row {index}", f"{column}={row[column]!r}; expected one of {sorted(allowed)}"
            )
        values.append(value)
    return values


def read_tfns(path: Path) -> datasets.Dataset:
    import datasets

    rows = read_csv_rows(path, ("text", "label"))
    labels = _int_column(path, rows, "label", {0, 1, 2})
    return datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "label": labels})


def read_fiqa(path: Path) -> datasets.Dataset:
    import datasets

    rows = read_csv_rows(path, FIQA_COLUMNS)
    scores = []
    for index, row in enumerate(rows, start=1):
        try:
            scores.append(float(row["sentiment_score"]))
        except ValueError:
            raise DataFormatError(
                path, f"row {index}", f"sentiment_score={row['sentiment_score']!r} is not a number"
            ) from None
        if row["format"] not in {"post", "headline"}:
            raise DataFormatError(path, f"row {index}", f"format={row['format']!r}; expected 'post' or 'headline'")
    columns = {c: [r[c] for r in rows] for c in FIQA_COLUMNS}
    columns["sentiment_score"] = scores
    columns["label"] = _int_column(path, rows, "label", {0, 1, 2})
    return datasets.Dataset.from_dict(columns)


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    text = _read_text(path, "utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, f"line {number}", f"invalid JSON ({err.msg})") from None
        if not isinstance(row, dict) or any(c not in row for c in required):
            raise DataFormatError(path, f"line {number}", f"expected an object with keys {', '.join(required)}")
        rows.append(row)
    if not rows:
        raise DataFormatError(path, None, "no rows")
    return rows


def read_nwgi(path: Path) -> datasets.Dataset:
    import datasets

    rows = read_jsonl(path, ("news", "label"))
    return datasets.Dataset.from_dict({"news": [r["news"] for r in rows], "label": [r["label"] for r in rows]})


def load_raw(name: str, data_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """The source data set in the Hub's schema, from the mirror when one is given, else the Hub."""
    import datasets

    if name not in HUB_SOURCES:
        raise FinGPTError(f"unknown benchmark {name!r}; choose one of {', '.join(HUB_SOURCES)}")
    source = HUB_SOURCES[name]
    root = resolve_data_dir(data_dir)
    if root is None:
        return _load_from_hub(source)
    folder = root / source.mirror_folder
    if name == "fpb":
        return datasets.DatasetDict({"train": read_fpb(folder / FPB_MIRROR_FILES[source.config])})
    if name == "fiqa":
        return datasets.DatasetDict(
            {split: read_fiqa(folder / f"{split}.csv") for split in ("train", "validation", "test")}
        )
    if name == "tfns":
        return datasets.DatasetDict(
            {"train": read_tfns(folder / "sent_train.csv"), "validation": read_tfns(folder / "sent_valid.csv")}
        )
    return datasets.DatasetDict({"test": read_nwgi(folder / "test.jsonl")})


def _load_from_hub(source: HubSource) -> datasets.DatasetDict:
    import datasets

    try:
        loaded = datasets.load_dataset(source.repo_id, source.config)
    except RuntimeError as err:
        # financial_phrasebank is a script data set; datasets >= 4 reads the Hub's parquet export
        # of it instead (same rows, same order, same ClassLabel).
        if "scripts are no longer supported" not in str(err):
            raise
        loaded = datasets.load_dataset(source.repo_id, source.config, revision="refs/convert/parquet")
    if source.mirror_folder == "news_with_gpt_instructions":
        # Keep only the columns the mirror has, so both paths give identical rows.
        loaded = loaded.select_columns(["news", "label"])
    return loaded


def mirror_has_split(name: str, split: str, data_dir: str | os.PathLike | None = None) -> bool:
    root = resolve_data_dir(data_dir)
    return root is None or not (name == "nwgi" and split == "train")


def missing_split_error(name: str, split: str) -> MissingSplitError:
    return MissingSplitError(
        f"{name} split {split!r} is not in the local data mirror ({DATA_DIR_ENV}); the mirror holds only "
        f"NWGI's 4,047-row test split. Unset {DATA_DIR_ENV} with the Hub reachable to load "
        f"{HUB_SOURCES[name].repo_id} train, or leave {name} out of the mixture."
    )
