"""Find a model's family from its config (``model_type`` first, then ``architectures``)."""

from __future__ import annotations

import logging
from typing import Any

from fingpt_hf.conversion.spec import SOURCE_KEY
from fingpt_hf.errors import FinGPTError
from fingpt_hf.families.catalog import FAMILIES, GENERIC
from fingpt_hf.families.spec import FamilySpec

logger = logging.getLogger(__name__)

_BY_MODEL_TYPE: dict[str, FamilySpec] = {t.lower(): f for f in FAMILIES for t in f.model_types}
_BY_ARCHITECTURE: dict[str, FamilySpec] = {a: f for f in FAMILIES for a in f.architectures}
_BY_CONVERSION: dict[str, FamilySpec] = {c: f for f in FAMILIES for c in f.converted_from}
_BY_NAME: dict[str, FamilySpec] = {f.name: f for f in FAMILIES} | {GENERIC.name: GENERIC}


def list_families() -> tuple[FamilySpec, ...]:
    """Every registered family (without the generic fallback)."""
    return FAMILIES


def family_by_name(name: str) -> FamilySpec:
    """A family by its registry name (``"llama"``, ``"baichuan"``, ... or ``"generic"``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise FinGPTError(
            f"unknown model family {name!r}; known: {', '.join(sorted(_BY_NAME))}"
        ) from None


def get_family(config: Any) -> FamilySpec:
    """The family of a ``PretrainedConfig`` (or a bare ``model_type`` string).

    A checkpoint written by ``fingpt-hf model convert`` is known by the family its config records
    (``fingpt_hf_source``). Unknown models get the generic family (LoRA on all linear layers) with
    a warning, so a new architecture still trains, just not with hand-picked targets.
    """
    if isinstance(config, FamilySpec):
        return config
    if isinstance(config, str):
        model_type, architectures, source = config, [], None
    else:
        model_type = getattr(config, "model_type", None) or ""
        architectures = list(getattr(config, "architectures", None) or [])
        source = getattr(config, SOURCE_KEY, None)
    if isinstance(source, dict) and source.get("family") in _BY_CONVERSION:
        return _BY_CONVERSION[source["family"]]
    family = _BY_MODEL_TYPE.get(model_type.lower())
    if family is None:
        family = next((_BY_ARCHITECTURE[a] for a in architectures if a in _BY_ARCHITECTURE), None)
    if family is None:
        logger.warning(
            "model_type %r (architectures %s) is not a registered family; LoRA will target all "
            "linear layers except the output head",
            model_type,
            architectures or "unknown",
        )
        return GENERIC
    return family


def check_remote_code(family: FamilySpec, trust_remote_code: bool) -> None:
    """Refuse to load a remote-code family unless the user opted in explicitly."""
    if family.needs_remote_code and not trust_remote_code:
        raise FinGPTError(
            f"model family {family.name!r} (model_type {', '.join(family.model_types)}) runs modeling "
            "code downloaded from the Hub; read it, then set `trust_remote_code: true` in the recipe "
            "or pass --trust_remote_code"
        )
