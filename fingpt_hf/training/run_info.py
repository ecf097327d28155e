"""What a training run leaves next to its adapter: ``recipe.yaml`` and ``fingpt_run.json``.

``recipe.yaml`` is the resolved recipe (every option the user set, from the recipe file and the
command line), so ``recipes/sft.py --config DIR/recipe.yaml`` repeats the run. ``fingpt_run.json``
says which run owns the directory (the recipe hash), how far it got, what data went in
(``MixtureReport``), the package versions and the training log.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from fingpt_hf.hardware import cpu_description
from fingpt_hf.io import atomic_write_json, atomic_write_text
from fingpt_hf.provenance import RUN_INFO_FILE, now_iso, package_versions, read_run_info

__all__ = ["RECIPE_FILE", "RUN_INFO_FILE", "SECRET_KEYS", "now_iso", "read_run_info", "recipe_hash", "write_recipe", "write_run_info"]

RECIPE_FILE = "recipe.yaml"
RUN_INFO_SCHEMA_VERSION = 1

#: Options that hold credentials. transformers masks every ``TrainingArguments`` field whose name
#: ends in ``_token`` in ``to_dict``/``repr`` (of SFTConfig's, ``eos_token``/``pad_token`` are
#: tokenizer tokens, not secrets); none of them is ever written to ``recipe.yaml``, hashed, or left
#: on the arguments the Trainer pickles into ``training_args.bin``.
SECRET_KEYS = frozenset({"hub_token"})

#: Options that steer how a run is executed or where it reports, not what it trains: a run
#: resumed with ``--resume_from_checkpoint`` or more logging is still the same run.
RUN_CONTROL_KEYS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "logging_dir", "report_to",
    "disable_tqdm", "logging_steps", "logging_first_step", "push_to_hub", "hub_model_id", "hub_private_repo",
    "hub_revision", "hub_strategy", "hub_token", "run_name", "data_dir", "dataloader_num_workers",
    "save_total_limit", "local_rank",
})

def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """sha256 of the options that decide what is trained (run-control options left out)."""
    content = {k: v for k, v in recipe.items() if k not in RUN_CONTROL_KEYS and k not in SECRET_KEYS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_recipe(output_dir: str | os.PathLike, recipe: Mapping[str, Any]) -> Path:
    """Write ``recipe.yaml``, without secrets: it is the file users share and re-run."""
    header = "# Resolved fingpt-hf recipe: re-run with `python recipes/sft.py --config recipe.yaml`\n"
    shared = {k: v for k, v in recipe.items() if k not in SECRET_KEYS}
    body = yaml.safe_dump(shared, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return atomic_write_text(Path(output_dir) / RECIPE_FILE, header + body)


def write_run_info(
    output_dir: str | os.PathLike,
    *,
    recipe: Mapping[str, Any],
    status: str,
    started_at: str,
    model: Mapping[str, Any],
    mixture: Mapping[str, Any] | None = None,
    eval_rows: int = 0,
    log_history: list[dict[str, Any]] | None = None,
    resumed_from: str | None = None,
    world_size: int = 1,
    finished_at: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``fingpt_run.json`` (atomically); ``status`` is ``running`` or ``completed``."""
    info = {
        "schema_version": RUN_INFO_SCHEMA_VERSION,
        "status": status,
        "recipe_hash": recipe_hash(recipe),
        "recipe_file": RECIPE_FILE,
        "model": dict(model),
        "mixture": dict(mixture) if mixture is not None else None,
        "eval_rows": eval_rows,
        "world_size": world_size,
        "resumed_from": resumed_from,
        "started_at": started_at,
        "finished_at": finished_at,
        "versions": package_versions(),
        "cpu": cpu_description(),  # what decides a CPU run's speed and its bf16 rounding
        "log_history": list(log_history or []),
    }
    if extra:
        info.update(extra)
    return atomic_write_json(Path(output_dir) / RUN_INFO_FILE, info)
