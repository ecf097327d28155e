"""Output rows, chunk files and the final file, for CSV, JSONL and Parquet outputs.

A chunk is stored in the form that makes the final file a plain concatenation where possible:

* JSONL: the chunk's final lines, byte for byte; the output is the chunks one after another.
* CSV: JSON lines of ``{column: cell string}``; the header is the union of every chunk's columns
  (first-seen order), known only at the end when rows have different keys (JSONL input).
* Parquet: one Parquet file per chunk; the output is written batch by batch under the union of
  the chunks' schemas (a Parquet input's own schema, plus the prediction columns).

The final file is written to a temporary file beside the output and renamed over it, so an
interrupted assembly leaves no half-written output.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import current_umask

SCORE_COLUMNS: tuple[str, ...] = ("label", "prob_negative", "prob_neutral", "prob_positive")
GENERATE_COLUMNS: tuple[str, ...] = SCORE_COLUMNS + ("raw_answer",)


def prediction_columns(mode: str) -> tuple[str, ...]:
    """The columns predict adds to every row in ``mode``."""
    return GENERATE_COLUMNS if mode == "generate" else SCORE_COLUMNS


def chunk_suffix(fmt: str) -> str:
    """Suffix of a chunk's data file for output format ``fmt``."""
    return ".parquet" if fmt == "parquet" else ".jsonl"


def json_default(value: Any) -> Any:
    """JSON for the Python values Parquet columns give (dates, decimals, bytes)."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_line(row: dict[str, Any]) -> str:
    """One JSONL line; strings holding lone surrogates (valid JSON escapes) are written escaped."""
    try:
        line = json.dumps(row, ensure_ascii=False, default=json_default)
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row, ensure_ascii=True, default=json_default)
    return line + "\n"


def csv_cell(value: Any) -> str:
    """A value as CSV text: strings as they are, None empty, everything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(json_default(value))
    except TypeError:  # numbers, booleans, lists, objects
        return json_line(value)[:-1]


def union_columns(column_lists: Sequence[Sequence[str]]) -> list[str]:
    """Every column of every list, in first-seen order."""
    return list(dict.fromkeys(c for columns in column_lists for c in columns))


def _prediction_fields(mode: str):
    import pyarrow as pa

    return [pa.field(c, pa.string() if c in ("label", "raw_answer") else pa.float64()) for c in prediction_columns(mode)]


def encode_chunk(fmt: str, rows: list[dict[str, Any]], columns: list[str], mode: str, input_schema=None) -> bytes:
    """A chunk's data file. ``columns``: the input columns of these rows (union, first-seen order);
    ``input_schema``: a Parquet input's schema, kept for a Parquet output."""
    if fmt == "jsonl":
        return "".join(json_line(row) for row in rows).encode("utf-8")
    if fmt == "csv":
        return "".join(json_line({k: csv_cell(v) for k, v in row.items()}) for row in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = _prediction_fields(mode)
    try:
        if input_schema is not None:
            schema = pa.schema(list(input_schema) + fields)
            table = pa.Table.from_pylist(rows, schema=schema)
        else:
            names = columns + [f.name for f in fields]
            data = {c: [row.get(c) for row in rows] for c in names}
            types = {f.name: f.type for f in fields}
            table = pa.table({c: pa.array(v, type=types.get(c)) for c, v in data.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise FinGPTError(f"these rows do not fit one Parquet column type each ({err}); write a .jsonl "
                          "or .csv output instead") from None
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "wb") -> Iterator[Any]:
    """A file handle whose content replaces ``path`` only once the block finishes without error."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def assemble(fmt: str, output: Path, chunk_files: Sequence[Path], chunk_columns: Sequence[Sequence[str]],
             mode: str) -> None:
    """Write the final ``output`` from the chunks' data files, in order, atomically."""
    if fmt == "jsonl":
        with atomic_output(output) as handle:
            for path in chunk_files:
                with open(path, "rb") as chunk:
                    while block := chunk.read(1 << 20):
                        handle.write(block)
    elif fmt == "csv":
        import csv

        columns = union_columns(list(chunk_columns) + [list(prediction_columns(mode))])
        with atomic_output(output, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            for path in chunk_files:
                with open(path, encoding="utf-8") as chunk:
                    for line in chunk:
                        writer.writerow(json.loads(line))
    else:
        _assemble_parquet(output, chunk_files)


def _assemble_parquet(output: Path, chunk_files: Sequence[Path]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(path) for path in chunk_files]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise FinGPTError(f"{output}: the rows' columns change type from chunk to chunk ({err}); write a "
                          ".jsonl or .csv output instead") from None
    schema = schema.remove_metadata()
    with atomic_output(output) as handle:
        with pq.ParquetWriter(handle, schema) as writer:
            for path in chunk_files:
                table = pq.read_table(path)
                columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
                           else pa.nulls(table.num_rows, f.type) for f in schema]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
