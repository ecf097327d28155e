"""Push a trained adapter's output directory, or a merged model from `fingpt-hf export`, to the
Hub in one commit.

The token comes from wherever huggingface_hub finds it (``HF_TOKEN``, the login cache) unless a
caller passes one (``recipes/sft.py --hub_token``, held in memory only); this module never writes
or logs it. Nothing local is written: a missing model card is rendered in
memory, so a failed upload leaves the output directory exactly as it was.
"""

from __future__ import annotations

import importlib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.utils import filter_repo_objects

from fingpt_hf.errors import FinGPTError
from fingpt_hf.hub.card import (
    ADAPTER_CONFIG_FILE, EXPORT_INFO_FILE, RESULTS_LOCATIONS, RUN_INFO_FILE, is_generated_card, render_model_card,
)
from fingpt_hf.hub.repo_id import check_repo_id

CARD_FILE = "README.md"
ADAPTER_PATTERNS = (ADAPTER_CONFIG_FILE, "adapter_model.safetensors")
TOKENIZER_PATTERNS = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja", "chat_template.json",
)
# Results and plots, at the top of the output directory or under eval/ (see card.RESULTS_LOCATIONS).
RESULT_PATTERNS = tuple(
    f"{Path(location).parent.as_posix()}/{name}".removeprefix("./")
    for location in RESULTS_LOCATIONS
    for name in ("results.json", "results.md", "*/result.json", "*/confusion_matrix.png")
)
# Only these are pushed: no optimizer states, checkpoints, pickled training args or predictions.
ALLOW_PATTERNS: tuple[str, ...] = (*ADAPTER_PATTERNS, *TOKENIZER_PATTERNS, CARD_FILE, RUN_INFO_FILE, *RESULT_PATTERNS)
# A merged export: the checkpoint (or GGUF file), tokenizer, the card export wrote and its record.
EXPORT_PATTERNS: tuple[str, ...] = (
    "config.json", "generation_config.json", "model.safetensors", "model-*-of-*.safetensors",
    "model.safetensors.index.json", "*.gguf", *TOKENIZER_PATTERNS, CARD_FILE, EXPORT_INFO_FILE,
)
# Trainer checkpoints and hidden files (e.g. an atomic write's temporary file) never go up.
IGNORE_PATTERNS: tuple[str, ...] = ("checkpoint-*", ".*", "*/.*")


def _upload_errors() -> tuple[type[BaseException], ...]:
    """What a failed upload raises: HfHubHTTPError/ConnectionError (OSError), bad metadata (ValueError),
    transport errors, and the RuntimeError that huggingface_hub wraps a failed LFS object upload in."""
    errors: list[type[BaseException]] = [OSError, ValueError, RuntimeError]
    for module in ("httpx2", "httpx"):  # huggingface_hub 2.x uses httpx2, 1.x httpx
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _describe(err: BaseException) -> str:
    """``Type: first line`` of an error and of what caused it (a wrapped LFS failure says little itself)."""
    parts = []
    while err is not None and len(parts) < 3:
        text = str(err).strip()
        parts.append(f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__)
        err = err.__cause__
    return "; caused by ".join(parts)


def is_export(output_dir: str | os.PathLike) -> bool:
    """Whether ``output_dir`` was written by `fingpt-hf export` (a merged model, not an adapter)."""
    return (Path(output_dir) / EXPORT_INFO_FILE).is_file()


def files_to_push(output_dir: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the files :func:`push_to_hub` uploads from ``output_dir``, sorted."""
    root = Path(output_dir)
    relative = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    allow = EXPORT_PATTERNS if is_export(root) else ALLOW_PATTERNS
    return sorted(filter_repo_objects(relative, allow_patterns=list(allow), ignore_patterns=list(IGNORE_PATTERNS)))


def retry_command(
    output_dir: str | os.PathLike, repo_id: str, private: bool = False, revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """The exact ``fingpt-hf push`` command that repeats a push."""
    argv = ["fingpt-hf", "push", str(output_dir), "--repo-id", repo_id]
    if private:
        argv.append("--private")
    if revision is not None:
        argv += ["--revision", revision]
    if commit_message is not None:
        argv += ["--commit-message", commit_message]
    return shlex.join(argv)


def push_to_hub(
    output_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    *,
    published: Sequence[Any] | None = None,
    token: str | None = None,
) -> str:
    """Upload adapter, tokenizer, model card, results and confusion plots of ``output_dir`` in one commit;
    for an export directory (``fingpt_export.json``), the merged weights or GGUF file, tokenizer,
    and the card and record export wrote, through the same commit.

    Creates the repository (and the ``revision`` branch) when missing. Returns the commit URL.
    A hand-written README.md in ``output_dir`` is uploaded as it is; a missing or generated one
    (see :func:`~fingpt_hf.hub.card.is_generated_card`) is rendered afresh in memory, with
    ``published`` rows beside the results. ``token`` None means huggingface_hub's usual lookup.
    Raises FinGPTError on bad input or a failed upload.
    """
    check_repo_id(repo_id)
    root = Path(output_dir)
    export = is_export(root)
    if not export and not (root / ADAPTER_CONFIG_FILE).is_file():
        raise FinGPTError(f"{root}: no {ADAPTER_CONFIG_FILE} (nor {EXPORT_INFO_FILE}); push expects the output "
                          "directory of a LoRA training run or of `fingpt-hf export`")
    if revision is not None and not revision.strip():
        raise FinGPTError("--revision must not be empty")
    files = files_to_push(root)
    if export and CARD_FILE not in files:
        raise FinGPTError(f"{root}: no {CARD_FILE}; `fingpt-hf export` writes one, export again")
    if not export and CARD_FILE in files and is_generated_card((root / CARD_FILE).read_text(encoding="utf-8", errors="replace")):
        files.remove(CARD_FILE)  # peft's placeholder card or an older fingpt-hf card: render a fresh one
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(root / path)) for path in files]
    if CARD_FILE not in files:
        card = render_model_card(root, published=published, repo_id=repo_id)
        operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(card).encode("utf-8")))
    message = commit_message or f"Upload fingpt-hf {'merged model' if export else 'adapter'} ({len(operations)} files)"

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id, operations=operations, commit_message=message, revision=revision, repo_type="model"
        )
    except _upload_errors() as err:
        raise FinGPTError(
            f"pushing {root} to {repo_id} failed ({_describe(err)}). "
            f"Local files were not changed. Check your token (HF_TOKEN or `hf auth login`) and network, "
            f"then retry with: {retry_command(root, repo_id, private, revision, commit_message)}"
        ) from err
    return info.commit_url
