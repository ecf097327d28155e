"""Convert a checkpoint in its original Hub layout into a native transformers checkpoint.

The flow: resolve the source (local directory or Hub id at a revision), read its ``config.json``
as JSON (never its remote code), pick the family's ``Converter``, check everything that can be
checked without reading weights (every shard present and whole, every tensor name and shape maps
onto the native model, the tokenizer fits the embedding), then stream the shards one at a time
into sharded safetensors in a temporary directory beside the output, and rename it into place.
Peak memory is about one source shard plus one output shard, not the whole model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingpt_hf.conversion.spec import SOURCE_KEY, ConversionError, Converter, read_json_object
from fingpt_hf.io import atomic_write_json, atomic_write_text, check_output_dir, replace_directory, sha256_file

logger = logging.getLogger(__name__)

CONVERSION_FILE = "fingpt_conversion.json"
CONVERSION_SCHEMA_VERSION = 1
DEFAULT_MAX_SHARD_BYTES = 2 * 1024**3
DTYPES = ("auto", "float16", "bfloat16", "float32")
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_HUB_PATTERNS = ("*.json", "*.safetensors", "*.bin", "*.model", "*.tiktoken")


def converters() -> tuple[Converter, ...]:
    """One instance of every family converter (imported here so the families stay lazy)."""
    from fingpt_hf.conversion.baichuan2 import Baichuan2Converter
    from fingpt_hf.conversion.chatglm2 import ChatGLM2Converter
    from fingpt_hf.conversion.qwen import QwenConverter

    return (Baichuan2Converter(), ChatGLM2Converter(), QwenConverter())


@dataclass
class Source:
    """A source checkpoint on local disk, with where it came from."""

    path: Path
    name: str
    revision: str | None
    config: dict[str, Any] = field(default_factory=dict)
    weight_files: list[Path] = field(default_factory=list)


# --- the source -----------------------------------------------------------------------------------

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def resolve_source(src: str, revision: str | None = None) -> Source:
    """A local directory as is; otherwise a Hub id downloaded (config, weights, tokenizer files only)."""
    local = Path(src).expanduser()
    if local.is_dir():
        if revision:
            raise ConversionError(f"--revision {revision}: {src} is a local directory; a revision applies to Hub ids only")
        return Source(path=local.resolve(), name=str(local.resolve()), revision=None)
    if local.exists():
        raise ConversionError(f"{src} is a file; give the checkpoint's directory (the one holding config.json)")
    if not _HUB_ID.fullmatch(src) or ".." in src:
        raise ConversionError(f"{src}: no such directory, and not a Hub id of the form owner/name")
    from huggingface_hub import constants, snapshot_download

    if constants.HF_HUB_OFFLINE:
        raise ConversionError(
            f"{src} is not a local directory and the Hub is offline (HF_HUB_OFFLINE=1); download the "
            "checkpoint first or give its local directory"
        )
    try:
        from huggingface_hub import HfApi

        commit = HfApi().model_info(src, revision=revision).sha
        path = snapshot_download(src, revision=commit, allow_patterns=list(_HUB_PATTERNS))
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not available"
        raise ConversionError(f"{src}: cannot download from the Hub ({type(err).__name__}: {err})") from None
    return Source(path=Path(path), name=src, revision=commit)


def read_config(source: Source) -> dict[str, Any]:
    path = source.path / "config.json"
    if not path.is_file():
        raise ConversionError(f"{path}: missing; is {source.name} a model checkpoint?")
    return read_json_object(path)


def find_converter(config: dict[str, Any], where: Path) -> Converter:
    model_type = str(config.get("model_type", ""))
    for converter in converters():
        if model_type in converter.source_model_types:
            return converter
    known = ", ".join(f"{c.title} (model_type {'/'.join(c.source_model_types)})" for c in converters())
    raise ConversionError(
        f"{where / 'config.json'}: model_type {model_type!r} (architectures {config.get('architectures')}) "
        f"is not a layout this command converts; it converts {known}"
    )


def weight_files(directory: Path) -> list[Path]:
    """The checkpoint's weight files: from its index when it has one, else its single file."""
    for index_name in _INDEX_FILES:
        index = directory / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise ConversionError(f"{index}: not a valid shard index ({err})") from None
            files = [directory / name for name in dict.fromkeys(weight_map.values())]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise ConversionError(f"{index} lists shards that are missing: {', '.join(missing)}")
            return files
    for single in _SINGLE_FILES:
        if (directory / single).is_file():
            return [directory / single]
    raise ConversionError(
        f"{directory}: no weights (looked for {', '.join(_INDEX_FILES + _SINGLE_FILES)})"
    )


