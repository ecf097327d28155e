"""Import a script of benchmarks/ as a module: that folder is scripts, not a package."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_script(name: str):
    """``benchmarks/<name>.py`` as a module, with benchmarks/ on ``sys.path`` only while it imports
    (a test that calls code importing a sibling script at call time prepends it itself)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
