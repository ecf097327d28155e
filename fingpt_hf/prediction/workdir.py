"""The work directory ``OUTPUT.partial/`` that makes a prediction run resumable.

It holds ``manifest.json`` (the input's path, size, mtime and sha256, the model and adapter
fingerprints and every option that changes the labels or the chunk layout) and, per finished
chunk ``k``, ``chunk-k.<jsonl|parquet>`` (its rows) and then ``chunk-k.json`` (its metadata, with
the data file's sha256). Both are written atomically, the metadata last, so a chunk counts as
finished exactly when its metadata exists and the data file still has that digest; a kill at
any moment loses at most the chunk in progress.

A rerun with the same manifest continues at the first unfinished chunk; a different manifest is
an error naming each difference, unless ``--overwrite`` (then the directory is emptied). Size
and mtime are recorded but not compared: the content hash decides whether the input is the same
(they only spare re-hashing an untouched file).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import atomic_write_bytes, atomic_write_json, sha256_file

WORK_SUFFIX = ".partial"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
# Recorded for the user, not compared (see the module docstring).
UNCOMPARED = ("input.size", "input.mtime_ns")


def work_dir_for(output: Path) -> Path:
    """``OUTPUT.partial`` beside the output."""
    return output.with_name(output.name + WORK_SUFFIX)


def input_fingerprint(path: Path, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Path, size, mtime and sha256 of an input file; the previous run's digest is reused when
    path, size and mtime are unchanged (``previous``: that run's manifest ``input`` block)."""
    stat = path.stat()
    info = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if previous and all(previous.get(k) == v for k, v in info.items()) and previous.get("sha256"):
        return {**info, "sha256": previous["sha256"]}
    return {**info, "sha256": sha256_file(path)}


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def manifest_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every compared manifest entry that differs."""
    before, after = _flatten(old), _flatten(new)
    keys = [k for k in dict.fromkeys([*after, *before]) if k not in UNCOMPARED]
    return [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys if before.get(k) != after.get(k)]


def read_manifest(work: Path) -> dict[str, Any] | None:
    """The manifest in ``work``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((work / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ChunkStore:
    """Finished chunks in a work directory (see the module docstring)."""

    def __init__(self, path: Path, data_suffix: str):
        self.path = path
        self.data_suffix = data_suffix

    def data_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:06d}{self.data_suffix}"

    def meta_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:06d}.json"

    def finished(self) -> list[dict[str, Any]]:
        """Metadata of the finished chunks 0, 1, ... up to the first missing or damaged one."""
        metas = []
        while True:
            index = len(metas)
            try:
                meta = json.loads(self.meta_path(index).read_text(encoding="utf-8"))
                intact = meta.get("chunk") == index and sha256_file(self.data_path(index)) == meta.get("data_sha256")
            except (OSError, ValueError, AttributeError):
                intact = False
            if not intact:
                return metas
            metas.append(meta)

    def write(self, index: int, data: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        """Store one chunk durably: data first, then its metadata (which marks it finished)."""
        import hashlib

        atomic_write_bytes(self.data_path(index), data)
        meta = {"chunk": index, **meta, "data_sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_json(self.meta_path(index), meta)
        return meta

    def data_files(self, count: int) -> list[Path]:
        return [self.data_path(i) for i in range(count)]

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def open_work_dir(output: Path, manifest: dict[str, Any], data_suffix: str, overwrite: bool,
                  echo: Callable[[str], None]) -> tuple[ChunkStore, list[dict[str, Any]]]:
    """The work directory for ``manifest`` and its finished chunks (none for a fresh run).

    Raises FinGPTError when it holds another run's chunks (or files it did not write) and
    ``overwrite`` is off.
    """
    work = work_dir_for(output)
    store = ChunkStore(work, data_suffix)
    if work.exists() and not work.is_dir():
        raise FinGPTError(f"{work} exists and is not a directory; remove it (predict keeps its chunks there)")
    if work.is_dir():
        previous = read_manifest(work)
        leftovers = [p.name for p in work.iterdir() if not p.name.startswith(".")]
        if overwrite:
            echo(f"--overwrite: removing the earlier run's chunks in {work}")
            store.remove()
        elif previous is None and leftovers:
            raise FinGPTError(f"{work} holds files but no readable {MANIFEST_FILE}; it is not a predict run "
                              "this command can resume; pass --overwrite to empty it")
        elif previous is not None:
            changes = manifest_changes(previous, manifest)
            if changes:
                raise FinGPTError(f"{work} holds chunks of a different run ({'; '.join(changes)}); rerun the same "
                                  "command to finish that one, or pass --overwrite to start over")
    work.mkdir(exist_ok=True)
    for stale in work.glob(".*.tmp"):  # a write that a kill interrupted
        stale.unlink(missing_ok=True)
    atomic_write_json(work / MANIFEST_FILE, manifest)
    return store, store.finished()


def manifest_for(input_info: dict[str, Any], output: Path, output_format: str, model_info: dict[str, Any],
                 adapter_info: dict[str, Any] | None, options: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a run (see the module docstring)."""
    adapter = None
    if adapter_info:
        adapter = {k: adapter_info.get(k) for k in ("name_or_path", "revision", "hash")}
    return {
        "version": MANIFEST_VERSION, "input": input_info,
        "output": {"path": str(output.resolve()), "format": output_format},
        "model": {k: model_info.get(k) for k in ("name_or_path", "revision", "hash")},
        "adapter": adapter, "options": options,
    }


