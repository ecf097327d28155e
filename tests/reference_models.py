"""The seed models' original remote code, imported as the oracle for conversion tests.

The files live in ``../shared/reference-models`` (or ``$FINGPT_REFERENCE_MODELS``), never in this
repository. ``import_reference`` copies the chosen files into a fresh package under a temporary
directory (so relative imports such as ``from .configuration_qwen import ...`` work) and imports
it. Transformers-5 shims are applied by each family's test module, never here and never in the
library. The library never runs this code: only tests do, to check the converted models.
"""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path(os.environ.get("FINGPT_REFERENCE_MODELS", REPO_ROOT.parent / "shared" / "reference-models"))
_COUNTER = itertools.count()


def reference_path(folder: str, name: str = "") -> Path:
    """A file (or the folder) of the reference copies; fails the test clearly when absent."""
    import pytest

    path = REFERENCE_DIR / folder / name
    if not path.exists():
        pytest.fail(f"reference model file {path} not found; set FINGPT_REFERENCE_MODELS")
    return path


def import_reference(folder: str, files: dict[str, str], tmp_dir: Path) -> ModuleType:
    """Import ``files`` ({module file name in the package: file name in the reference folder})
    as one package and return the package; its modules are reachable as attributes."""
    name = f"fingpt_reference_{folder.replace('-', '_')}_{next(_COUNTER)}"
    package_dir = Path(tmp_dir) / name
    package_dir.mkdir(parents=True)
    (package_dir / "__init__.py").write_text("")
    for target, source in files.items():
        shutil.copyfile(reference_path(folder, source), package_dir / target)
    sys.path.insert(0, str(tmp_dir))
    try:
        package = importlib.import_module(name)
        for target in files:
            if target.endswith(".py"):
                setattr(package, target[:-3], importlib.import_module(f"{name}.{target[:-3]}"))
    finally:
        sys.path.remove(str(tmp_dir))
    return package
