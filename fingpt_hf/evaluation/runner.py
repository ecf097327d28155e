"""Run an evaluation: data sets -> predictions -> metrics -> result files, one data set at a time.

Order matters for the user: everything that can be wrong without a model (option values, data
files and labels, finished results with another config or an old schema, the adapter's base
model) is checked before the model is loaded. Each data set's files are written atomically as
soon as it finishes, and a rerun of the same command skips the data sets whose ``result.json``
records the same evaluation config, so an interrupted run loses at most the data set in progress.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingpt_hf.data.benchmarks import dataset_reference, load_benchmark
from fingpt_hf.data.labels import INVALID, LABELS
from fingpt_hf.data.prompts import PROMPT_STYLES, adds_special_tokens, format_prompt
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.config import EvalConfig
from fingpt_hf.evaluation.model_loading import LoadedModel, ModelSource, inspect_sources, load_model
from fingpt_hf.io import check_output_dir
from fingpt_hf.provenance import now_iso, package_versions
from fingpt_hf.evaluation.results import (
    AGGREGATE_FILE,
    CONFUSION_FILE,
    PREDICTIONS_FILE,
    RESULT_FILE,
    RESULTS_SCHEMA_VERSION,
    load_result,
    load_results,
    render_markdown_table,
    write_predictions,
    write_result,
)

logger = logging.getLogger(__name__)

@dataclass
class EvalDataset:
    """One data set to evaluate and where it came from.

    ``source`` holds what made the rows besides the name (a benchmark's data directory; a custom
    file's resolved path, columns, label map and instruction) and ``signature`` (set by ``plan``)
    everything its finished result must record to be reused, so neither can be left out of it.
    """

    name: str
    rows: Any  # datasets.Dataset with instruction/input/output/dataset
    dataset_id: str
    dataset_config: str | None
    split: str
    kind: str = "benchmark"  # "benchmark" or "custom"
    source: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, Any] | None = None


def check_labels(ds: EvalDataset) -> None:
    """Every gold label must be one of LABELS (error names the data set and row)."""
    for index, label in enumerate(ds.rows["output"]):
        if label not in LABELS:
            raise FinGPTError(f"data set {ds.name}: row {index} has label {label!r}, not one of {', '.join(LABELS)}; "
                              "map it with --label-map")


def load_eval_datasets(config: EvalConfig) -> list[EvalDataset]:
    """The benchmarks and the custom data set, cut to ``--limit`` rows, labels checked.

    The output directory's finished results are checked first (``check_finished_results``), so a
    broken ``results.json`` fails before data or model are loaded.
    """
    check_finished_results(config)
    out = []
    if config.dataset_names:
        from fingpt_hf.data.sources import resolve_data_dir

        root = resolve_data_dir(config.data_dir)
        origin = {"data_dir": str(root.resolve()) if root is not None else "hub"}
    for name in config.dataset_names:
        ref = dataset_reference(name)
        rows = load_benchmark(name, config.split, data_dir=config.data_dir)
        out.append(EvalDataset(name, rows, ref["dataset_id"], ref["dataset_config"], config.split,
                               kind="benchmark", source=dict(origin)))
    if config.custom:
        from fingpt_hf.data.custom import load_custom_dataset, normalise_label_map
        from fingpt_hf.data.prompts import NEWS_INSTRUCTION

        name = config.custom_dataset_name  # checked: a plain name, not a benchmark's
        path = Path(config.custom).expanduser().resolve()
        rows = load_custom_dataset(path, config.text_column, config.label_column,
                                   config.label_map_dict, instruction=config.instruction, name=name)
        label_map = normalise_label_map(config.label_map_dict)
        origin = {"path": str(path), "text_column": config.text_column, "label_column": config.label_column,
                  "label_map": dict(sorted(label_map.items())), "instruction": config.instruction or NEWS_INSTRUCTION}
        out.append(EvalDataset(name, rows, str(path), None, "custom", kind="custom", source=origin))
    for ds in out:
        if config.limit is not None and config.limit < len(ds.rows):
            ds.rows = ds.rows.select(range(config.limit))
        if len(ds.rows) == 0:
            raise FinGPTError(f"data set {ds.name}: no rows to evaluate")
        check_labels(ds)
    return out


def eval_signature(config: EvalConfig, source: ModelSource) -> dict[str, Any]:
    """What must match, for every data set of the run, for a finished result to count as this
    evaluation's (resume check): model, adapter and every option that changes prompts, labels or
    scoring. ``dataset_signature`` adds each data set's own identity and rows.

    Batch size, dtype and device are left out: they change speed, not which evaluation it is.
    """
    adapter = source.adapter_info
    return {
        "model": config.model, "model_revision": config.revision, "model_hash": source.model_info["hash"],
        "adapter": adapter["name_or_path"] if adapter else None,
        "adapter_revision": adapter["revision"] if adapter else None,
        "adapter_hash": adapter["hash"] if adapter else None,
        "mode": config.mode, "parser": config.parser if config.mode == "generate" else None,
        "prompt_style": config.prompt_style, "max_length": config.max_length, "limit": config.limit,
        "split": config.split,
        "max_new_tokens": config.max_new_tokens if config.mode == "generate" else None,
    }


def apply_training_settings(config: EvalConfig, source: ModelSource) -> list[str]:
    """Fill the prompt style and ``max_length`` left unset from what the adapter was trained with
    (its ``fingpt_run.json``), else the family's prompt style; returns a line saying which was used.

    A model evaluated with another prompt than it was trained on scores worse for no reason the
    user can see, so the run's own settings win over the defaults, and explicit options over both.
    """
    info = source.training_settings() or {}
    recipe = info.get("recipe") if isinstance(info.get("recipe"), dict) else {}
    where = f"{source.adapter_dir}/fingpt_run.json"
    notes = []
    if config.prompt_style is None:
        style = info.get("prompt_style") or recipe.get("prompt_style")
        if style in PROMPT_STYLES:
            config.prompt_style, origin = style, where
        else:
            from fingpt_hf.families.registry import get_family
            from fingpt_hf.evaluation.model_loading import read_model_config

            config.prompt_style = get_family(read_model_config(source)).prompt_style
            origin = "the model family's default"
        notes.append(f"prompt style {config.prompt_style} (from {origin}; --prompt-style overrides)")
    if config.max_length is None:
        length = info.get("max_length", recipe.get("max_length"))
        if isinstance(length, int) and length > 1:
            config.max_length = length
            notes.append(f"max_length {length} (from {where}; --max-length overrides)")
    return notes


def dataset_signature(signature: dict[str, Any], ds: EvalDataset) -> dict[str, Any]:
    """``signature`` plus what makes this data set's result: benchmark or custom, its id, config,
    split and source options (data directory; file path, columns, label map, instruction), and a
    content hash of the rows actually evaluated (after ``--limit``), so an edited file or mirror
    is never reported with the old numbers."""
    from fingpt_hf.data.mixture import content_hash

    own = {"dataset": ds.name, "dataset_kind": ds.kind, "dataset_id": ds.dataset_id,
           "dataset_config": ds.dataset_config, "split": ds.split}
    own.update({f"data_{key}": value for key, value in ds.source.items()})
    own.update(num_rows=len(ds.rows), rows_hash=content_hash(ds.rows))
    return {**signature, **own}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def signature_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key that differs, in the new signature's order."""
    keys = list(new) + [k for k in old if k not in new]
    return [f"{k}: {_shown(old.get(k))} -> {_shown(new.get(k))}" for k in keys if old.get(k) != new.get(k)]


def check_finished_results(config: EvalConfig) -> None:
    """An unreadable ``DIR/results.json`` (corrupt, old or new schema) stops the run naming the file
    and the way out; with ``--overwrite`` it is set aside and rebuilt from the finished data sets."""
    from fingpt_hf.evaluation.results import rebuild_aggregate

    output_dir = Path(config.output_dir)
    path = output_dir / AGGREGATE_FILE
    if not path.is_file():
        return
    try:
        load_results(path)
        return
    except FinGPTError as err:
        if not config.overwrite:
            raise FinGPTError(f"{err}; rerun the same command with --overwrite to set it aside "
                              f"({AGGREGATE_FILE}.corrupt) and rebuild it from the finished data sets") from None
        logger.warning("%s; rebuilding it (--overwrite)", err)
    rebuild_aggregate(output_dir)


def plan(config: EvalConfig, datasets: list[EvalDataset], signature: dict[str, Any]) -> list[EvalDataset]:
    """The data sets still to evaluate, each with its own signature (``ds.signature``); a finished
    one from another evaluation, or an unreadable one, is an error unless --overwrite."""
    output_dir = Path(config.output_dir)
    pending = []
    for ds in datasets:
        ds.signature = dataset_signature(signature, ds)
        path = output_dir / ds.name / RESULT_FILE
        if not path.is_file():
            pending.append(ds)
            continue
        try:
            previous = load_result(path)
        except FinGPTError as err:
            if not config.overwrite:
                raise FinGPTError(f"{err}; rerun the same command with --overwrite to evaluate {ds.name} "
                                  "again and replace it") from None
            pending.append(ds)
            continue
        if previous.get("eval_config") == ds.signature:
            logger.info("%s: already evaluated with this config (%s); skipping", ds.name, path)
            continue
        if not config.overwrite:
            theirs = previous.get("eval_config") or {}
            diffs = signature_changes(theirs if isinstance(theirs, dict) else {}, ds.signature)
            raise FinGPTError(f"{path} holds a result from a different evaluation ({'; '.join(diffs) or 'no config'}); "
                              "pass --overwrite to replace it or choose another --output-dir")
        pending.append(ds)
    return pending


def predict(loaded: LoadedModel, config: EvalConfig, prompts: list[str], progress: Callable | None = None
            ) -> tuple[list[str], list[str | None], list[list[float]] | None]:
    """Raw answers, parsed labels and (score mode) per-label log-likelihoods, in input order.

    ``config`` is an ``EvalConfig`` or a ``PredictConfig`` (the same mode, prompt and backend fields).
    """
    from fingpt_hf.families.registry import get_family

    add_special = adds_special_tokens(config.prompt_style)
    family = get_family(loaded.model.config)
    if config.backend == "vllm":  # same signatures, same token ids; the server computes
        from fingpt_hf.evaluation.vllm_backend import generate_answers, score_labels
    else:
        from fingpt_hf.evaluation.generation import generate_answers
        from fingpt_hf.evaluation.scoring import score_labels
    if config.mode == "score":
        from fingpt_hf.evaluation.scoring import pick_labels

        scores = score_labels(loaded.model, loaded.tokenizer, prompts, LABELS, batch_size=config.batch_size,
                              add_special_tokens=add_special, progress=progress, family=family,
                              max_length=config.max_length)
        labels = pick_labels(scores, LABELS)
        return list(labels), list(labels), scores
    from fingpt_hf.metrics.parsing import parse_answer

    answers = generate_answers(loaded.model, loaded.tokenizer, prompts, batch_size=config.batch_size,
                               max_new_tokens=config.max_new_tokens, add_special_tokens=add_special,
                               progress=progress, family=family, max_length=config.max_length)
    return answers, [parse_answer(a, config.parser) for a in answers], None


def process_state():
    """accelerate's ``PartialState``: one process, or one of several started by ``accelerate launch``
    (GPUs) or ``torchrun`` (CPUs, where accelerate needs ``cpu=True`` to join the gloo group)."""
    import os

    import torch
    from accelerate import PartialState

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        return PartialState(cpu=True)
    return PartialState()


def predict_sharded(loaded: LoadedModel, config: EvalConfig, prompts: list[str], progress: Callable | None = None
                    ) -> tuple[list[str], list[str | None], list[list[float]] | None]:
    """``predict`` with the rows split across the launched processes (contiguous slices) and the
    answers gathered back in input order on every process; one process: ``predict`` itself."""
    state = process_state()
    if state.num_processes == 1:
        return predict(loaded, config, prompts, progress)
    from accelerate.utils import gather_object

    with state.split_between_processes(list(range(len(prompts)))) as mine:
        part = predict(loaded, config, [prompts[i] for i in mine], progress) if mine else ([], [], [])
    parts = gather_object([part])  # one (raw, predicted, scores) per process, in process order
    raw = [a for p in parts for a in p[0]]
    predicted = [a for p in parts for a in p[1]]
    scores = [row for p in parts for row in (p[2] or [])] if config.mode == "score" else None
    return raw, predicted, scores


def evaluate_dataset(loaded: LoadedModel, config: EvalConfig, ds: EvalDataset, signature: dict[str, Any],
                     versions: dict[str, str | None]) -> dict[str, Any]:
    """Evaluate one data set and write its files; returns its result."""
    from tqdm.auto import tqdm

    from fingpt_hf.evaluation.plots import plot_confusion_matrix
    from fingpt_hf.metrics.scores import compute_sentiment_metrics

    started = now_iso()
    rows = ds.rows.to_list()
    prompts = dataset_prompts(ds, config, loaded.tokenizer)
    gold = [row["output"] for row in rows]
    state = process_state()
    with tqdm(total=len(rows), desc=f"{ds.name} ({config.mode})", unit="ex", file=sys.stderr,
              disable=not state.is_main_process) as bar:
        t0 = time.perf_counter()
        raw, predicted, scores = predict_sharded(loaded, config, prompts, progress=bar.update)
        elapsed = time.perf_counter() - t0
    metrics = compute_sentiment_metrics(predicted, gold, LABELS)
    out_dir = Path(config.output_dir) / ds.name
    if not state.is_main_process:  # every process holds the gathered answers; one writes the files
        state.wait_for_everyone()
        return {"metrics": metrics, "num_rows": len(rows),
                "examples_per_second": len(rows) / elapsed if elapsed > 0 else None}
    records = []
    for i, row in enumerate(rows):
        record = {"index": i, "text": row["input"], "gold": gold[i], "raw_answer": raw[i],
                  "prediction": predicted[i] if predicted[i] is not None else INVALID}
        if scores is not None:
            record["log_likelihoods"] = dict(zip(LABELS, scores[i]))
        records.append(record)
    write_predictions(out_dir / PREDICTIONS_FILE, records)
    cm = metrics["confusion_matrix"]
    plot_confusion_matrix(cm["matrix"], cm["labels"], f"{ds.name} ({config.mode}, n={len(rows)})",
                          out_dir / CONFUSION_FILE)
    result = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "model": dict(loaded.model_info), "adapter": dict(loaded.adapter_info) if loaded.adapter_info else None,
        "dataset": ds.name, "dataset_id": ds.dataset_id, "dataset_config": ds.dataset_config,
        "split": ds.split, "num_rows": len(rows), "mode": config.mode,
        "parser": config.parser if config.mode == "generate" else None,
        "prompt_style": config.prompt_style, "metrics": metrics,
        "examples_per_second": len(rows) / elapsed if elapsed > 0 else None,
        "seed": config.seed, "versions": versions, "started_at": started, "finished_at": now_iso(),
        # Beyond the schema: what the resume check compares, and how the numbers were made.
        "eval_config": signature, "limit": config.limit,
        "scoring": "sum_logprob" if config.mode == "score" else None,
        "batch_size": config.batch_size, "dtype": str(loaded.dtype).replace("torch.", ""),
        "device": str(loaded.device),
    }
    if state.num_processes > 1:
        result["processes"] = state.num_processes
    if config.backend == "vllm":  # what computed the numbers; the served weights are the user's to match
        result.update(backend="vllm", vllm_url=loaded.model.url, vllm_model=loaded.model.name)
    write_result(config.output_dir, result, run=run_block(config, loaded, versions))
    state.wait_for_everyone()
    return result


