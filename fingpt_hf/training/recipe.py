"""The training recipe: our ``ScriptArguments`` next to TRL's ``SFTConfig`` and ``ModelConfig``.

A recipe is one flat YAML mapping whose keys are fields of these three dataclasses, read by
``trl.TrlParser`` (``--config recipe.yaml`` plus command-line overrides of any field). LoRA
settings reuse ``ModelConfig``'s ``use_peft``/``lora_r``/``lora_alpha``/``lora_dropout``/
``lora_target_modules``; only what TRL has no field for lives here.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from fingpt_hf.errors import FinGPTError



@dataclass
class ScriptArguments:
    """What fingpt-hf adds to TRL's SFT arguments: the data mixture, prompts and run control."""

    dataset_mixture: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "The training mixture ({datasets: [{name, weight}], seed, max_samples}) as a YAML "
                          "mapping, a JSON string or a path to a YAML/JSON file; unset means FinGPT's "
                          "fpb x6, fiqa x21, tfns x2, nwgi x1."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "FinGPT data mirror (default $FINGPT_DATA_DIR; unset and online: the Hub)."},
    )
    prompt_style: str | None = field(
        default=None,
        metadata={"help": "'fingpt' (FinGPT's Instruction/Input/Answer template) or 'chat' (the tokenizer's "
                          "chat template); unset means the model family's default."},
    )
    fast_path: bool = field(
        default=True,
        metadata={"help": "Use FastSFTTrainer (logits only at answer positions, bf16 autocast on CPU)."},
    )
    lora_top_layers: int = field(
        default=0,
        metadata={"help": "LoRA only on the last N decoder layers (0: all). Gradients then stop at the "
                          "lowest adapted layer, so the backward pass covers N layers instead of all."},
    )
    compile_layers: bool = field(
        default=False,
        metadata={"help": "With fast_path: compile each decoder layer with torch.compile (regional "
                          "compilation; needs a C++ compiler on CPU). Slower start, faster steps."},
    )
    shared_prefix: bool = field(
        default=False,
        metadata={"help": "With fast_path: run the leading tokens that rows of a batch share (the "
                          "instruction) once per batch; same loss and gradients, fewer token passes."},
    )
    loraplus_lr_ratio: float | None = field(
        default=None,
        metadata={"help": "LoRA+: B's learning rate (and DoRA's magnitudes') this many times learning_rate, "
                          "which A keeps (peft's create_loraplus_optimizer; >= 1). Unset: one rate for all."},
    )
    lora_init: str = field(
        default="default",
        metadata={"choices": ["default", "eva"],
                  "help": "How LoRA's A starts: 'default' (peft's Kaiming-uniform) or 'eva' (the top principal "
                          "directions of each adapted layer's inputs on the first training batches, peft's EVA "
                          "with uniform ranks; costs forward passes before training: fingpt_hf/training/eva.py). "
                          "B starts at 0 either way."},
    )
    ema_decay: float | None = field(
        default=None,
        metadata={"help": "Save an exponential moving average of the adapter's weights (updated after every "
                          "optimizer step, this much of the old average kept; 0 < x < 1, e.g. 0.995 averages "
                          "about the last 200 steps) instead of the last step's. Unset: the last step's."},
    )
    neftune_sources: list[str] | None = field(
        default=None,
        metadata={"help": "With neftune_noise_alpha and fast_path: NEFTune's noise only on the rows of these "
                          "dataset_mixture sources (their names), e.g. [fpb]. Unset: on every row."},
    )
    liger_when_available: bool = field(
        default=False,
        metadata={"help": "Turn on use_liger_kernel when training on CUDA with liger-kernel installed "
                          "(elsewhere training runs without it)."},
    )
    eval_holdout: float = field(
        default=0.0,
        metadata={"help": "Rows to evaluate on during training, from the validation splits of the mixture's "
                          "benchmarks (seeded 10% slices of train, never trained on): a fraction (0 < x < 1) "
                          "or a count (>= 1). 0 disables it."},
    )
    eval_f1: bool = field(
        default=True,
        metadata={"help": "At each evaluation on eval_holdout rows, also score them as `fingpt-hf eval` does "
                          "(label log-likelihoods) and log weighted F1 per benchmark and their mean "
                          "(eval_<name>_f1_weighted, eval_mean_f1_weighted), which metric_for_best_model "
                          "can name."},
    )
    eval_f1_batch_size: int = field(
        default=32, metadata={"help": "Rows per forward pass when eval_f1 scores the validation rows."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace what output_dir already holds (a finished run or another run's files)."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.dataset_mixture, str):
            self.dataset_mixture = _load_mapping(self.dataset_mixture, "dataset_mixture")
        # The same rules as every recipe (fingpt_hf.training.validation), for objects built directly;
        # paths are checked where a run starts, not whenever the dataclass is built.
        from fingpt_hf.training.validation import check_values, flat_values, raise_problems

        raise_problems(check_values(flat_values(self), lambda key: key, paths=False))

    def mixture_config(self):
        """The parsed ``MixtureConfig`` (FinGPT's default when the recipe has none)."""
        from fingpt_hf.data.mixture import MixtureConfig

        if self.dataset_mixture is None:
            return MixtureConfig.fingpt_default()
        return MixtureConfig.from_dict(self.dataset_mixture)


def _read_yaml(path: Path, problem: str) -> Any:
    """A YAML (or JSON) file's content; ``problem`` starts the error message when it does not parse."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise FinGPTError(f"{problem}: {err}") from None


def _load_mapping(text: str, option: str) -> dict[str, Any]:
    """A JSON/YAML mapping given inline (``{...}``) or as a file path."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = yaml.safe_load(stripped)
        except yaml.YAMLError as err:
            raise FinGPTError(f"{option}: not valid JSON/YAML: {err}") from None
    else:
        path = Path(stripped).expanduser()
        if not path.is_file():
            raise FinGPTError(f"{option}: {stripped!r} is neither an inline mapping nor an existing file")
        value = _read_yaml(path, f"{option}: {path} is not valid YAML/JSON")
    if not isinstance(value, dict):
        raise FinGPTError(f"{option}: expected a mapping, got {type(value).__name__}")
    return value


def _dataclass_types() -> tuple[type, type, type]:
    from trl import ModelConfig, SFTConfig

    return ScriptArguments, SFTConfig, ModelConfig


def make_parser(where: Callable[[str], str] | None = None):
    """``trl.TrlParser`` over (ScriptArguments, SFTConfig, ModelConfig) that raises FinGPTError.

    argparse's own errors (a flag's value of the wrong type) would print the whole usage text and
    exit; they become a FinGPTError naming the flag. ``where`` (option -> its source) switches on
    ``fingpt_hf.training.validation`` on the parsed namespace, before the dataclasses' own
    ``__post_init__`` checks run.
    """
    from trl import TrlParser

    class _Parser(TrlParser):
        def error(self, message: str):  # argparse: "argument --x/--y: invalid float value: 'fast'"
            raise FinGPTError(re.sub(r"^argument (--[\w-]+)(/--[\w-]+)?: ", r"\1: ", message))

        def parse_known_args(self, args=None, namespace=None):
            parsed, remaining = super().parse_known_args(args, namespace)
            if where is not None:
                from fingpt_hf.training.validation import check_values, raise_problems

                raise_problems(check_values(vars(parsed), where))
            return parsed, remaining

    return _Parser(_dataclass_types())


def known_keys() -> set[str]:
    return {f.name for cls in _dataclass_types() for f in fields(cls) if f.init}


# Names from older TRL/transformers releases and other trainers, mapped to today's field.
RENAMED_KEYS = {
    "lora_rank": "lora_r", "r": "lora_r", "rank": "lora_r", "alpha": "lora_alpha",
    "target_modules": "lora_target_modules", "lora_target": "lora_target_modules",
    "max_seq_length": "max_length", "cutoff_len": "max_length", "torch_dtype": "dtype",
    "evaluation_strategy": "eval_strategy", "model_name": "model_name_or_path",
    "dataset_text_field_name": "dataset_text_field",
}


def _suggest(key: str, choices: set[str]) -> str:
    if key in RENAMED_KEYS and RENAMED_KEYS[key] in choices:
        return f" (did you mean {RENAMED_KEYS[key]!r}?)"
    close = difflib.get_close_matches(key, sorted(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML recipe as a mapping, with every key checked against the known fields."""
    path = Path(path)
    if not path.is_file():
        raise FinGPTError(f"--config: recipe file {path} not found")
    recipe = _read_yaml(path, f"{path}: not valid YAML")
    if recipe is None:
        recipe = {}
    if not isinstance(recipe, dict):
        raise FinGPTError(f"{path}: a recipe must be a YAML mapping of option: value")
    allowed = known_keys() | {"env"}
    for key in recipe:
        if key not in allowed:
            raise FinGPTError(f"{path}: unknown recipe key {key!r}{_suggest(str(key), allowed)}")
    return recipe


def _cli_keys(argv: Sequence[str]) -> list[str]:
    """Option names given on the command line (``--name value`` or ``--name=value``)."""
    keys = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            keys.append(token[2:].split("=", 1)[0].replace("-", "_"))
    return keys


@dataclass
class ParsedRecipe:
    """The three argument objects plus the options the user set (recipe file, then command line)."""

    script_args: ScriptArguments
    training_args: Any
    model_args: Any
    explicit: dict[str, Any]
    config_path: str | None = None


def parse_sft_args(argv: Sequence[str] | None = None) -> ParsedRecipe:
    """Parse ``--config recipe.yaml`` and overrides; unknown keys and bad values are FinGPTErrors.

    Every value is validated (``fingpt_hf.training.validation``) here, before any data or model
    loads and before anything is written; each error names the recipe file and key, or the flag.
    Secrets (``hub_token``) stay on ``training_args`` for the caller but never enter ``explicit``,
    the mapping that is written to ``recipe.yaml``.
    """
    import sys

    from fingpt_hf.training.run_info import SECRET_KEYS
    from fingpt_hf.training.validation import check_types, raise_problems

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe: dict[str, Any] = {}
    config_path = None
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise FinGPTError("--config needs the path of a YAML recipe")
        config_path = argv[index + 1]
        recipe = read_recipe_file(config_path)
    allowed = known_keys()
    cli = [k for k in _cli_keys(argv) if k != "config"]
    for key in cli:
        if key not in allowed and key not in ("help", "h"):
            raise FinGPTError(f"unknown option --{key}{_suggest(key, allowed)}")

    def where(key: str) -> str:
        if key in cli:
            return f"--{key}"
        if key in recipe:
            return f"{config_path}: {key}"
        return f"{key} (default)"

    # Wrong types in the file first: argparse would blame a --flag the user never typed.
    raise_problems(check_types({k: v for k, v in recipe.items() if k != "env" and k not in cli}, where))
    parser = make_parser(where)
    try:
        with warnings.catch_warnings():
            # SFTConfig keeps `gradient_checkpointing` as a deprecated alias of
            # `activation_checkpointing`; TRL's own default sets it, so the warning is noise.
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
            script_args, training_args, model_args = parser.parse_args_and_config(argv)
    except FinGPTError:
        raise
    except ValueError as err:
        raise FinGPTError(_explain_value_error(err, config_path)) from None
    explicit: dict[str, Any] = {}
    for key in [k for k in recipe if k != "env"] + cli:
        if key in SECRET_KEYS:
            continue
        for obj in (script_args, training_args, model_args):
            if hasattr(obj, key) and key in {f.name for f in fields(obj)}:
                explicit[key] = to_plain(getattr(obj, key))
                break
    explicit.setdefault("model_name_or_path", model_args.model_name_or_path)
    return ParsedRecipe(script_args, training_args, model_args, explicit, config_path)


def _explain_value_error(err: ValueError, config_path: str | None) -> str:
    message = str(err)
    where = f"{config_path}: " if config_path else ""
    if "doesn't support bf16/gpu" in message:
        return (f"{where}the recipe asks for bf16 mixed precision on a GPU, but no CUDA device is available; "
                "on a CPU machine set `bf16: false`, or `use_cpu: true` (bf16 autocast on CPU) where the CPU has "
                "native bf16 (AVX512-BF16 or AMX; elsewhere bf16 is emulated, hundreds of times slower)")
    return f"{where}{message}"


def to_plain(value: Any) -> Any:
    """A YAML/JSON-safe copy of an argument value (enums to their value, objects to strings)."""
    import enum

    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return to_plain(value.to_dict())
    return json.loads(json.dumps(value, default=str))
