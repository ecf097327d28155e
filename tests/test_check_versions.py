"""scripts/check_versions.py: installed packages against pyproject.toml's floors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("check_versions", REPO / "scripts" / "check_versions.py")
check_versions = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(check_versions)


def test_installed_environment_meets_pyproject():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "check_versions.py")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_unmet_floors_are_reported():
    torch = metadata.version("torch")  # e.g. 2.13.0+cpu: its public version is what a pin means
    assert check_versions.problems([f"torch=={torch.split('+')[0]}"]) == []
    bad = check_versions.problems(["transformers>=99", "no-such-package-xyz>=1"])
    assert bad[0].startswith("transformers>=99: installed ") and bad[1] == "no-such-package-xyz>=1: not installed"