def dataset_prompts(ds: EvalDataset, config: EvalConfig, tokenizer: Any) -> list[str]:
    """The prompt of every row of ``ds``, as ``config``'s prompt style formats it."""
    return [format_prompt(row, style=config.prompt_style, tokenizer=tokenizer) for row in ds.rows.to_list()]


def check_lengths(datasets: list[EvalDataset], config: EvalConfig):
    """A ``load_model(before_weights=...)`` check: without ``--max-length``, every prompt of every
    data set must fit the model's context with its answer (named by data set and row otherwise)."""
    from fingpt_hf.families.tokenization import check_prompt_lengths, model_context

    def check(tokenizer: Any, family: Any, model_config: Any) -> None:
        if config.max_length is not None or model_config is None:
            return
        context = model_context(model_config)
        for ds in datasets:
            check_prompt_lengths(dataset_prompts(ds, config, tokenizer), tokenizer, family, context,
                                 f"data set {ds.name}", adds_special_tokens(config.prompt_style))
    return check


def run_block(config: EvalConfig, loaded: LoadedModel | None, versions: dict[str, str | None]) -> dict[str, Any]:
    run = {"config": config.to_dict(), "versions": versions, "updated_at": now_iso()}
    if loaded is not None:
        run.update(device=str(loaded.device), dtype=str(loaded.dtype).replace("torch.", ""))
    return run


