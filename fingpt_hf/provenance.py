"""Provenance shared by training, evaluation and the Hub: timestamps, package versions, and the
``fingpt_run.json`` that a training run leaves next to its adapter.

Evaluation reads ``fingpt_run.json`` (the prompt style and ``max_length`` a run trained with)
and the Hub code renders cards from it, so its name and reader live here rather than in
``fingpt_hf.training``, which neither may import.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

RUN_INFO_FILE = "fingpt_run.json"

VERSION_PACKAGES = ("fingpt-hf", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
                    "deepspeed", "tokenizers", "safetensors", "huggingface-hub", "bitsandbytes", "scikit-learn")


def now_iso() -> str:
    """The current UTC time, to the second, as ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    """Python's and each installed package's version (None for one not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def read_run_info(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run metadata in ``output_dir``, or None when there is none (or it is unreadable)."""
    path = Path(output_dir) / RUN_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None
