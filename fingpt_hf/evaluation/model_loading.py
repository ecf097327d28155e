"""Load a base model (and optionally a LoRA adapter) for evaluation, and fingerprint both.

Everything that can be checked without weights is checked first (the adapter's files and its
base model), so a wrong pairing fails in a second, before anything large is loaded. Weights are
read from safetensors only; ``trust_remote_code`` is passed through only when the user asked.

Fingerprints recorded in results: ``sha256:<hex>`` of ``adapter_model.safetensors``; for a local
base model ``sha256:<hex>`` of its ``*.safetensors`` files (one file: that file's digest; shards:
the digest of the ``name digest`` lines) when they total at most ``FULL_HASH_LIMIT`` bytes, else
``files-sha256:<hex>`` of the ``name size`` lines (cheap, catches re-saved checkpoints but not
in-place edits of equal size). Digests are cached in ``$FINGPT_HF_CACHE/hashes.json`` keyed by
path, size and mtime, so a rerun does not re-read the weights. Hub models record the commit hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.hardware import cpu_supports_bf16
from fingpt_hf.io import atomic_write_json, sha256_file

logger = logging.getLogger(__name__)

FULL_HASH_LIMIT = 4 * 1024**3
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Config fields that must agree for an adapter to fit a base model whose name differs.
ARCHITECTURE_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                       "num_key_value_heads", "intermediate_size", "vocab_size")


@dataclass
class LoadedModel:
    """What the runner needs: the model in eval mode, its tokenizer and their provenance."""

    model: Any
    tokenizer: Any
    model_info: dict[str, Any]
    adapter_info: dict[str, Any] | None
    device: Any
    dtype: Any


# --- devices and dtypes ---------------------------------------------------------------------------

def resolve_device(device: str | None):
    import torch

    if device:
        try:
            resolved = torch.device(device)
        except RuntimeError as err:
            raise FinGPTError(f"--device {device!r}: {err}") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise FinGPTError(f"--device {device}: CUDA is not available on this machine")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str, device) -> Any:
    """``auto``: bf16 where the device computes it, fp16 on a CUDA GPU without bf16 (a 13B model in
    fp32 would need ~52 GB), fp32 otherwise."""
    import torch

    if dtype in ("fp32", "bf16", "fp16"):
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return torch.float32


# --- fingerprints -----------------------------------------------------------------------------------

def _hash_cache_path() -> Path:
    from fingpt_hf.families.default_model import default_cache_root

    return default_cache_root() / "hashes.json"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, cached by (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_path = _hash_cache_path()
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    cache[key] = sha256_file(path)
    try:
        atomic_write_json(cache_path, cache)
    except OSError as err:  # a read-only home is no reason to fail an evaluation
        logger.debug("could not cache hash in %s: %s", cache_path, err)
    return cache[key]


def weights_fingerprint(directory: str | os.PathLike) -> str | None:
    """Fingerprint of a local checkpoint's safetensors files (see the module docstring)."""
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        return None
    total = sum(f.stat().st_size for f in files)
    if total > FULL_HASH_LIMIT:
        listing = "".join(f"{f.name} {f.stat().st_size}\n" for f in files)
        return "files-sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    if len(files) == 1:
        return "sha256:" + file_sha256(files[0])
    lines = "".join(f"{f.name} {file_sha256(f)}\n" for f in files)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


# --- adapter checks -------------------------------------------------------------------------------

