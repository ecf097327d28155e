"""Hub repository ids: checked before any network call, so a typo fails fast and clearly."""

from __future__ import annotations

from huggingface_hub.utils import HFValidationError, validate_repo_id

from fingpt_hf.errors import FinGPTError


def check_repo_id(repo_id: str, option: str = "--repo-id") -> str:
    """Return ``repo_id`` if it is a valid ``USER/NAME`` model id, else raise FinGPTError naming ``option``."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise FinGPTError(f"{option} {repo_id!r}: expected USER/NAME (one namespace, one repository name)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise FinGPTError(f"{option} {repo_id!r} is not a valid Hub repository id: {err}") from err
    return repo_id