# --- reading tensors ---------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                       "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The header of a safetensors file, after checking the file holds every byte it declares."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as err:
        raise ConversionError(f"{path}: not a readable safetensors file ({err})") from None
    header.pop("__metadata__", None)
    end = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    if 8 + length + end > size:
        raise ConversionError(f"{path}: truncated ({size} bytes, its header needs {8 + length + end})")
    return header


def meta_tensors(path: Path) -> dict[str, Any]:
    """Every tensor of one weight file as a meta tensor (names, shapes, dtypes; no data read)."""
    import torch

    if path.suffix == ".safetensors":
        return {name: torch.empty(entry["shape"], dtype=getattr(torch, _SAFETENSORS_DTYPES[entry["dtype"]]),
                                  device="meta")
                for name, entry in _safetensors_header(path).items()}
    return _torch_load(path, map_location="meta")


def _torch_load(path: Path, **kwargs: Any) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, weights_only=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - zip and unpickling errors alike mean a bad file
        raise ConversionError(f"{path}: not a readable PyTorch weights file ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def iter_tensors(path: Path) -> Iterator[tuple[str, Any]]:
    """The tensors of one weight file, one at a time (safetensors) or memory-mapped (.bin)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)
    else:
        yield from _torch_load(path, map_location="cpu", mmap=True).items()


# --- checks before anything is written -------------------------------------------------------------------

def _convert_one(converter: Converter, name: str, tensor: Any, config: dict[str, Any], path: Path) -> list[tuple[str, Any]]:
    try:
        return converter.convert_tensor(name, tensor, config)
    except KeyError:
        raise ConversionError(
            f"{path}: tensor {name!r} is not part of the {converter.title} layout; is this a "
            f"{converter.title} checkpoint?"
        ) from None


def expected_state(native_config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the native model's weights (built on the meta device: no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(native_config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_layout(converter: Converter, source: Source, native_config: Any) -> str:
    """Dry-run the mapping on meta tensors: every native weight made once, with its shape.

    Returns the dtype most of the source's floating weights are stored in (read from the same
    headers, so the shards are opened once before the conversion proper).
    """
    expected = expected_state(native_config)
    produced: dict[str, tuple[str, tuple[int, ...]]] = {}
    stored: dict[str, int] = {}
    for path in source.weight_files:
        for name, tensor in meta_tensors(path).items():
            if tensor.is_floating_point():
                key = str(tensor.dtype).removeprefix("torch.")
                stored[key] = stored.get(key, 0) + tensor.numel()
            for native_name, native in _convert_one(converter, name, tensor, source.config, path):
                if native_name in produced:
                    raise ConversionError(f"{path}: {native_name} made twice ({produced[native_name][0]} and {name})")
                produced[native_name] = (name, tuple(native.shape))
    missing = sorted(set(expected) - set(produced))
    if missing:
        raise ConversionError(
            f"{source.path}: the checkpoint lacks weights the {converter.native_architecture} needs "
            f"({len(missing)}, e.g. {missing[:3]}); is a shard missing or from another model?"
        )
    extra = sorted(set(produced) - set(expected))
    if extra:
        raise ConversionError(f"{source.path}: tensors with no place in {converter.native_architecture}: {extra[:3]}")
    for native_name, (name, shape) in produced.items():
        if shape != expected[native_name]:
            raise ConversionError(
                f"{source.path}: {name} gives {native_name} of shape {list(shape)}, but config.json "
                f"implies {list(expected[native_name])}"
            )
    return max(stored, key=stored.get) if stored else "float32"


def check_tokenizer(converter: Converter, tokenizer: Any, native_config: Any, source: Source) -> None:
    vocab = native_config.get_text_config().vocab_size
    if len(tokenizer) > vocab:
        files = ", ".join(converter.tokenizer_files)
        raise ConversionError(
            f"{source.path}: the tokenizer ({files}) has {len(tokenizer)} tokens but the model's "
            f"embedding has {vocab} rows; the tokenizer belongs to another model"
        )


# --- writing -----------------------------------------------------------------------------------------

class ShardWriter:
    """Collects tensors and writes a safetensors shard each time ``max_bytes`` would be passed."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory, self.max_bytes = directory, max_bytes
        self.pending: dict[str, Any] = {}
        self.pending_bytes = 0
        self.shards: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: Any) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + size > self.max_bytes:
            self.flush()
        self.pending[name] = tensor.contiguous()
        self.pending_bytes += size
        self.total_bytes += size

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.pending:
            return
        path = self.directory / f".shard-{len(self.shards):05d}.safetensors"
        save_file(self.pending, str(path), metadata={"format": "pt"})
        self.shards.append((path, list(self.pending)))
        self.pending, self.pending_bytes = {}, 0

    def finish(self) -> list[str]:
        """Rename the shards to transformers' names, write the index; returns the file names."""
        self.flush()
        count = len(self.shards)
        if count == 1:
            self.shards[0][0].rename(self.directory / "model.safetensors")
            return ["model.safetensors"]
        weight_map: dict[str, str] = {}
        names = []
        for i, (path, keys) in enumerate(self.shards, start=1):
            name = f"model-{i:05d}-of-{count:05d}.safetensors"
            path.rename(self.directory / name)
            weight_map.update(dict.fromkeys(keys, name))
            names.append(name)
        atomic_write_json(self.directory / "model.safetensors.index.json",
                          {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))})
        return names