def run_evaluation(config: EvalConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate ``config`` and return the aggregate results (``DIR/results.json``'s content)."""
    from transformers import set_seed

    config.validate()
    state = process_state()
    if not state.is_main_process:
        echo = lambda _: None  # noqa: E731 - one process reports
    # Resumable: finished data sets in it are checked against this run's signature (``plan``).
    check_output_dir(config.output_dir, "--output-dir", allow_existing=True)
    datasets = load_eval_datasets(config)
    source = inspect_sources(config.model, config.adapter, config.revision, config.adapter_revision,
                             config.allow_base_mismatch, config.trust_remote_code)
    for note in apply_training_settings(config, source):
        echo(note)
    signature = eval_signature(config, source)
    pending = plan(config, datasets, signature)
    skipped = [ds.name for ds in datasets if ds not in pending]
    if skipped:
        echo(f"Skipping finished data set(s) in {config.output_dir}: {', '.join(skipped)}")
    if pending:
        set_seed(config.seed)
        # Launched as several processes, each takes its own device (cuda:<local rank>, or the CPU).
        device = config.device or (str(state.device) if state.num_processes > 1 and not config.device_map else None)
        if config.backend == "vllm":  # no weights here: the tokenizer, and a handle on the server
            from fingpt_hf.evaluation.vllm_backend import connect

            loaded = connect(source, config.vllm_url, config.vllm_model, config.trust_remote_code)
            from fingpt_hf.families.registry import get_family

            check_lengths(pending, config)(loaded.tokenizer, get_family(loaded.model.config), loaded.model.config)
        else:
            loaded = load_model(source, config.dtype, device, config.trust_remote_code, config.merge_adapter,
                                device_map=config.device_map, before_weights=check_lengths(pending, config))
        versions = package_versions()
        for ds in pending:
            result = evaluate_dataset(loaded, config, ds, ds.signature, versions)
            m = result["metrics"]
            echo(f"{ds.name}: accuracy {100 * m['accuracy']:.2f}  F1 macro {100 * m['f1_macro']:.2f}  "
                 f"F1 weighted {100 * m['f1_weighted']:.2f}  invalid {100 * m['invalid_rate']:.2f}%  "
                 f"({result['num_rows']} rows, {result['examples_per_second']:.2f} ex/s)")
    aggregate = load_results(Path(config.output_dir) / AGGREGATE_FILE)
    wanted = {ds.name for ds in datasets}
    echo(render_markdown_table([r for n, r in aggregate["results"].items() if n in wanted]))
    return aggregate
