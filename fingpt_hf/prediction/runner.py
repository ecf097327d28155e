"""Label a user's file with a tuned model: read -> validate -> chunks -> model -> durable chunks -> output.

Order matters for the user, as in evaluation: options, the input (a full first pass over a file:
bad rows, the text column, clashing column names) and the output path are checked before the
model is loaded, and so is the adapter's fit (``inspect_sources``). Standard input is read once,
so its rows are checked as they arrive (a bad row then stops the run at that chunk).

Rows are predicted ``chunk_size`` at a time; each finished chunk is written durably into
``OUTPUT.partial/`` (``fingpt_hf.prediction.workdir``), and a rerun of the same command
continues at the first unfinished chunk. The final output is assembled atomically from the
chunks, after which the work directory is removed. Chunk boundaries depend only on the input and
``chunk_size``, and each chunk is predicted on its own, so a resumed run writes exactly what an
uninterrupted one writes.

Prompts and settings are evaluation's: ``format_prompt`` with FinGPT's news instruction by
default, the prompt style and ``max_length`` the adapter was trained with
(``fingpt_hf.evaluation.runner.apply_training_settings``, which only reads and fills
``prompt_style``/``max_length``, both fields of ``PredictConfig``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.data.labels import INVALID, LABELS
from fingpt_hf.data.prompts import NEWS_INSTRUCTION, format_prompt
from fingpt_hf.data.readers import (
    STDIN,
    csv_header,
    file_format,
    parquet_schema,
    read_parquet,
    read_records,
    record_unit,
    text_problem,
)
from fingpt_hf.errors import FinGPTError
from fingpt_hf.prediction.config import PredictConfig
from fingpt_hf.prediction.outputs import assemble, chunk_suffix, encode_chunk, json_default, prediction_columns
from fingpt_hf.prediction.workdir import (
    input_fingerprint,
    manifest_for,
    open_work_dir,
    read_manifest,
    work_dir_for,
)

# One record of the input in order: (record number, the row or None when bad, the problem or None).
Event = tuple[int, "dict[str, Any] | None", "str | None"]
SHOWN_BAD_ROWS = 10


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class PredictionSummary:
    """What a run did; ``seconds`` counts the model's work on this run's chunks only."""

    output: Path
    rows_written: int
    skipped: list[tuple[int, str]] = field(default_factory=list)
    chunks: int = 0
    resumed_at_chunk: int = 0
    rows_computed: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float | None:
        return self.rows_computed / self.seconds if self.seconds > 0 else None


# --- checks before the model -----------------------------------------------------------------------

def check_paths(config: PredictConfig) -> tuple[str, Path, str]:
    """(input format, output path, output format); FinGPTError for anything that cannot work."""
    if config.input != STDIN:
        source = Path(config.input).expanduser()
        if not source.exists():
            raise FinGPTError(f"--input {config.input}: no such file")
        if not source.is_file():
            raise FinGPTError(f"--input {config.input}: not a regular file")
    try:
        input_format = file_format(config.input)
    except DataFormatError as err:
        raise FinGPTError(f"--input {config.input}: {err.problem}") from None
    if config.output == STDIN:
        raise FinGPTError("--output -: predict writes a file (it keeps resumable chunks beside it); name one")
    output = Path(config.output).expanduser()
    try:
        output_format = file_format(output)
    except DataFormatError as err:
        raise FinGPTError(f"--output {config.output}: {err.problem}") from None
    parent = output.parent
    if not parent.is_dir():
        raise FinGPTError(f"--output {config.output}: directory {parent} does not exist")
    try:
        handle, probe = tempfile.mkstemp(dir=parent, prefix=f".{output.name}.", suffix=".probe")
    except OSError as err:
        raise FinGPTError(f"--output {config.output}: cannot write in {parent} ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)
    if output.is_dir():
        raise FinGPTError(f"--output {config.output}: is a directory")
    if config.input != STDIN and output.exists() and output.resolve() == Path(config.input).expanduser().resolve():
        raise FinGPTError(f"--output {config.output} is the input file; choose another output")
    if output.exists() and not config.overwrite and not work_dir_for(output).is_dir():
        raise FinGPTError(f"--output {config.output} already exists (a finished run?); pass --overwrite to replace it")
    return input_format, output, output_format


def check_columns(columns: Sequence[str], where: str, mode: str) -> None:
    """An input column named like a prediction column would be overwritten: refuse it."""
    clash = [c for c in prediction_columns(mode) if c in columns]
    if clash:
        raise FinGPTError(f"{where}: column(s) {', '.join(clash)} would be overwritten by the prediction; "
                          "rename them in the input")


def events(config: PredictConfig, input_format: str, text_only: bool = False) -> Iterator[Event]:
    """Every input record in order, good or bad; a bad row carries its problem (see ``Event``).

    ``text_only``: a Parquet input reads only the text column (enough to find bad rows).
    """
    pending: list[Event] = []
    unit = record_unit(input_format)
    per_row_columns = input_format == "jsonl"  # CSV and Parquet have one header, checked up front
    on_bad = lambda n, p: pending.append((n, None, p))  # noqa: E731 - runs before the next row is yielded
    if input_format == "parquet" and text_only:
        records = read_parquet(config.input, on_bad, columns=[config.text_column])
    else:
        records = read_records(config.input, on_bad)
    for number, row in records:
        yield from pending
        pending.clear()
        if per_row_columns:
            check_columns(row, f"{config.input}, {unit} {number}", config.mode)
        problem = text_problem(row, config.text_column)
        yield (number, None, problem) if problem else (number, row, None)
    yield from pending


def check_header(config: PredictConfig, input_format: str) -> Any:
    """The text column exists and no column clashes (CSV header, Parquet schema); the Parquet schema."""
    if input_format == "jsonl":
        return None
    names = csv_header(config.input) if input_format == "csv" else parquet_schema(config.input).names
    if config.text_column not in names:
        raise FinGPTError(f"{config.input}: no column {config.text_column!r} (--text-column); "
                          f"found {', '.join(names) or 'none'}")
    check_columns(names, config.input, config.mode)
    return parquet_schema(config.input) if input_format == "parquet" else None


def describe_bad(bad: Sequence[tuple[int, str]], unit: str) -> str:
    shown = "; ".join(f"{unit} {n}: {p}" for n, p in bad[:SHOWN_BAD_ROWS])
    more = f"; and {len(bad) - SHOWN_BAD_ROWS} more" if len(bad) > SHOWN_BAD_ROWS else ""
    return shown + more


def numbers_of(bad: Sequence[tuple[int, str]], limit: int = 100) -> str:
    numbers = ", ".join(str(n) for n, _ in bad[:limit])
    return numbers + (f", ... ({len(bad) - limit} more)" if len(bad) > limit else "")


def validate_file(config: PredictConfig, input_format: str) -> tuple[int, list[tuple[int, str]], list[tuple[int, str]]]:
    """The cheap first pass over a file (text column only): (records, good rows' (number, text),
    bad rows' (number, problem)); raises in error mode. The texts feed the length check, so the
    file is read twice in all: once here, once streaming the rows to label; when no length check
    runs (``--max-length`` given) they are not kept (``None``), so a large file is not held in memory."""
    keep_texts = config.max_length is None
    records, good, bad = 0, [], []
    for number, row, problem in events(config, input_format, text_only=True):
        records += 1
        if row is None:
            bad.append((number, problem))
        else:
            good.append((number, row[config.text_column] if keep_texts else None))
    unit = record_unit(input_format)
    if records == 0:
        raise FinGPTError(f"{config.input}: no rows to label")
    if bad and config.on_bad_row == "error":
        raise FinGPTError(f"{config.input}: {len(bad)} bad row(s): {describe_bad(bad, unit)}. Fix them, or pass "
                          "--on-bad-row skip to leave them out")
    return records, good, bad


# --- the model ------------------------------------------------------------------------------------

def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


def prompts_for(config: PredictConfig, texts: Sequence[str], tokenizer: Any) -> list[str]:
    """The prompt of each text: the run's instruction in its prompt style (what is scored and length-checked)."""
    return [format_prompt(config.instruction or NEWS_INSTRUCTION, text, style=config.prompt_style,
                          tokenizer=tokenizer) for text in texts]


def predict_texts(loaded, config: PredictConfig, texts: Sequence[str], progress: Callable | None = None
                  ) -> list[dict[str, Any]]:
    """The prediction columns for each text, in order (``config``'s prompt settings resolved), from
    the same ``predict`` that ``fingpt-hf eval`` runs (either backend)."""
    from fingpt_hf.evaluation.runner import predict

    if not texts:
        return []
    prompts = prompts_for(config, texts, loaded.tokenizer)
    raw, labels, scores = predict(loaded, config, prompts, progress)
    if scores is not None:
        return [{"label": label, **{f"prob_{name}": p for name, p in zip(LABELS, softmax(row))}}
                for label, row in zip(labels, scores)]
    empty = {f"prob_{name}": None for name in LABELS}
    return [{"label": label or INVALID, **empty, "raw_answer": answer} for answer, label in zip(raw, labels)]


def label_options(config: PredictConfig, dtype: str, output_format: str) -> dict[str, Any]:
    """Every option that changes the labels or the chunk layout (batch size and device only change speed)."""
    generate = config.mode == "generate"
    options = {
        "text_column": config.text_column, "instruction": config.instruction or NEWS_INSTRUCTION,
        "mode": config.mode, "parser": config.parser if generate else None,
        "max_new_tokens": config.max_new_tokens if generate else None,
        "prompt_style": config.prompt_style, "max_length": config.max_length,
        "dtype": dtype, "chunk_size": config.chunk_size, "output_format": output_format,
    }
    if config.backend == "vllm":  # another engine's numbers: a resume must not mix them with local chunks
        options.update(backend="vllm", vllm_model=config.vllm_model)
    return options


def _chunks(stream: Iterator[Event], size: int) -> Iterator[list[Event]]:
    chunk: list[Event] = []
    for event in stream:
        chunk.append(event)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def chunk_digest(chunk: Sequence[Event]) -> str:
    """sha256 of a chunk's records, so a resumed run can prove it reads the same rows (stdin too)."""
    digest = hashlib.sha256()
    for event in chunk:
        digest.update(json.dumps(event, sort_keys=True, ensure_ascii=True, default=json_default).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def resolved_dtype_name(config: PredictConfig, loaded) -> str:
    from fingpt_hf.evaluation.model_loading import resolve_device, resolve_dtype

    if config.backend == "vllm":
        return "vllm"  # the server's dtype; it does not report it

    dtype = loaded.dtype if loaded is not None else resolve_dtype(config.dtype, resolve_device(config.device))
    return str(dtype).replace("torch.", "")


# --- the run --------------------------------------------------------------------------------------

def check_lengths(config: PredictConfig, input_format: str, good: Sequence[tuple[int, str]]
                  ) -> Callable[[Any, Any, Any], None]:
    """A ``load_model(before_weights=...)`` check: without ``--max-length``, every prompt of the
    input file (``good``: the first pass's rows) must fit the model's context with its answer,
    named by its row (line/record) otherwise, before any weights load. Standard input cannot be
    read twice: its chunks are checked as they come (``check_chunk_lengths``)."""
    def check(tokenizer: Any, family: Any, model_config: Any) -> None:
        if config.max_length is not None or config.input == STDIN:
            return
        _check_texts(config, input_format, [t for _, t in good], [n for n, _ in good], tokenizer, family, model_config)
    return check


def _check_texts(config: PredictConfig, input_format: str, texts: Sequence[str], numbers: Sequence[int],
                 tokenizer: Any, family: Any, model_config: Any) -> None:
    from fingpt_hf.data.prompts import adds_special_tokens
    from fingpt_hf.families.tokenization import check_prompt_lengths, model_context

    unit = record_unit(input_format)
    prompts = prompts_for(config, texts, tokenizer)
    check_prompt_lengths(prompts, tokenizer, family, model_context(model_config), str(config.input),
                         adds_special_tokens(config.prompt_style), row_names=[f"{unit} {n}" for n in numbers])


def check_chunk_lengths(config: PredictConfig, input_format: str, loaded: Any, chunk: Sequence[Event]) -> None:
    """Standard input's length check, one chunk at a time (the chunks before it are kept)."""
    from fingpt_hf.families.registry import get_family

    if config.max_length is not None or config.input != STDIN or config.backend == "vllm":
        return
    rows = [(n, row) for n, row, _ in chunk if row is not None]
    _check_texts(config, input_format, [row[config.text_column] for _, row in rows], [n for n, _ in rows],
                 loaded.tokenizer, get_family(loaded.model.config), loaded.model.config)


def run_prediction(config: PredictConfig, echo: Callable[[str], None] = _stderr, loaded=None) -> PredictionSummary:
    """Label ``config.input`` into ``config.output`` (resuming an interrupted run); see the module docstring.

    ``loaded`` (a ``LoadedModel`` of ``config.model``/``config.adapter``) skips loading, for callers
    that predict several files with one model.
    """
    from tqdm.auto import tqdm

    from fingpt_hf.evaluation.model_loading import inspect_sources, load_model
    from fingpt_hf.evaluation.runner import apply_training_settings

    config.validate()
    input_format, output, output_format = check_paths(config)
    unit = record_unit(input_format)
    from_stdin = config.input == STDIN
    schema = check_header(config, input_format)
    total_records = total_rows = None
    good: list[tuple[int, str]] = []
    if not from_stdin:
        total_records, good, bad = validate_file(config, input_format)
        total_rows = len(good)
        if bad:
            echo(f"{len(bad)} bad row(s) will be skipped ({unit}s {numbers_of(bad)}): {describe_bad(bad, unit)}")
    source = inspect_sources(config.model, config.adapter, config.revision, config.adapter_revision,
                             config.allow_base_mismatch, config.trust_remote_code)
    for note in apply_training_settings(config, source):
        echo(note)
    previous = read_manifest(work_dir_for(output))
    if from_stdin:
        input_info: dict[str, Any] = {"path": STDIN}
    else:
        input_info = input_fingerprint(Path(config.input).expanduser(), (previous or {}).get("input"))
    manifest = manifest_for(input_info, output, output_format, source.model_info, source.adapter_info,
                            label_options(config, resolved_dtype_name(config, loaded), output_format))
    store, finished = open_work_dir(output, manifest, chunk_suffix(output_format), config.overwrite, echo)
    total_chunks = math.ceil(total_records / config.chunk_size) if total_records is not None else None
    if finished:
        done_rows = sum(m["rows"] for m in finished)
        of = f" of {total_chunks}" if total_chunks is not None else ""
        echo(f"resuming at chunk {len(finished)}{of} ({done_rows} row(s) already done in {store.path})")

    summary = PredictionSummary(output, 0, resumed_at_chunk=len(finished))
    metas: list[dict[str, Any]] = []
    bar = None
    stream = _chunks(events(config, input_format), config.chunk_size)
    try:
        for index, chunk in enumerate(stream):
            digest = chunk_digest(chunk)
            if index < len(finished):
                if finished[index].get("input_sha256") != digest:
                    raise FinGPTError(f"{config.input}: {unit}s {chunk[0][0]}-{chunk[-1][0]} differ from the ones "
                                      f"chunk {index} of the interrupted run in {store.path} was made from; pass "
                                      "--overwrite to start over")
                metas.append(finished[index])
                continue
            bad = [(n, p) for n, row, p in chunk if row is None]
            if bad and config.on_bad_row == "error":  # only stdin gets here: files were validated
                kept = f" Chunks 0-{index - 1} are kept in {store.path}; rerun to resume." if index else ""
                raise FinGPTError(f"{config.input}: bad row ({describe_bad(bad[:1], unit)}); pass --on-bad-row "
                                  f"skip to leave such rows out.{kept}")
            if bad and from_stdin:
                echo(f"chunk {index}: skipping {len(bad)} bad row(s): {describe_bad(bad, unit)}")
            rows = [row for _, row, _ in chunk if row is not None]
            if loaded is None and rows and config.backend == "vllm":
                from fingpt_hf.evaluation.vllm_backend import connect

                loaded = connect(source, config.vllm_url, config.vllm_model, config.trust_remote_code)
            elif loaded is None and rows:
                loaded = load_model(source, config.dtype, config.device, config.trust_remote_code,
                                    config.merge_adapter, before_weights=check_lengths(config, input_format, good))
            check_chunk_lengths(config, input_format, loaded, chunk)
            if bar is None:
                bar = tqdm(total=total_rows, initial=sum(m["rows"] for m in metas), unit="rows",
                           desc=f"predict ({config.mode})", file=sys.stderr, dynamic_ncols=True)
            started = time.perf_counter()
            predictions = predict_texts(loaded, config, [row[config.text_column] for row in rows],
                                        progress=bar.update)
            summary.seconds += time.perf_counter() - started
            summary.rows_computed += len(rows)
            out_rows = [{**row, **pred} for row, pred in zip(rows, predictions)]
            columns = list(dict.fromkeys(c for row in rows for c in row))
            try:
                data = encode_chunk(output_format, out_rows, columns, config.mode, schema)
            except FinGPTError as err:
                raise FinGPTError(f"{config.input}, {unit}s {chunk[0][0]}-{chunk[-1][0]}: {err}") from None
            metas.append(store.write(index, data, {
                "first": chunk[0][0], "last": chunk[-1][0], "records": len(chunk), "rows": len(rows),
                "skipped": [list(b) for b in bad], "input_sha256": digest, "columns": columns,
            }))
    except BaseException:
        if not metas and not finished:  # nothing finished: leave no work directory behind
            store.remove()
        raise
    finally:
        if bar is not None:
            bar.close()
    if len(metas) < len(finished):
        raise FinGPTError(f"{config.input} has fewer rows than the interrupted run in {store.path} had already "
                          "labelled; pass --overwrite to start over")
    if not metas:
        raise FinGPTError(f"{config.input}: no rows to label")
    assemble(output_format, output, store.data_files(len(metas)), [m["columns"] for m in metas], config.mode)
    store.remove()
    summary.chunks = len(metas)
    summary.rows_written = sum(m["rows"] for m in metas)
    summary.skipped = [(n, p) for m in metas for n, p in m["skipped"]]
    rate = f", {summary.rows_per_second:.1f} rows/s" if summary.rows_per_second else ""
    echo(f"wrote {summary.rows_written} row(s) to {output} ({summary.rows_computed} labelled in this run{rate})")
    if summary.skipped:
        echo(f"skipped {len(summary.skipped)} bad row(s): {unit}s {numbers_of(summary.skipped)}")
    return summary
