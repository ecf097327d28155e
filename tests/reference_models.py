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


#: How ``save_state`` lays a state dict out: one file, or two shards plus an index (the Hub's layouts).
LAYOUTS = ("safetensors", "safetensors-sharded", "bin", "bin-sharded")


def save_state(state: dict, dest: Path, layout: str) -> None:
    """Write ``state`` into ``dest`` as the original Hub repositories do (see ``LAYOUTS``)."""
    import json

    import torch
    from safetensors.torch import save_file

    def write(part: dict, name: str) -> None:
        if name.endswith(".safetensors"):
            save_file(part, str(dest / name), metadata={"format": "pt"})
        else:
            torch.save(part, dest / name)

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    stem, suffix = ("model", ".safetensors") if layout.startswith("safetensors") else ("pytorch_model", ".bin")
    if not layout.endswith("-sharded"):
        write(state, stem + suffix)
        return
    names = list(state)
    halves = (names[: len(names) // 2], names[len(names) // 2:])
    weight_map = {}
    for i, keys in enumerate(halves, start=1):
        shard = f"{stem}-{i:05d}-of-00002{suffix}"
        write({k: state[k] for k in keys}, shard)
        weight_map.update(dict.fromkeys(keys, shard))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (dest / f"{stem}{suffix}.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def load_state(checkpoint_dir: Path) -> dict:
    """Every tensor of a checkpoint written by ``save_state`` (any of its layouts)."""
    import torch
    from safetensors.torch import load_file

    files = sorted(Path(checkpoint_dir).glob("*.safetensors")) or sorted(Path(checkpoint_dir).glob("pytorch_model*.bin"))
    state: dict = {}
    for path in files:
        state.update(load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, weights_only=True))
    return state
