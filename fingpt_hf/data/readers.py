"""Streaming readers for user data files: CSV, JSON Lines and Parquet, chosen by suffix.

Each reader yields ``(record_number, row)`` pairs in input order, one at a time, so a file of any
size is read in constant memory. ``row`` is a ``dict``: column name -> value (strings for CSV,
JSON values for JSONL, Python values of the Arrow types for Parquet).

A record that cannot become a row (undecodable bytes, a JSONL line that is not a JSON object, a
CSV record with the wrong number of fields) is a *bad record*: with ``on_bad=None`` the reader
raises ``DataFormatError`` naming the file and record; with a callback it calls
``on_bad(record_number, problem)`` and goes on with the next record (the callback runs before
the next pair is yielded, so callers see good and bad records in input order). Problems that
concern the whole file (missing, empty, no header, not Parquet) always raise.

Record numbers (``record_unit`` says what to call them in messages):

* CSV (RFC 4180 through Python's ``csv``): data records, 1 = the first record after the header;
  a quoted field may span lines, so this is not the physical line number. Blank lines are not
  records. UTF-8 with or without a byte-order mark. Fields may be longer than the ``csv``
  module's default 131,072 characters.
* JSONL: the physical line number (1-based); one JSON object per ``\\n``-terminated line, any
  Unicode inside strings (U+2028 and friends do not end a line); blank lines are skipped.
  ``NaN``/``Infinity`` are not JSON and make a line bad.
* Parquet: the row number (1-based), streamed with ``ParquetFile.iter_batches``.

``-`` as a source means JSONL on standard input (read once, as it arrives).
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fingpt_hf.data.errors import DataFormatError

STDIN = "-"
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
SUFFIX_FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
RECORD_UNITS: dict[str, str] = {"csv": "record", "jsonl": "line", "parquet": "row"}

OnBad = Callable[[int, str], None]
Record = tuple[int, dict[str, Any]]

# surrogateescape turns each byte that is not valid UTF-8 into one of these code points.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_BOM = b"\xef\xbb\xbf"


def file_format(source: str | os.PathLike) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the suffix (any case); ``-`` is JSONL on stdin."""
    if str(source) == STDIN:
        return "jsonl"
    suffix = Path(source).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise DataFormatError(source, None, f"unsupported file type {Path(source).suffix or '(no suffix)'!r}; "
                                            f"expected {', '.join(SUFFIX_FORMATS)} (or - for JSONL on stdin)")
    return SUFFIX_FORMATS[suffix]


def record_unit(fmt: str) -> str:
    """What a record number counts in ``fmt`` ("record", "line" or "row"), for messages."""
    return RECORD_UNITS[fmt]


def _require_file(path: Path) -> Path:
    if not path.exists():
        raise DataFormatError(path, None, "no such file")
    if not path.is_file():
        raise DataFormatError(path, None, "not a regular file")
    return path


def _bad(path: object, unit: str, on_bad: OnBad | None, number: int, problem: str) -> None:
    if on_bad is None:
        raise DataFormatError(path, f"{unit} {number}", problem)
    on_bad(number, problem)


def _raise_csv_field_limit() -> None:
    """Let a field be as long as memory allows (the default 131,072 chars rejects long articles)."""
    limit = sys.maxsize
    while limit > csv.field_size_limit():
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # C long narrower than Py_ssize_t (Windows)
            limit //= 2


def _undecodable(fields: Iterable[str]) -> str | None:
    for field in fields:
        match = _ESCAPED_BYTE.search(field)
        if match:
            byte = ord(match.group()) - 0xDC00
            return f"bytes that are not valid UTF-8 (0x{byte:02x} at character {match.start()} of a field)"
    return None


def _open_csv(path: Path):
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_start(handle, path: Path):
    """A ``csv.reader`` over ``handle`` and the checked header (present, decodable, names unique)."""
    _raise_csv_field_limit()
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise DataFormatError(path, "header", f"malformed CSV ({err})") from None
    if not header:
        raise DataFormatError(path, "header", "empty file; expected a header line naming the columns")
    problem = _undecodable(header)
    if problem:
        raise DataFormatError(path, "header", problem)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataFormatError(path, "header", f"column name(s) given twice: {', '.join(map(repr, duplicates))}")
    return reader, header


