"""File helpers: atomic writes, so an interrupted run never leaves a half-written output behind,
and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files; match a plain open()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def replace_directory(build: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename the finished directory ``build`` to ``target`` (both on one file system).

    An existing ``target`` is moved aside first and removed only once ``build`` is in place; if
    that rename fails, the old ``target`` is put back, so ``target`` is never half-written.
    """
    import shutil

    build, target = Path(build), Path(target)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old.")) / target.name
        os.replace(target, old)
    try:
        os.replace(build, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
    return target


def ensure_writable_dir(path: str | os.PathLike, option: str) -> Path:
    """Prove that ``path`` can be written (or created) by creating and removing a probe file in it,
    or, when it does not exist yet, in its nearest existing parent; nothing is left behind.

    Called before any work, so a run whose output cannot be written fails in a second instead of
    after the whole evaluation or build, and a run refused for another reason leaves no empty
    directory. The probe is a real write, not ``os.access``: that answers "yes" to root for a
    read-only directory and knows nothing of read-only mounts.
    """
    from fingpt_hf.errors import FinGPTError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise FinGPTError(f"{option} {path}: is a file, not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FinGPTError(f"{option} {path}: cannot create it, {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".fingpt-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "directory" if existing == path else f"folder {existing} it would be created in"
        raise FinGPTError(f"{option} {path}: the {where} is not writable ({err.strerror})") from None
    return path


def check_output_dir(path: str | os.PathLike, option: str, *, allow_existing: bool = False,
                     sources: tuple[str | os.PathLike, ...] = ()) -> Path:
    """The one check of a directory a command is about to write, run before any work.

    ``path`` must not be a file; a non-empty directory is refused unless ``allow_existing`` (the
    caller's ``--overwrite``, or a command that resumes inside it: training, evaluation); it must
    not be, or lie inside, one of ``sources`` (the model or adapter being read, which replacing
    it would destroy); and it must be writable (``ensure_writable_dir``).
    """
    from fingpt_hf.errors import FinGPTError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise FinGPTError(f"{option} {path}: is a file, not a directory")
    if not allow_existing and path.is_dir() and any(path.iterdir()):
        raise FinGPTError(f"{option} {path}: exists and is not empty; pass --overwrite to replace it")
    resolved = path.resolve()
    for source in sources:
        source = Path(source).resolve()
        if resolved == source or resolved in source.parents:
            raise FinGPTError(f"{option} {path}: would replace the model or adapter it is made from ({source})")
    return ensure_writable_dir(path, option)


def ensure_writable_file(path: str | os.PathLike, option: str) -> Path:
    """A file about to be written (atomically, next to itself): not a directory, parent writable."""
    from fingpt_hf.errors import FinGPTError

    path = Path(path).expanduser()
    if path.is_dir():
        raise FinGPTError(f"{option} {path}: is a directory, not a file")
    ensure_writable_dir(path.parent, f"{option} {path}: its folder")
    return path


def check_safetensors_file(path: str | os.PathLike, what: str) -> Path:
    """Check a safetensors file's header and that its size matches it (a cut-short copy fails here).

    The format is an 8-byte little-endian header length, a JSON header whose tensors give
    ``data_offsets`` into the data that follows, and exactly that data; reading only the header
    is cheap and turns a truncated download into an error naming the file, not a SafetensorError.
    """
    from fingpt_hf.errors import FinGPTError

    path = Path(path)
    size = path.stat().st_size
    problem = None
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
        if length is None:
            problem = f"{size} bytes, shorter than a safetensors header"
        elif length > min(size - 8, 100 * 1024**2):
            problem = f"header of {length} bytes does not fit in the file's {size} bytes"
        else:
            try:
                header = json.loads(handle.read(length).decode("utf-8"))
                ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
            except (ValueError, UnicodeDecodeError, TypeError, KeyError, IndexError, AttributeError):
                problem = "unreadable safetensors header"
            else:
                expected = 8 + length + max(ends, default=0)
                if size != expected:
                    problem = f"{size} bytes, but its header describes {expected}"
    if problem:
        raise FinGPTError(f"{what} {path}: {problem}; the file is truncated or damaged, copy or download it again")
    return path
