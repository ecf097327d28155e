"""Evaluation results files: one ``result.json`` per data set and the run's aggregate.

The layout and schema are the contract in ``docs/ARCHITECTURE.md`` ("Evaluation output layout").
Every file is written atomically, one data set at a time, so an interrupted evaluation keeps every
data set that had finished and a rerun can skip them (see ``runner.py``).

Besides the schema's keys a result records what makes two runs comparable for resuming
(``limit``, ``batch_size``, ``max_new_tokens``, ``dtype``, ``device``, ``scoring``); readers must
ignore keys they do not know.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import atomic_write_json, atomic_write_text

RESULTS_SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
AGGREGATE_FILE = "results.json"
MARKDOWN_FILE = "results.md"
PREDICTIONS_FILE = "predictions.jsonl"
CONFUSION_FILE = "confusion_matrix.png"

# Keys every result must have (the schema in docs/ARCHITECTURE.md).
REQUIRED_KEYS: tuple[str, ...] = (
    "schema_version", "model", "adapter", "dataset", "split", "num_rows", "mode", "parser",
    "prompt_style", "metrics", "examples_per_second", "seed", "versions", "started_at", "finished_at",
)
REQUIRED_METRICS: tuple[str, ...] = (
    "accuracy", "f1_macro", "f1_micro", "f1_weighted", "invalid_rate", "per_class", "confusion_matrix",
)


def _check_version(path: Path, obj: Mapping[str, Any], where: str = "") -> None:
    version = obj.get("schema_version")
    prefix = f"{path}{where}"
    if version is None:
        raise FinGPTError(f"{prefix}: no 'schema_version'; not a fingpt-hf results file")
    if not isinstance(version, int) or version < RESULTS_SCHEMA_VERSION:
        raise FinGPTError(
            f"{prefix}: results schema version {version!r} is older than the supported version "
            f"{RESULTS_SCHEMA_VERSION}; re-run `fingpt-hf eval` to regenerate it"
        )
    if version > RESULTS_SCHEMA_VERSION:
        raise FinGPTError(
            f"{prefix}: results schema version {version} is newer than this fingpt-hf supports "
            f"({RESULTS_SCHEMA_VERSION}); upgrade fingpt-hf"
        )


def validate_result(result: Mapping[str, Any], path: str | os.PathLike = "<result>", where: str = "") -> None:
    """Raise FinGPTError naming ``path`` if ``result`` is not a complete schema-1 result."""
    path = Path(path)
    if not isinstance(result, Mapping):
        raise FinGPTError(f"{path}{where}: a result must be a JSON object, got {type(result).__name__}")
    _check_version(path, result, where)
    missing = [key for key in REQUIRED_KEYS if key not in result]
    if missing:
        raise FinGPTError(f"{path}{where}: result is missing key(s) {', '.join(missing)}")
    metrics = result["metrics"]
    if not isinstance(metrics, Mapping) or any(key not in metrics for key in REQUIRED_METRICS):
        have = sorted(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
        raise FinGPTError(f"{path}{where}: 'metrics' must have {', '.join(REQUIRED_METRICS)}; found {have}")


def validate_results(data: Any, path: str | os.PathLike = "<results>") -> dict[str, Any]:
    """Check an aggregate ``{"schema_version", "run", "results"}`` (from a file or built in memory)
    and return it with ``run`` filled in; raise FinGPTError naming ``path`` and the data set."""
    path = Path(path)
    if not isinstance(data, Mapping):
        raise FinGPTError(f"{path}: expected a JSON object, got {type(data).__name__}")
    _check_version(path, data)
    results = data.get("results")
    if not isinstance(results, dict):
        raise FinGPTError(f"{path}: 'results' must be an object mapping data set names to results")
    for name, result in results.items():
        validate_result(result, path, where=f" (results.{name})")
    return {"schema_version": data["schema_version"], "run": data.get("run", {}), "results": results}


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FinGPTError(f"{path}: results file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FinGPTError(f"{path}: not valid JSON ({err})") from None


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file and return it in the aggregate form ``{"schema_version", "run", "results"}``.

    ``path`` may be an output directory (its ``results.json`` is read), an aggregate
    ``results.json``, or one data set's ``result.json`` (wrapped as a one-data-set aggregate whose
    ``run`` is empty). An older, newer or missing schema version, or a result lacking schema keys,
    raises FinGPTError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / AGGREGATE_FILE
    data = _read_json(path)
    if not isinstance(data, dict):
        raise FinGPTError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if "results" not in data:  # a single data set's result.json
        validate_result(data, path)
        return {"schema_version": RESULTS_SCHEMA_VERSION, "run": {}, "results": {data["dataset"]: data}}
    return validate_results(data, path)


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """One data set's ``result.json``, validated."""
    path = Path(path)
    data = _read_json(path)
    validate_result(data, path)
    return data


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}"