def _target_dtype(dtype: str, tensor: Any):
    import torch

    if dtype == "auto" or not tensor.is_floating_point():
        return tensor.dtype
    return getattr(torch, dtype)


def _readme(converter: Converter, source: Source, hashes: dict[str, str], warnings: list[str], dtype: str) -> str:
    revision = source.revision or "(local directory, no Hub revision)"
    lines = [
        f"# {Path(source.name).name} (converted by fingpt-hf)",
        "",
        f"The {converter.title} checkpoint `{source.name}` (revision `{revision}`) converted by "
        f"`fingpt-hf model convert` into a native transformers `{converter.native_architecture}` "
        f"({dtype}). It loads with `AutoModelForCausalLM.from_pretrained(DIR)` and "
        "`AutoTokenizer.from_pretrained(DIR)`; no remote code is needed or run.",
        "",
        "## What changed",
        "",
        *[f"- {change}" for change in converter.changes()],
        "",
    ]
    if warnings:
        lines += ["## Differences from the original code", "", *[f"- {w}" for w in warnings], ""]
    lines += ["## Source files (sha256)", "", "| file | sha256 |", "|---|---|",
              *[f"| {name} | `{digest}` |" for name, digest in hashes.items()], "",
              "The original model's licence applies to these weights.", ""]
    return "\n".join(lines)


def convert_checkpoint(
    src: str,
    output: str | os.PathLike,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> Path:
    """Convert ``src`` (directory or Hub id) into a native checkpoint at ``output``; returns it."""
    import transformers

    from fingpt_hf import __version__

    if dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    output = Path(output).expanduser()
    check_output_dir(output, "--output", allow_existing=overwrite)
    source = resolve_source(src, revision)
    source.config = read_config(source)
    converter = find_converter(source.config, source.path)
    missing = [name for name in converter.tokenizer_files if not (source.path / name).is_file()]
    if missing:
        raise ConversionError(f"{source.path}: missing tokenizer file(s) {', '.join(missing)} of {converter.title}")
    source.weight_files = weight_files(source.path)
    native_config = converter.native_config(source.config)
    stored_dtype = check_layout(converter, source, native_config)
    tokenizer = converter.build_tokenizer(source.path, source.config)
    check_tokenizer(converter, tokenizer, native_config, source)
    generation_config = converter.build_generation_config(source.path, source.config, tokenizer)
    warnings = converter.warnings(source.config)
    for warning in warnings:
        logger.warning("%s: %s", converter.title, warning)

    saved_dtype = stored_dtype if dtype == "auto" else dtype
    used = ["config.json", *converter.tokenizer_files,
            *[name for name in _INDEX_FILES if (source.path / name).is_file()],
            *[str(p.relative_to(source.path)) for p in source.weight_files]]
    hashes = {name: sha256_file(source.path / name) for name in used}
    provenance = {"family": converter.family, "source": source.name, "revision": source.revision}
    native_config.dtype = saved_dtype
    setattr(native_config, SOURCE_KEY, provenance)

    _remove_stale_builds(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=output.resolve().parent, prefix=f".{output.name}.convert.{os.getpid()}."))
    try:
        writer = ShardWriter(build, max_shard_bytes)
        for path in source.weight_files:
            logger.info("converting %s", path.name)
            for name, tensor in iter_tensors(path):
                for native_name, native in _convert_one(converter, name, tensor, source.config, path):
                    writer.add(native_name, native.to(_target_dtype(dtype, native)))
        files = writer.finish()
        native_config.save_pretrained(build)
        generation_config.save_pretrained(build)
        tokenizer.save_pretrained(build)
        atomic_write_json(build / CONVERSION_FILE, {
            "schema_version": CONVERSION_SCHEMA_VERSION, **provenance,
            "source_model_type": source.config.get("model_type"),
            "native_architecture": converter.native_architecture, "dtype": saved_dtype,
            "source_files_sha256": hashes, "weight_files": files, "warnings": warnings,
            "versions": {"fingpt-hf": __version__, "transformers": transformers.__version__},
        })
        atomic_write_text(build / "README.md", _readme(converter, source, hashes, warnings, saved_dtype))
        replace_directory(build, output)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return output


def _remove_stale_builds(output: Path) -> None:
    """Remove build directories beside ``output`` left by conversions that were killed."""
    for build in output.resolve().parent.glob(f".{output.name}.convert.*.*"):
        pid = build.name.split(".")[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(build, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True
