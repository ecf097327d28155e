"""User data sets (CSV, JSON Lines or JSON) turned into FinGPT rows, checked row by row.

A label is looked up as a string (``1`` and ``"1"`` are the same key) after stripping surrounding
whitespace; nothing else is normalised. Without a ``label_map`` the labels must already be one of
``LABELS``. Any row that does not fit stops the load with the file and row, so nothing is silently
dropped or relabelled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import datasets

from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.prompts import NEWS_INSTRUCTION
from fingpt_hf.data.sources import _read_text, read_csv_rows, read_jsonl
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


def _read_json_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(where, row) pairs from a .json file: an array of objects, or JSON Lines under a .json name."""
    text = _read_text(path, "utf-8")
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
    records = []
    for index, row in enumerate(data, start=1):
        if not isinstance(row, dict) or any(c not in row for c in required):
            raise DataFormatError(path, f"row {index}", f"expected an object with keys {', '.join(required)}")
        records.append((f"row {index}", row))
    return records


def _read_jsonl_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    rows = read_jsonl(path, required)
    text = path.read_bytes().decode("utf-8")  # decodes: read_jsonl already checked it
    numbers = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return [(f"line {n}", row) for n, row in zip(numbers, rows)]


def read_records(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(where, row) pairs; ``where`` is how an error names the row ("row 3" or "line 7")."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [(f"row {i}", row) for i, row in enumerate(read_csv_rows(path, required), start=1)]
    if suffix == ".jsonl":
        return _read_jsonl_records(path, required)
    if suffix == ".json":
        return _read_json_records(path, required)
    raise DataFormatError(path, None, f"unsupported file type {path.suffix!r}; expected {', '.join(SUFFIXES)}")


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