def render_markdown_table(results: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]]) -> str:
    """A markdown table with one row per data set; metrics are shown x100 (percent).

    ``results`` is the aggregate's ``results`` mapping (name -> result) or a list of results.
    """
    rows = list(results.values()) if isinstance(results, Mapping) else list(results)
    header = (
        "| Data set | Split | Rows | Mode | Parser | Accuracy | F1 macro | F1 micro | F1 weighted "
        "| Invalid % | Examples/s |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        m = r["metrics"]
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['num_rows']} | {r['mode']} | {r.get('parser') or '-'} "
            f"| {_pct(m['accuracy'])} | {_pct(m['f1_macro'])} | {_pct(m['f1_micro'])} "
            f"| {_pct(m['f1_weighted'])} | {_pct(m['invalid_rate'])} | {float(r['examples_per_second']):.2f} |"
        )
    return "\n".join(lines) + "\n"


def _model_line(results: Sequence[Mapping[str, Any]]) -> str:
    if not results:
        return ""
    first = results[0]
    text = f"Model: `{first['model']['name_or_path']}`"
    if first.get("adapter"):
        text += f" + adapter `{first['adapter']['name_or_path']}`"
    if first.get("prompt_style"):  # None for baselines that use no prompt (TF-IDF)
        text += f" (prompt style {first['prompt_style']})"
    return text + ". Metrics x100.\n\n"


def write_predictions(path: str | os.PathLike, records: Sequence[Mapping[str, Any]]) -> Path:
    """``predictions.jsonl``: one JSON object per example, in data set order."""
    text = "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records)
    return atomic_write_text(path, text)


def write_result(
    output_dir: str | os.PathLike,
    result: Mapping[str, Any],
    run: Mapping[str, Any] | None = None,
) -> Path:
    """Rewrite ``DIR/results.json`` and ``DIR/results.md``, then write ``DIR/NAME/result.json``.

    The aggregate keeps every data set already in ``DIR/results.json`` (finished earlier in this
    or an interrupted run) and adds or replaces this one. ``result.json`` is written last because
    it is what marks a data set finished (a rerun skips it): a run killed at any point leaves
    either no marker, or a marker whose result is already in the aggregate. Returns its path.
    """
    from fingpt_hf.data.names import check_dataset_name

    output_dir = Path(output_dir)
    check_dataset_name(result.get("dataset"), f"{output_dir}: result's data set name")  # never a path
    result_path = output_dir / result["dataset"] / RESULT_FILE
    validate_result(result, result_path)
    aggregate_path = output_dir / AGGREGATE_FILE
    if aggregate_path.is_file():
        aggregate = load_results(aggregate_path)
    else:
        aggregate = {"schema_version": RESULTS_SCHEMA_VERSION, "run": {}, "results": {}}
    if run is not None:
        aggregate["run"] = dict(run)
    aggregate["results"][result["dataset"]] = dict(result)
    atomic_write_json(aggregate_path, aggregate)
    ordered = list(aggregate["results"].values())
    _write_markdown(output_dir, ordered)
    return atomic_write_json(result_path, dict(result))


def _write_markdown(output_dir: Path, results: Sequence[Mapping[str, Any]]) -> Path:
    return atomic_write_text(output_dir / MARKDOWN_FILE, "# Evaluation results\n\n" + _model_line(results)
                             + render_markdown_table(results))


def rebuild_aggregate(output_dir: str | os.PathLike) -> dict[str, Any]:
    """Replace an unreadable ``DIR/results.json`` by one built from the valid ``DIR/NAME/result.json``
    files (the per-data-set markers are the source of truth); the old file is kept as
    ``results.json.corrupt``. Unreadable ``result.json`` files are left out (a rerun evaluates them)."""
    output_dir = Path(output_dir)
    aggregate_path = output_dir / AGGREGATE_FILE
    try:
        os.replace(aggregate_path, output_dir / f"{AGGREGATE_FILE}.corrupt")
    except FileNotFoundError:  # another process of the same run got there first
        pass
    results: dict[str, Any] = {}
    for path in sorted(output_dir.glob(f"*/{RESULT_FILE}")):
        try:
            result = load_result(path)
        except FinGPTError:
            continue
        if result.get("dataset") == path.parent.name:
            results[path.parent.name] = result
    aggregate = {"schema_version": RESULTS_SCHEMA_VERSION, "run": {}, "results": results}
    atomic_write_json(aggregate_path, aggregate)
    _write_markdown(output_dir, list(results.values()))
    return aggregate
