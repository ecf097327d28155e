"""One validation layer for a training recipe: types, ranges, choices and paths, before any work.

A negative batch size, ``lora_r: 0`` or an unknown ``dtype`` used to pass parsing and fail minutes
later, after data and model had loaded and ``fingpt_run.json`` said "running". Every rule lives
here, in one table, and runs on the flat ``{option: value}`` view of a recipe in two places:

* ``fingpt_hf.training.recipe.parse_sft_args``, on argparse's namespace *before* the dataclasses
  are built (so transformers' own ``__post_init__`` checks, which name neither the option's source
  nor what is allowed, never get to speak first), with each problem located at the recipe file or
  the command-line flag that set it;
* ``fingpt_hf.training.sft.prepare_run``, on the argument objects, for callers that build them
  without the parser.

Checks need neither data nor weights: a bad value costs milliseconds and writes nothing.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import os
import tempfile
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from fingpt_hf.errors import FinGPTError

#: Where a value came from, for messages: ``"recipe.yaml: lora_r"``, ``"--lora_r"`` or ``"lora_r"``.
Locator = Callable[[str], str]

#: ``dtype`` names beyond ModelConfig's own choices that ``from_pretrained`` accepts (torch's names).
TORCH_DTYPE_NAMES = ("auto", "float16", "bfloat16", "float32", "float64", "half", "float", "double")


@dataclass(frozen=True)
class Rule:
    """A range for one numeric option: ``ok(value)`` decides, ``allowed`` says it in words."""

    ok: Callable[[Any], bool]
    allowed: str
    integer: bool = False


def _at_least(low: float, integer: bool = False) -> Rule:
    kind = "an integer" if integer else "a number"
    return Rule(lambda v: v >= low, f"{kind} >= {low:g}", integer)


def _above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"a number > {low:g}")


def _fraction_or_count(what: str) -> Rule:
    """Steps given as a fraction of the run (0 < x < 1) or a whole count (>= 1), as transformers reads them."""
    return Rule(lambda v: 0 < v < 1 or (v >= 1 and float(v).is_integer()),
                f"a fraction of the run in (0, 1) or a whole number of {what} >= 1")


RANGES: dict[str, Rule] = {
    "per_device_train_batch_size": _at_least(1, integer=True),
    "per_device_eval_batch_size": _at_least(1, integer=True),
    "gradient_accumulation_steps": _at_least(1, integer=True),
    "max_steps": Rule(lambda v: v == -1 or v >= 1, "-1 (train for num_train_epochs) or an integer >= 1", True),
    "num_train_epochs": _above(0),
    "learning_rate": _above(0),
    "warmup_ratio": Rule(lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "warmup_steps": Rule(lambda v: v >= 0 and (v < 1 or float(v).is_integer()),
                         "0, a fraction of the run in (0, 1) or a whole number of steps"),
    "weight_decay": _at_least(0),
    "label_smoothing_factor": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "max_grad_norm": _at_least(0),
    "adam_beta1": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "adam_beta2": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "adam_epsilon": _above(0),
    "lora_r": _at_least(1, integer=True),
    "lora_alpha": _above(0),
    "lora_dropout": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "max_length": _at_least(2, integer=True),
    "loraplus_lr_ratio": _at_least(1),
    "ema_decay": Rule(lambda v: 0 < v < 1, "a number in (0, 1)"),
    "lora_top_layers": Rule(lambda v: v >= 0, "0 (all layers) or a layer count >= 1", True),
    "eval_holdout": Rule(lambda v: v == 0 or 0 < v < 1 or (v >= 1 and float(v).is_integer()),
                         "0 (off), a fraction in (0, 1) or a whole number of rows >= 1"),
    "eval_f1_batch_size": _at_least(1, integer=True),
    "save_total_limit": _at_least(1, integer=True),
    "dataloader_num_workers": _at_least(0, integer=True),
    "seed": _at_least(0, integer=True),
}

#: Why each option cannot go with ``ema_decay`` (the average lives in the optimizer's per-parameter state).
_EMA_CONFLICTS = {
    "deepspeed": "ZeRO shards the optimizer's state, where the average is kept",
    "fsdp": "FSDP flattens the parameters the average is kept for",
    "load_best_model_at_end": "the best checkpoint holds the trained weights, not their average",
}

#: ``X_steps`` that must be positive when ``X_strategy`` is "steps" (0 would silently disable
#: checkpoints, which resuming depends on, or logging).
STEP_OPTIONS = {"save_steps": "save_strategy", "logging_steps": "logging_strategy", "eval_steps": "eval_strategy"}


@functools.lru_cache(maxsize=1)
def _field_types() -> dict[str, tuple[Any, Any]]:
    """``{option: (type hint, dataclass field)}`` over ScriptArguments, SFTConfig and ModelConfig."""
    from fingpt_hf.training.recipe import _dataclass_types

    found: dict[str, tuple[Any, Any]] = {}
    for cls in _dataclass_types():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.init and f.name not in found:
                found[f.name] = (hints.get(f.name, Any), f)
    return found


def _members(hint: Any) -> list[Any]:
    """The alternatives of a ``X | Y | None`` hint (the hint itself when it is not a union)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return [a for a in typing.get_args(hint) if a is not type(None)]
    return [hint]


