"""User data sets (CSV, JSON Lines or JSON) turned into FinGPT rows, checked row by row.

A label is looked up as a string (``1`` and ``"1"`` are the same key) after stripping surrounding
whitespace; nothing else is normalised. Without a ``label_map`` the labels must already be one of
``LABELS``. Any row that does not fit stops the load with the file and row, so nothing is silently
dropped or relabelled.

CSV and JSON Lines are read through ``fingpt_hf.data.readers`` (one reader per format, shared with
``predict``): CSV per RFC 4180 with or without a byte-order mark and with fields of any length,
``row N`` meaning the Nth record after the header. Only ``.json`` (one document) is parsed here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import datasets

from fingpt_hf.data import readers
from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.prompts import NEWS_INSTRUCTION
from fingpt_hf.errors import FinGPTError

SUFFIXES: tuple[str, ...] = (".csv", ".jsonl", ".json")


def _label_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def normalise_label_map(label_map: Mapping[Any, Any] | None) -> dict[str, str]:
    """Keys as strings, values checked against LABELS (an error names the bad entry)."""
    if label_map is None:
        return {label: label for label in LABELS}
    if not isinstance(label_map, Mapping) or not label_map:
        raise FinGPTError(f"label_map must be a non-empty mapping from raw labels to {', '.join(LABELS)}")
    normalised: dict[str, str] = {}
    for raw, label in label_map.items():
        if label not in LABELS:
            raise FinGPTError(f"label_map: {raw!r} maps to {label!r}; expected one of {', '.join(LABELS)}")
        key = _label_key(raw)
        if key in normalised and normalised[key] != label:
            raise FinGPTError(f"label_map: {raw!r} is given twice with different labels")
        normalised[key] = label
    return normalised


def _check_file(path: Path) -> Path:
    """A missing file is reported as such (this is a user's file, not one of the data mirror's)."""
    if not path.exists():
        raise DataFormatError(path, None, "no such file")
    if not path.is_file():
        raise DataFormatError(path, None, "not a file")
    if path.stat().st_size == 0:
        raise DataFormatError(path, None, "file is empty")
    return path


def _raise_bad(path: Path, unit: str) -> readers.OnBad:
    """``on_bad`` for the shared readers: stop at the first bad record, named as this module names rows."""
    def on_bad(number: int, problem: str) -> None:
        raise DataFormatError(path, f"{unit} {number}", problem)

    return on_bad


def _check_keys(path: Path, where: str, row: Any, required: tuple[str, ...]) -> dict:
    if not isinstance(row, dict) or any(c not in row for c in required):
        raise DataFormatError(path, where, f"expected an object with keys {', '.join(required)}")
    return row


def _read_csv_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """Through the one CSV reader (``fingpt_hf.data.readers``: RFC 4180, BOM, long fields):
    ``row N`` is the Nth record after the header, however many lines its quoted fields span."""
    header = readers.csv_header(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(path, "header", f"missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}")
    records = [(f"row {n}", row) for n, row in readers.read_csv(path, on_bad=_raise_bad(path, "row"))]
    if not records:
        raise DataFormatError(path, None, "no data rows after the header")
    return records


def _read_jsonl_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """Through the one JSON Lines reader: ``line N`` is the physical line."""
    records = [(f"line {n}", _check_keys(path, f"line {n}", row, required))
               for n, row in readers.read_jsonl(path, on_bad=_raise_bad(path, "line"))]
    if not records:
        raise DataFormatError(path, None, "no rows")
    return records


def _read_json_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(where, row) pairs from a .json file: an array of objects, or JSON Lines under a .json name."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(path, f"line {line}", f"bytes that are not valid utf-8 ({err.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several top-level values: JSON Lines
            return _read_jsonl_records(path, required)
        raise DataFormatError(path, f"line {err.lineno}", f"invalid JSON ({err.msg})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataFormatError(path, None, "expected a JSON array of objects (or JSON Lines)")
    if not data:
        raise DataFormatError(path, None, "no rows")
    return [(f"row {i}", _check_keys(path, f"row {i}", row, required)) for i, row in enumerate(data, start=1)]


def read_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(where, row) pairs; ``where`` is how an error names the row ("row 3" or "line 7")."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFormatError(path, None, f"unsupported file type {path.suffix!r}; expected {', '.join(SUFFIXES)}")
    _check_file(path)
    if suffix == ".csv":
        return _read_csv_records(path, required)
    if suffix == ".jsonl":
        return _read_jsonl_records(path, required)
    return _read_json_records(path, required)


def load_custom_dataset(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    label_map: Mapping[Any, Any] | None = None,
    instruction: str | None = None,
    name: str | None = None,
) -> datasets.Dataset:
    """A user file as FinGPT rows: ``instruction``/``input``/``output``/``dataset``.

    ``name`` defaults to the file name without its suffix; ``instruction`` to FinGPT's news
    instruction.
    """
    path = Path(path).expanduser()
    mapping = normalise_label_map(label_map)
    expected = ", ".join(repr(k) for k in mapping)
    records = read_records(path, (text_column, label_column))
    texts, labels = [], []
    for where, row in records:
        text = row[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(path, where, f"{text_column}={text!r}; expected non-empty text")
        raw = row[label_column]
        key = _label_key(raw) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else None
        if key not in mapping:
            raise DataFormatError(path, where, f"{label_column}={raw!r} is not in the label map; expected one of {expected}")
        texts.append(text)
        labels.append(mapping[key])
    name = name or path.stem
    instruction = instruction or NEWS_INSTRUCTION
    return datasets.Dataset.from_dict(
        {"instruction": [instruction] * len(texts), "input": texts, "output": labels, "dataset": [name] * len(texts)}
    )