def csv_header(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV file (its first record), checked as ``read_csv`` checks them."""
    path = _require_file(Path(path))
    with _open_csv(path) as handle:
        return _csv_start(handle, path)[1]


def read_csv(path: str | os.PathLike, on_bad: OnBad | None = None) -> Iterator[Record]:
    """Rows of a CSV file keyed by its header (see the module docstring)."""
    path = _require_file(Path(path))
    with _open_csv(path) as handle:
        reader, header = _csv_start(handle, path)
        number = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                number += 1
                _bad(path, "record", on_bad, number, f"malformed CSV ({err})")
                continue
            if not fields:  # a blank line is no record
                continue
            number += 1
            problem = _undecodable(fields)
            if problem is None and len(fields) != len(header):
                problem = f"{len(fields)} field(s), but the header has {len(header)}"
            if problem:
                _bad(path, "record", on_bad, number, problem)
                continue
            yield number, dict(zip(header, fields))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def read_jsonl(source: str | os.PathLike | BinaryIO, on_bad: OnBad | None = None) -> Iterator[Record]:
    """One JSON object per line, from a file, ``-`` (stdin) or a binary stream (see the module docstring)."""
    if hasattr(source, "read"):
        yield from _jsonl_lines(source, getattr(source, "name", "<stream>"), on_bad)  # type: ignore[arg-type]
        return
    if str(source) == STDIN:
        yield from _jsonl_lines(sys.stdin.buffer, "<stdin>", on_bad)
        return
    path = _require_file(Path(source))
    with open(path, "rb") as handle:
        yield from _jsonl_lines(handle, path, on_bad)


def _jsonl_lines(handle: BinaryIO, name: object, on_bad: OnBad | None) -> Iterator[Record]:
    for number, raw in enumerate(handle, start=1):  # binary lines end at b"\n" only
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        if not raw.strip(b" \t\r\n"):
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            _bad(name, "line", on_bad, number,
                 f"bytes that are not valid UTF-8 (0x{raw[err.start]:02x} at byte {err.start} of the line)")
            continue
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as err:
            _bad(name, "line", on_bad, number, f"not valid JSON ({err})")
            continue
        if not isinstance(value, dict):
            kind = "array" if isinstance(value, list) else "null" if value is None else type(value).__name__
            _bad(name, "line", on_bad, number, f"a JSON {kind}, not an object")
            continue
        yield number, value


def parquet_schema(path: str | os.PathLike):
    """The Arrow schema of a Parquet file (no data read)."""
    return _open_parquet(_require_file(Path(path))).schema_arrow


def _open_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...; all mean unreadable
        raise DataFormatError(path, None, f"not a readable Parquet file ({type(err).__name__}: {err})") from None


def read_parquet(path: str | os.PathLike, on_bad: OnBad | None = None, columns: list[str] | None = None,
                 batch_size: int = 1024) -> Iterator[Record]:
    """Rows of a Parquet file, ``batch_size`` at a time (``columns``: read only these).

    Arrow validates a batch as a whole, so a batch that fails to decode cannot be read row by
    row: that is an error naming the batch's row range, whatever ``on_bad`` is.
    """
    path = _require_file(Path(path))
    parquet = _open_parquet(path)
    if columns is not None:
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise DataFormatError(path, None, f"no column(s) {', '.join(missing)}; "
                                              f"found {', '.join(parquet.schema_arrow.names)}")
    number = 0
    batches = parquet.iter_batches(batch_size=batch_size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 - see the docstring
            raise DataFormatError(path, f"rows {number + 1}-{number + batch_size}",
                                  f"cannot decode ({type(err).__name__}: {err})") from None
        for row in batch.to_pylist():
            number += 1
            yield number, row


def read_records(source: str | os.PathLike, on_bad: OnBad | None = None) -> Iterator[Record]:
    """``(record_number, row)`` pairs of a CSV, JSONL or Parquet file (by suffix), or of ``-`` (JSONL on stdin)."""
    fmt = file_format(source)
    if fmt == "csv":
        return read_csv(source, on_bad)
    if fmt == "jsonl":
        return read_jsonl(source, on_bad)
    return read_parquet(source, on_bad)


def text_problem(row: dict[str, Any], column: str) -> str | None:
    """Why ``row[column]`` is not usable text (missing, not a string, empty, unencodable), or None."""
    if column not in row:
        return f"no {column!r} field"
    value = row[column]
    if not isinstance(value, str):
        return f"{column}={value!r} is not a string"
    if not value.strip():
        return f"{column} is empty"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"{column} holds a lone UTF-16 surrogate ({value[err.start]!r}), not text"
    return None