def _hub_file(repo_id: str, filename: str, revision: str | None, what: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not available"
        raise FinGPTError(
            f"{what} {repo_id!r}: cannot get {filename} (not a local directory, and the Hub "
            f"download failed: {type(err).__name__}: {err})"
        ) from None


def adapter_files(adapter: str, revision: str | None = None) -> tuple[Path, Path]:
    """``(adapter_config.json, adapter_model.safetensors)`` of a local adapter or a Hub one;
    the weights file's safetensors header and size are checked."""
    from fingpt_hf.io import check_safetensors_file

    local = Path(adapter).expanduser()
    if local.is_dir():
        config, weights = local / ADAPTER_CONFIG, local / ADAPTER_WEIGHTS
        if not config.is_file():
            raise FinGPTError(f"--adapter {local}: no {ADAPTER_CONFIG}; not a peft adapter directory")
        if not weights.is_file():
            other = [p.name for p in local.glob("adapter_model.*")]
            hint = f" (found {', '.join(other)}; only safetensors are loaded)" if other else ""
            raise FinGPTError(f"--adapter {local}: no {ADAPTER_WEIGHTS}{hint}")
        # A cut-short copy would otherwise fail only at load time, with a raw SafetensorError.
        return config, check_safetensors_file(weights, "--adapter")
    if local.exists() or adapter.startswith((".", "/", "~")):
        raise FinGPTError(f"--adapter {adapter}: not a directory")
    return (_hub_file(adapter, ADAPTER_CONFIG, revision, "--adapter"),
            check_safetensors_file(_hub_file(adapter, ADAPTER_WEIGHTS, revision, "--adapter"), "--adapter"))


def read_adapter_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FinGPTError(f"{path}: cannot read the adapter config ({err})") from None
    if not isinstance(data, dict):
        raise FinGPTError(f"{path}: expected a JSON object")
    return data


def _norm_name(name: str) -> str:
    return str(name).strip().rstrip("/").lower()


def _load_config(name: str, revision: str | None, trust_remote_code: bool):
    """The model config of a name/path, or None when it cannot be had (offline, unknown)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001 - any failure only means "cannot compare configs"
        logger.debug("cannot load config of %s: %s", name, err)
        return None


def check_adapter_base(
    model: str,
    adapter_base: str | None,
    adapter: str,
    config_path: Path,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> None:
    """Raise FinGPTError unless the adapter's recorded base model is ``model`` (or the same architecture).

    Same name or path (case-insensitive, resolved) passes. Otherwise both configs are loaded and
    must agree on ARCHITECTURE_FIELDS; if one cannot be loaded, the last path components must match.
    """
    from fingpt_hf.families.default_model import resolve_model_path

    if not adapter_base:
        raise FinGPTError(f"{config_path}: no base_model_name_or_path; cannot check that --adapter {adapter} fits "
                          f"--model {model} (pass --allow-base-mismatch to evaluate anyway)")
    if _norm_name(adapter_base) == _norm_name(model):
        return
    resolved_model, resolved_base = resolve_model_path(model), _resolved_or_same(adapter_base, resolve_model_path)
    if Path(resolved_model).exists() and Path(resolved_base).exists():
        if Path(resolved_model).resolve() == Path(resolved_base).resolve():
            return
    ours = _load_config(resolved_model, revision, trust_remote_code)
    theirs = _load_config(resolved_base, None, trust_remote_code)
    hint = "pass --allow-base-mismatch to evaluate anyway"
    if ours is not None and theirs is not None:
        diffs = [f"{f}: {getattr(theirs, f, None)!r} vs {getattr(ours, f, None)!r}"
                 for f in ARCHITECTURE_FIELDS if getattr(theirs, f, None) != getattr(ours, f, None)]
        if not diffs:
            return
        raise FinGPTError(
            f"--adapter {adapter} was trained on {adapter_base!r} ({config_path}), which differs from "
            f"--model {model}: {'; '.join(diffs)} (adapter base vs model); {hint}"
        )
    if Path(_norm_name(adapter_base)).name == Path(_norm_name(model)).name:
        return
    raise FinGPTError(
        f"--adapter {adapter} was trained on {adapter_base!r} ({config_path}), not --model {model}, and "
        f"their configs could not both be loaded to compare architectures; {hint}"
    )


def _resolved_or_same(name: str, resolve) -> str:
    try:
        return resolve(name)
    except FinGPTError:
        return name


def upcast_output_head(model) -> bool:
    """Compute the logits in float32 while the rest of the model runs in bf16/fp16.

    bf16 logits have ~3 significant digits (steps of 0.125 at 20), which ties or flips close
    labels; a float32 head costs little (score mode computes one position per example). The head
    gets its own float32 copy of the weight, so tied input embeddings stay in the low dtype.
    Returns False (and changes nothing) when the head is not a plain ``nn.Linear``.
    """
    import torch

    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.weight.dtype == torch.float32:
        return False
    new = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None,
                          device=head.weight.device, dtype=torch.float32)
    with torch.no_grad():
        new.weight.copy_(head.weight.float())
        if head.bias is not None:
            new.bias.copy_(head.bias.float())
    new.register_forward_pre_hook(lambda module, args: (args[0].float(), *args[1:]))
    model.set_output_embeddings(new)
    return True


@dataclass
class ModelSource:
    """Paths and fingerprints known before any weights are loaded."""

    model: str
    model_path: str
    model_info: dict[str, Any]
    adapter_info: dict[str, Any] | None
    adapter_dir: Path | None = None  # local directory (or Hub snapshot) holding the adapter's files
    adapter_config: dict[str, Any] | None = None  # its adapter_config.json, as read once here

    def training_settings(self) -> dict[str, Any] | None:
        """What the adapter's training run recorded (``fingpt_run.json``), or None without one."""
        from fingpt_hf.provenance import read_run_info

        return read_run_info(self.adapter_dir) if self.adapter_dir is not None else None


def inspect_sources(
    model: str,
    adapter: str | None = None,
    revision: str | None = None,
    adapter_revision: str | None = None,
    allow_base_mismatch: bool = False,
    trust_remote_code: bool = False,
) -> ModelSource:
    """Resolve the model, check the adapter against it and fingerprint both (no weights loaded)."""
    from fingpt_hf.families.default_model import resolve_model_path

    model_path = resolve_model_path(model)
    local = Path(model_path).expanduser()
    if not local.exists() and model_path.startswith((".", "/", "~")):
        raise FinGPTError(f"--model {model}: no such directory")
    model_info = {"name_or_path": model, "revision": revision,
                  "hash": weights_fingerprint(local) if local.is_dir() else None}
    adapter_info = adapter_dir = adapter_config = None
    if adapter:
        config_path, weights_path = adapter_files(adapter, adapter_revision)
        adapter_dir = config_path.parent
        adapter_config = read_adapter_config(config_path)
        if not allow_base_mismatch:
            check_adapter_base(model, adapter_config.get("base_model_name_or_path"), adapter, config_path,
                               revision, trust_remote_code)
        adapter_info = {"name_or_path": adapter, "revision": adapter_revision,
                        "hash": "sha256:" + file_sha256(weights_path),
                        "base_model_name_or_path": adapter_config.get("base_model_name_or_path")}
    return ModelSource(model, model_path, model_info, adapter_info, adapter_dir, adapter_config)


def read_model_config(source: ModelSource, trust_remote_code: bool = False) -> Any:
    """The base model's config (no weights), or None when it cannot be read."""
    return _load_config(source.model_path, source.model_info["revision"], trust_remote_code)


def load_model(
    source: ModelSource,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    merge_adapter: bool = True,
    device_map: str | None = None,
    before_weights: Callable[[Any, Any, Any], None] | None = None,
) -> LoadedModel:
    """Load the tokenizer and model (plus adapter), ready for batched left-padded inference.

    ``before_weights(tokenizer, family, config)`` runs once the tokenizer is ready and before any
    weights load: checks that need only the tokenizer fail in seconds there.

    The base is loaded straight onto its device in the target dtype (``device_map="auto"``
    spreads it over every visible GPU), and the adapter is attached (and merged) there: a large
    base model never passes through CPU memory in float32.
    """
    import torch
    from transformers import AutoTokenizer

    from fingpt_hf.families.loading import load_causal_lm
    from fingpt_hf.families.registry import check_remote_code, get_family
    from fingpt_hf.families.tokenization import prepare_tokenizer

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    revision = source.model_info["revision"]
    config = _load_config(source.model_path, revision, trust_remote_code)
    if config is None:
        raise FinGPTError(f"--model {source.model}: cannot load its config (not a local model directory, and not "
                          "on the Hub or in the local cache)")
    family = get_family(config)
    check_remote_code(family, trust_remote_code)
    tokenizer_source = source.model_path
    adapter_dir = source.adapter_dir
    if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").is_file():
        tokenizer_source = str(adapter_dir)  # the trainer saves the tokenizer it used next to the adapter
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_source, revision=None if adapter_dir and tokenizer_source == str(adapter_dir) else revision,
        trust_remote_code=trust_remote_code,
    )
    prepare_tokenizer(tokenizer, family)
    tokenizer.padding_side = "left"
    if before_weights is not None:
        before_weights(tokenizer, family, config)
    model = load_causal_lm(source.model_path, dtype=torch_dtype, revision=revision, trust_remote_code=trust_remote_code,
                           device_map=device_map or str(torch_device), option="--model")
    if source.model_info["revision"] is None:
        source.model_info["revision"] = getattr(model.config, "_commit_hash", None)
    if source.adapter_info:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter_info["name_or_path"],
                                          revision=source.adapter_info["revision"], is_trainable=False)
        if merge_adapter:
            model = model.merge_and_unload()
    if torch_dtype != torch.float32:
        upcast_output_head(model)
    model.eval()
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model, tokenizer, source.model_info, source.adapter_info, model.device, torch_dtype)
