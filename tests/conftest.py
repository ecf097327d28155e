"""Shared test setup: offline Hub, the real data mirror, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "fingpt-data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("FINGPT_DATA_DIR", str(DEFAULT_DATA_DIR))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real FinGPT data mirror (FINGPT_DATA_DIR)."""
    path = Path(os.environ["FINGPT_DATA_DIR"])
    if not (path / "SOURCES.md").is_file():
        pytest.fail(f"FinGPT data mirror not found at {path}; set FINGPT_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The embedded SmolLM2-135M-Instruct as a standard safetensors checkpoint (prepared once)."""
    from fingpt_hf.families.default_model import prepare_default_model

    return Path(prepare_default_model())
