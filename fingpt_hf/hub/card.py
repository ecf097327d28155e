"""Model cards for fingpt-hf adapters, rendered with huggingface_hub's ``ModelCard`` from a Jinja template.

The YAML front matter (``base_model``, ``library_name: peft``, tags, datasets, licence and a
``model-index`` with every scalar metric of every benchmark) is built with ``ModelCardData`` and
``EvalResult`` so the Hub parses it like any other card; the body comes from
``templates/adapter_card.md.j2``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.results import AGGREGATE_FILE, load_results, validate_results
from fingpt_hf.io import atomic_write_text
from fingpt_hf.provenance import RUN_INFO_FILE

TEMPLATE_PATH = Path(__file__).with_name("templates") / "adapter_card.md.j2"
# Where an output directory may keep its aggregate results: evaluation writes DIR/results.json, and
# a training run that evaluates into OUTPUT_DIR/eval writes OUTPUT_DIR/eval/results.json.
RESULTS_LOCATIONS: tuple[str, ...] = (AGGREGATE_FILE, f"eval/{AGGREGATE_FILE}")
ADAPTER_CONFIG_FILE = "adapter_config.json"
# What `fingpt-hf export` leaves beside a merged model: how it was made (and how push knows it).
EXPORT_INFO_FILE = "fingpt_export.json"
FPB_LICENSE = "cc-by-nc-sa-3.0"
DEFAULT_LICENSE = "apache-2.0"
TASK_TYPE = "text-classification"
TASK_NAME = "Financial sentiment analysis"
TAGS = ["peft", "lora", "fingpt", "finance", "sentiment-analysis", "financial-sentiment-analysis"]
SHORT_NAMES = {"fpb": "FPB", "fiqa": "FiQA-SA", "tfns": "TFNS", "nwgi": "NWGI"}
BENCHMARK_ORDER = ("fpb", "fiqa", "tfns", "nwgi")
# First body line of every card we render. A README.md carrying it (or huggingface_hub's default
# template, which peft's save_pretrained writes) is regenerated on push; delete it to keep your edits.
GENERATED_MARKER = "<!-- fingpt-hf: generated model card; delete this line to keep your edits when pushing -->"
DEFAULT_TEMPLATE_MARKER = "<!-- Provide a quick summary of what the model is/does. -->"
EXAMPLE_INSTRUCTION = "What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}."


class MetricSpec(NamedTuple):
    """How one metric of a result is written in the model-index."""

    key: str  # key in result["metrics"]
    type: str  # model-index metric type (a Hub metric id where one exists)
    name: str  # human-readable name shown on the Hub
    args: dict[str, str] | None


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("accuracy", "accuracy", "Accuracy", None),
    MetricSpec("f1_macro", "f1", "F1 (macro)", {"average": "macro"}),
    MetricSpec("f1_micro", "f1", "F1 (micro)", {"average": "micro"}),
    MetricSpec("f1_weighted", "f1", "F1 (weighted)", {"average": "weighted"}),
    MetricSpec("invalid_rate", "invalid_rate", "Invalid answer rate", None),
)
COMPARED_METRICS = ("f1_weighted", "accuracy", "f1_macro")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FinGPTError(f"{path}: not valid JSON (line {err.lineno}): {err.msg}") from err
    except OSError as err:
        raise FinGPTError(f"{path}: cannot read: {err}") from err


def find_results(output_dir: str | os.PathLike) -> Path | None:
    """The aggregate results.json of an output directory, or None when it was never evaluated."""
    for relative in RESULTS_LOCATIONS:
        path = Path(output_dir) / relative
        if path.is_file():
            return path
    return None


def check_results(results: Any, source: str | os.PathLike = "results") -> dict[str, Any]:
    """The evaluation schema check (``validate_results``) plus what a model-index needs on top:
    every scalar metric a number in [0, 1] (a table's x100 values would be published as is)."""
    aggregate = validate_results(results, source)
    for name, result in aggregate["results"].items():
        for spec in METRICS:
            value = result["metrics"][spec.key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise FinGPTError(f"{source}: result {name!r} metric {spec.key!r} must be a fraction in [0, 1], got {value!r}")
    return aggregate


def load_training_info(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Read ``fingpt_run.json`` (what training records), or None when the directory has none."""
    path = Path(output_dir) / RUN_INFO_FILE
    if not path.is_file():
        return None
    info = _read_json(path)
    if not isinstance(info, Mapping):
        raise FinGPTError(f"{path}: expected a JSON object")
    return dict(info)


def _hub_model_id(value: Any) -> str | None:
    """``value`` if it can be a Hub model id (``base_model`` must be one), else None."""
    if not isinstance(value, str) or value.count("/") != 1 or Path(value).exists():
        return None
    try:
        validate_repo_id(value)
    except HFValidationError:
        return None
    return value


def _pct(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{100 * value:.1f}"


def _ordered(names: Sequence[str]) -> list[str]:
    known = [n for n in BENCHMARK_ORDER if n in names]
    return known + sorted(n for n in names if n not in BENCHMARK_ORDER)


def _label(name: str) -> str:
    return SHORT_NAMES.get(name, name)


def _benchmark_reference(name: str) -> dict[str, Any]:
    """Hub id and title of a FinGPT benchmark, from the data package; empty for user data sets."""
    from fingpt_hf.data.benchmarks import BENCHMARKS, dataset_reference

    if name not in BENCHMARKS:
        return {}
    return {**dataset_reference(name), "title": BENCHMARKS[name].title}


def _published_row(row: Any) -> dict[str, Any]:
    """Normalise a published row: a mapping ``{name, source, metrics}`` or an
    ``evaluation.published.PublishedModel`` (``scores`` plus a source per metric)."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        data: Mapping[str, Any] = dataclasses.asdict(row)
    elif isinstance(row, Mapping):
        data = row
    else:
        data = {key: getattr(row, key, None) for key in ("name", "source", "metrics", "scores", "sources")}
    sources = {}
    for metric, source in (data.get("sources") or {}).items():
        if isinstance(source, Mapping):
            label, url = source.get("label") or source.get("title"), source.get("url")
            sources[metric] = f"[{label}]({url})" if url else str(label)
    return {"name": str(data.get("name")), "metrics": data.get("metrics") or data.get("scores") or {},
            "source": data.get("source"), "sources": sources}


def _default_published() -> list[Any]:
    """The published rows fingpt-hf ships (FinGPT's README, the seed's Baichuan2-7B row, ...)."""
    from fingpt_hf.evaluation.published import load_published

    return list(load_published())


def _eval_results(results: Mapping[str, Mapping[str, Any]]) -> list[EvalResult]:
    """One EvalResult per (benchmark, metric), grouped by the Hub into one model-index entry per data set."""
    eval_results: list[EvalResult] = []
    seen: dict[tuple, str] = {}
    for name in _ordered(list(results)):
        result = results[name]
        reference = _benchmark_reference(name)
        dataset_type = result.get("dataset_id") or reference.get("dataset_id") or name
        config = result.get("dataset_config")
        split = result.get("split") or "test"
        key = (dataset_type, config, split)
        if key in seen:
            raise FinGPTError(
                f"results {seen[key]!r} and {name!r} both describe {dataset_type} {config or ''} {split}; "
                "the model-index can hold one entry per data set split"
            )
        seen[key] = name
        title = reference.get("title") or name
        for spec in METRICS:
            eval_results.append(
                EvalResult(
                    task_type=TASK_TYPE,
                    task_name=TASK_NAME,
                    dataset_type=dataset_type,
                    dataset_name=f"{_label(name)}: {title}" if title != name else name,
                    dataset_config=config,
                    dataset_split=split,
                    metric_type=spec.type,
                    metric_name=spec.name,
                    metric_args=dict(spec.args) if spec.args else None,
                    metric_value=float(result["metrics"][spec.key]),
                )
            )
    return eval_results


def _mixture_rows(training_info: Mapping[str, Any], results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per data set of the training mixture, from ``fingpt_run.json``'s ``mixture``.

    That is the ``MixtureReport`` training writes (``sources`` and ``skipped`` lists) or, in
    hand-written metadata, a mapping of data set names to ``{rows, weight}``.
    """
    mixture = training_info.get("mixture") or {}
    if not isinstance(mixture, Mapping):
        raise FinGPTError(f"{RUN_INFO_FILE}: 'mixture' must be a mixture report or map data set names to {{rows, weight}}")
    if isinstance(mixture.get("sources"), list):
        entries = {s["name"]: {"rows": s.get("rows_out"), "weight": s.get("weight")}
                   for s in mixture["sources"] if isinstance(s, Mapping) and "name" in s}
    else:
        entries = dict(mixture)
    rows = []
    for name in _ordered(list(entries)):
        entry = entries[name]
        entry = entry if isinstance(entry, Mapping) else {"rows": entry}
        dataset_id = (
            entry.get("dataset_id")
            or _benchmark_reference(name).get("dataset_id")
            or (results.get(name) or {}).get("dataset_id")
        )
        rows.append({"name": name, "rows": entry.get("rows"), "weight": entry.get("weight"), "dataset_id": dataset_id})
    return rows


def _skipped_sources(training_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Mixture sources the run left out (``on_missing: skip``), each with its reason."""
    mixture = training_info.get("mixture")
    skipped = mixture.get("skipped") if isinstance(mixture, Mapping) else None
    return [dict(s) for s in skipped or [] if isinstance(s, Mapping)]


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif value is not None:
        text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        out.append((prefix, text.replace("|", "\\|")))


def _comparison_tables(
    model_name: str, results: Mapping[str, Mapping[str, Any]], published: Sequence[Any]
) -> list[dict[str, Any]]:
    """Per metric, this adapter's row beside each published row, one column per data set."""
    rows = [_published_row(row) for row in published]
    tables = []
    for key in COMPARED_METRICS:
        spec = next(s for s in METRICS if s.key == key)
        has = [r for r in rows if any(key in (m or {}) for m in (r.get("metrics") or {}).values())]
        if not has:
            continue
        names = _ordered(list(dict.fromkeys([*results, *(d for r in has for d in (r.get("metrics") or {}))])))
        table_rows = [{"name": f"**{model_name}** (this adapter)",
                       "cells": [_pct((results.get(n) or {}).get("metrics", {}).get(key)) for n in names]}]
        for row in has:
            metrics = row.get("metrics") or {}
            table_rows.append({"name": str(row.get("name")),
                               "cells": [_pct((metrics.get(n) or {}).get(key)) for n in names]})
        by_source: dict[str, list[str]] = {}
        for r in has:
            if source := r["sources"].get(key) or r["source"]:
                by_source.setdefault(str(source), []).append(r["name"])
        sources = [f"{', '.join(names)}: {source}" for source, names in by_source.items()]
        tables.append({"metric_name": spec.name, "columns": [_label(n) for n in names], "rows": table_rows,
                       "sources": sources})
    return tables


def is_generated_card(text: str) -> bool:
    """Whether a README.md was generated (by fingpt-hf, or peft/transformers' default template), not hand-written."""
    return GENERATED_MARKER in text or DEFAULT_TEMPLATE_MARKER in text


def render_model_card(
    output_dir: str | os.PathLike | None = None,
    results: Mapping[str, Any] | None = None,
    training_info: Mapping[str, Any] | None = None,
    published: Sequence[Any] | None = None,
    *,
    adapter_config: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    license: str | None = None,
) -> ModelCard:
    """Build the adapter's model card.

    Anything not passed is read from ``output_dir``: ``results.json`` (or ``eval/results.json``),
    ``fingpt_run.json`` and ``adapter_config.json``; all are optional. ``published`` is a list of
    rows ``{"name", "source", "metrics": {dataset: {metric: fraction}}}`` or ``PublishedModel``s shown
    beside our numbers; None means the rows fingpt-hf ships, ``[]`` none.
    ``license`` defaults to FPB's CC BY-NC-SA 3.0 when FPB is in the training mixture, else Apache-2.0.
    """
    directory = Path(output_dir) if output_dir is not None else None
    results_dir = Path(".")
    source: str | os.PathLike = "results"
    if directory is not None:
        if not directory.is_dir():
            raise FinGPTError(f"output directory {directory} does not exist")
        if results is None and (path := find_results(directory)) is not None:
            results, source = load_results(path), path
            results_dir = path.parent.relative_to(directory)
        if training_info is None:
            training_info = load_training_info(directory)
        if adapter_config is None and (directory / ADAPTER_CONFIG_FILE).is_file():
            adapter_config = _read_json(directory / ADAPTER_CONFIG_FILE)
    per_dataset: dict[str, Mapping[str, Any]] = dict(check_results(results, source)["results"]) if results is not None else {}
    info: Mapping[str, Any] = training_info or {}
    adapter: Mapping[str, Any] = adapter_config or {}
    if repo_id is not None:
        from fingpt_hf.hub.repo_id import check_repo_id

        check_repo_id(repo_id)

    base_model = info.get("base_model") or adapter.get("base_model_name_or_path")
    base_hub_id = _hub_model_id(info.get("base_model_hub_id")) or _hub_model_id(base_model)
    converted = (info.get("model") or {}).get("converted_from")
    base_display = base_model or "the base model"
    if isinstance(converted, Mapping) and converted.get("source"):
        # The adapter sits on a `fingpt-hf model convert` checkpoint: the Hub knows the original.
        revision = converted.get("revision")
        base_hub_id = _hub_model_id(converted["source"]) or base_hub_id
        base_display = (f"{converted['source']}{f' (revision {revision})' if revision else ''}, converted to a "
                        f"native transformers checkpoint by `fingpt-hf model convert`"
                        f"{f' ({base_model})' if base_model else ''}")
    mixture = _mixture_rows(info, per_dataset)
    trained_on = {row["name"] for row in mixture}
    license = license or info.get("license") or (FPB_LICENSE if "fpb" in trained_on else DEFAULT_LICENSE)
    model_name = (repo_id or (directory.resolve().name if directory is not None else "fingpt-hf-adapter")).split("/")[-1]

    eval_results = _eval_results(per_dataset)
    card_data = ModelCardData(
        base_model=base_hub_id,
        library_name="peft",
        license=license,
        pipeline_tag="text-generation",
        tags=list(TAGS),
        datasets=list(dict.fromkeys(r["dataset_id"] for r in mixture if r["dataset_id"])) or None,
        language="en",
        metrics=["accuracy", "f1"] if eval_results else None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )

    results_rows = []
    plots = []
    for name in _ordered(list(per_dataset)):
        result = per_dataset[name]
        metrics = result["metrics"]
        results_rows.append({"label": _label(name), "num_rows": result.get("num_rows", "–"),
                             "mode": result.get("mode", "–"),
                             **{spec.key: _pct(metrics[spec.key]) for spec in METRICS}})
        plot = results_dir / name / "confusion_matrix.png"
        if directory is not None and (directory / plot).is_file():
            plots.append({"label": _label(name), "path": plot.as_posix()})

    hyperparameters: list[tuple[str, str]] = []
    _flatten("", info.get("recipe") or {}, hyperparameters)
    versions = info.get("versions") or next((r.get("versions") for r in per_dataset.values() if r.get("versions")), {})
    lora = None
    if adapter.get("peft_type", "LORA") == "LORA" and adapter.get("r") is not None:
        targets = adapter.get("target_modules")
        lora = {"r": adapter.get("r"), "lora_alpha": adapter.get("lora_alpha"),
                "lora_dropout": adapter.get("lora_dropout"),
                "target_modules": ", ".join(sorted(targets)) if isinstance(targets, (list, tuple, set)) else targets}
    report = info.get("mixture") if isinstance(info.get("mixture"), Mapping) else {}
    total = report.get("total_rows") or sum(r["rows"] for r in mixture if isinstance(r["rows"], int))
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        generated_marker=GENERATED_MARKER,
        title=f"{model_name}: LoRA adapter for financial sentiment analysis",
        repo_id=repo_id,
        base_model_display=base_display,
        converted=converted if isinstance(converted, Mapping) else None,
        base_model_load="CONVERTED_DIR" if isinstance(converted, Mapping) and converted.get("source")
        else base_hub_id or base_model or "BASE_MODEL",
        adapter_load=repo_id or (str(directory) if directory is not None else "ADAPTER_PATH"),
        peft_type=adapter.get("peft_type", "LORA"),
        lora=lora,
        mixture=mixture,
        skipped=_skipped_sources(info),
        has_training_info=training_info is not None,
        mixture_total=total or None,
        hyperparameters=hyperparameters,
        results=results_rows,
        comparison=_comparison_tables(model_name, per_dataset, _default_published() if published is None else published)
        if per_dataset else [],
        plots=plots,
        instruction=EXAMPLE_INSTRUCTION,
        fpb_trained="fpb" in trained_on,
        fpb_evaluated="fpb" in per_dataset,
        versions=sorted((str(k), str(v)) for k, v in (versions or {}).items()),
    )


def write_model_card(
    output_dir: str | os.PathLike,
    results: Mapping[str, Any] | None = None,
    training_info: Mapping[str, Any] | None = None,
    published: Sequence[Any] | None = None,
    *,
    repo_id: str | None = None,
    license: str | None = None,
) -> Path:
    """Render the card for ``output_dir`` and write it atomically to ``output_dir/README.md``."""
    card = render_model_card(output_dir, results, training_info, published, repo_id=repo_id, license=license)
    return atomic_write_text(Path(output_dir) / "README.md", str(card))