def choices_of(name: str, hint: Any, metadata: Mapping[str, Any]) -> list[str] | None:
    """The values an enum-like option allows (dataclass ``choices``, an Enum or a Literal), else None."""
    if name == "dtype":
        return list(TORCH_DTYPE_NAMES)
    if name == "prompt_style":
        from fingpt_hf.data.prompts import PROMPT_STYLES

        return list(PROMPT_STYLES)
    if metadata.get("choices"):
        return [str(c) for c in metadata["choices"]]
    for member in _members(hint):
        if isinstance(member, type) and issubclass(member, enum.Enum):
            return [str(m.value) for m in member]
        if typing.get_origin(member) is typing.Literal:
            return [str(a) for a in typing.get_args(member)]
    return None


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _as_number(value: Any, integer: bool) -> float | int | None:
    """``value`` as a number when it is one (YAML reads ``1e-4`` as a string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or math.isnan(value):
        return None
    if integer:
        return int(value) if float(value).is_integer() else None
    return value


def _numeric_kind(hint: Any) -> str | None:
    """"int" or "float" for an option whose only non-None type is a number, else None."""
    members = _members(hint)
    if members == [int]:
        return "int"
    if members == [float] or set(members) == {int, float}:
        return "float"
    return None


def check_types(values: Mapping[str, Any], where: Locator) -> list[str]:
    """Problems with values of the wrong type (``learning_rate: "fast"``, ``lora_r: 2.5``, ``use_peft: maybe``).

    Run on a recipe file's values before argparse sees them, so the message names the file and
    key rather than printing the whole usage text.
    """
    types = _field_types()
    problems = []
    for name, value in values.items():
        if name not in types or value is None:
            continue
        hint, _ = types[name]
        kind = _numeric_kind(hint)
        if kind is not None and _as_number(value, kind == "int") is None:
            wanted = "an integer" if kind == "int" else "a number"
            allowed = RANGES[name].allowed if name in RANGES else wanted
            problems.append(f"{where(name)}: {_shown(value)} is not {wanted} (allowed: {allowed})")
        elif _members(hint) == [bool] and not isinstance(value, bool) and not (
                isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}):
            problems.append(f"{where(name)}: {_shown(value)} is not a boolean (allowed: true or false)")
    return problems


def check_values(values: Mapping[str, Any], where: Locator, paths: bool = True) -> list[str]:
    """Problems with types, ranges, choices and cross-option rules of a flat ``{option: value}`` view
    (and, with ``paths``, of the files and directories it names)."""
    types = _field_types()
    problems = check_types(values, where)
    if problems:
        return problems
    plain = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()}
    for name, value in plain.items():
        if value is None or name not in types:
            continue
        hint, f = types[name]
        choices = choices_of(name, hint, f.metadata)
        if choices is not None and isinstance(value, str) and value not in choices:
            problems.append(f"{where(name)}: {_shown(value)} is not one of: {', '.join(choices)}")
        rule = RANGES.get(name)
        if rule is not None:
            number = _as_number(value, rule.integer)
            if number is None or not rule.ok(number):
                problems.append(f"{where(name)}: {_shown(value)} is out of range (allowed: {rule.allowed})")
    for steps, strategy in STEP_OPTIONS.items():
        if str(plain.get(strategy)) != "steps" or plain.get(steps) is None:
            continue  # eval_steps unset means logging_steps
        number = _as_number(plain[steps], integer=False)
        if number is None or not _fraction_or_count("steps").ok(number):
            problems.append(f"{where(steps)}: {_shown(plain[steps])} is out of range with {strategy}: steps "
                            f"(allowed: {_fraction_or_count('steps').allowed}; to turn it off set {strategy}: no)")
    for option in ("compile_layers", "shared_prefix", "neftune_sources"):  # set: true, or neftune_sources' list
        if plain.get(option) not in (None, False) and plain.get("fast_path") is False:
            problems.append(f"{where(option)} needs fast_path: true (it is false)")
    if plain.get("neftune_sources") is not None:
        problems += _neftune_sources_problems(plain, where)
    if plain.get("ema_decay") is not None:
        for option, why in _EMA_CONFLICTS.items():
            if plain.get(option):
                problems.append(f"{where('ema_decay')} cannot be used with {option} ({why}); unset one of them")
    if paths:
        problems += check_paths(plain, where)
    return problems


def _neftune_sources_problems(plain: Mapping[str, Any], where: Locator) -> list[str]:
    """``neftune_sources`` restricts NEFTune to rows of some mixture sources: it needs the noise, padded batches
    (the collator carries each row's flag) and names that the mixture has; the fast path, whose trainer applies the
    flags, is checked with the other fast-path options."""
    from fingpt_hf.data.mixture import FINGPT_WEIGHTS

    sources, problems = plain["neftune_sources"], []
    if not sources or not all(isinstance(s, str) and s for s in sources):
        return [f"{where('neftune_sources')}: {_shown(sources)} must be a non-empty list of mixture source names"]
    if "neftune_noise_alpha" in plain and not plain["neftune_noise_alpha"]:  # a full recipe's view
        problems.append(f"{where('neftune_sources')} needs neftune_noise_alpha (the noise it restricts to those rows)")
    if plain.get("padding_free"):
        problems.append(f"{where('neftune_sources')} cannot be used with padding_free (TRL's padding-free collator "
                        "drops the rows' flags); unset one of them")
    mixture = plain.get("dataset_mixture")
    if mixture is None or (isinstance(mixture, Mapping) and isinstance(mixture.get("datasets"), list)):
        names = (set(FINGPT_WEIGHTS) if mixture is None  # FinGPT's own mixture
                 else {d.get("name") for d in mixture["datasets"] if isinstance(d, Mapping)})
        unknown = [s for s in sources if s not in names]
        if unknown:
            problems.append(f"{where('neftune_sources')}: {', '.join(map(repr, unknown))} "
                            f"{'is' if len(unknown) == 1 else 'are'} not a source of dataset_mixture "
                            f"({', '.join(sorted(map(str, names)))})")
    return problems


def check_paths(values: Mapping[str, Any], where: Locator) -> list[str]:
    """Every path option has the right kind: output_dir writable, data_dir readable, deepspeed JSON."""
    problems = []
    output_dir = values.get("output_dir")
    if output_dir:
        problem = _writable_dir_problem(Path(str(output_dir)).expanduser())
        if problem:
            problems.append(f"{where('output_dir')}: {_shown(str(output_dir))} {problem}")
    data_dir = values.get("data_dir")
    if data_dir is None and os.environ.get("FINGPT_DATA_DIR"):
        data_dir, location = os.environ["FINGPT_DATA_DIR"], "$FINGPT_DATA_DIR"
    else:
        location = where("data_dir")
    if data_dir:
        path = Path(str(data_dir)).expanduser()
        if not path.is_dir():
            problems.append(f"{location}: {_shown(str(data_dir))} is not a directory (allowed: a readable "
                            "directory laid out like ../shared/fingpt-data)")
        elif not os.access(path, os.R_OK | os.X_OK):
            problems.append(f"{location}: {_shown(str(data_dir))} is not readable")
    deepspeed = values.get("deepspeed")
    if isinstance(deepspeed, str) and deepspeed:
        problem = _json_file_problem(Path(deepspeed).expanduser())
        if problem:
            problems.append(f"{where('deepspeed')}: {_shown(deepspeed)} {problem}")
    return problems


def _writable_dir_problem(path: Path) -> str | None:
    """Why files cannot be written under ``path`` (created later, with its parents), or None.

    A probe file is created and removed in ``path`` when it exists, else in its nearest existing
    parent, so a read-only or full file system fails now instead of at the first checkpoint.
    """
    if path.exists() and not path.is_dir():
        return "exists and is not a directory"
    probe_dir = path
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return f"cannot be created: {probe_dir} is not a directory"
    try:
        handle, name = tempfile.mkstemp(prefix=".fingpt-write-probe-", dir=probe_dir)
        os.close(handle)
        os.unlink(name)
    except OSError as err:
        return f"is not writable ({probe_dir}: {err.strerror or err}); allowed: a directory this user can write"
    return None


def _json_file_problem(path: Path) -> str | None:
    if not path.is_file():
        return "is not a file (allowed: a readable DeepSpeed JSON config, e.g. ds_configs/zero2.json)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        return f"is not readable: {err.strerror or err}"
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"is not valid JSON: {err}"
    if not isinstance(data, dict):
        return "must hold a JSON object"
    return None


def raise_problems(problems: Iterable[str]) -> None:
    """One FinGPTError listing every problem (all of them, so one corrected run is enough)."""
    problems = list(problems)
    if len(problems) == 1:
        raise FinGPTError(problems[0])
    if problems:
        raise FinGPTError(f"the recipe has {len(problems)} invalid values:\n  " + "\n  ".join(problems))


def flat_values(*objects: Any) -> dict[str, Any]:
    """``{option: value}`` over argument dataclasses (the first object that has a field wins)."""
    values: dict[str, Any] = {}
    for obj in objects:
        for f in fields(obj):
            if f.init and f.name not in values:
                values[f.name] = getattr(obj, f.name)
    return values


def validate_sft_args(script_args: Any, training_args: Any, model_args: Any, where: Locator | None = None) -> None:
    """Refuse a recipe with any invalid value, before data or model load (see the module doc)."""
    raise_problems(check_values(flat_values(script_args, training_args, model_args), where or (lambda k: k)))
