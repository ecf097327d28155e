"""Pre-flight checks: every mistake we can see before training is reported before training.

A bad model path, a recipe that needs a GPU on a CPU machine, or an output directory that holds
someone else's run should cost seconds, not the minutes it takes to load data and a model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import check_output_dir
from fingpt_hf.training.run_info import RUN_INFO_FILE, read_run_info

_CHECKPOINT = re.compile(r"^checkpoint-\d+$")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_device_requests(training_args: Any, model_args: Any, has_cuda: bool | None = None) -> None:
    """Refuse options that only work on a CUDA GPU when there is none.

    "Asks for CUDA" means: fp16 mixed precision (CPUs have no fp16 autocast worth training with;
    bf16 works on CPU), 4-/8-bit bitsandbytes loading, a ``device_map`` naming cuda, or a
    DeepSpeed config with fp16 switched on explicitly.
    """
    if has_cuda is None:
        has_cuda = cuda_available()
    if has_cuda:
        return
    reasons = []
    if getattr(training_args, "fp16", False):
        reasons.append("fp16: true (use bf16 or fp32 on CPU: `fp16: false`, `use_cpu: true`)")
    if getattr(model_args, "load_in_4bit", False):
        reasons.append("load_in_4bit: true (bitsandbytes 4-bit QLoRA runs on CUDA GPUs only)")
    if getattr(model_args, "load_in_8bit", False):
        reasons.append("load_in_8bit: true (bitsandbytes 8-bit runs on CUDA GPUs only)")
    init_kwargs = getattr(training_args, "model_init_kwargs", None) or {}
    device_map = init_kwargs.get("device_map") if isinstance(init_kwargs, dict) else None
    if device_map is not None and "cuda" in json.dumps(device_map, default=str):
        reasons.append(f"model_init_kwargs.device_map: {device_map!r}")
    ds = _deepspeed_dict(getattr(training_args, "deepspeed", None))
    if ds is not None and (ds.get("fp16") or {}).get("enabled") is True:
        reasons.append("a DeepSpeed config with fp16.enabled: true")
    if reasons:
        raise FinGPTError(
            "the recipe asks for a CUDA GPU, but none is available on this machine: " + "; ".join(reasons)
        )


def _deepspeed_dict(value: Any) -> dict | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    path = Path(str(value))
    if not path.is_file():
        raise FinGPTError(f"deepspeed: config file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FinGPTError(f"deepspeed: {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise FinGPTError(f"deepspeed: {path} must hold a JSON object")
    return data


def check_model_path(name_or_path: str | None, revision: str | None = None, trust_remote_code: bool = False):
    """Load the model's config (cheap) so a wrong id or path fails now; returns the config."""
    from transformers import AutoConfig

    if not name_or_path:
        raise FinGPTError("model_name_or_path is not set; give a Hub id, a local directory or "
                          "embedded:smollm2-135m-instruct")
    path = Path(name_or_path).expanduser()
    if name_or_path.startswith((".", "/", "~")) and not path.exists():
        raise FinGPTError(f"model_name_or_path: {name_or_path} does not exist")
    if path.is_dir() and not (path / "config.json").is_file():
        raise FinGPTError(f"model_name_or_path: {name_or_path} is a directory without config.json; "
                          "is it a model checkpoint (or a LoRA adapter, which needs its base model)?")
    try:
        return AutoConfig.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}
        hint = " (the Hub is offline, HF_HUB_OFFLINE=1, and it is not in the local cache)" if offline else ""
        if not path.exists():
            hint += (f"; there is no local directory {name_or_path} either (the seed-model recipes expect "
                     "the output of `fingpt-hf model convert` there: see the recipe's first lines)")
        raise FinGPTError(f"model_name_or_path: cannot load {name_or_path!r}{hint}: {first}") from None


def check_shared_prefix(script_args: Any, training_args: Any) -> None:
    """Refuse the combination under which ``shared_prefix`` would train on wrong gradients.

    Activation checkpointing recomputes each layer in the backward pass after the packed
    two-block attention of ``fingpt_hf.training.shared_prefix`` has been switched back off, so the
    recomputed activations are not the ones the forward used: nothing raises, the gradients are
    just wrong. It is refused before anything loads. LoRA dropout is not: a group's prefix runs
    once, so its rows share one dropout mask on the prefix tokens, but each row's mask is drawn as
    it would be alone, so the expected loss and gradients are the plain batch's (only their
    variance differs), which ``tests/test_shared_prefix.py`` checks over many draws.
    """
    if not script_args.shared_prefix:
        return
    if getattr(training_args, "activation_checkpointing", False) or getattr(training_args, "gradient_checkpointing", False):
        raise FinGPTError("shared_prefix: true cannot run with activation_checkpointing (the recomputed "
                          "layers would not use the packed attention, giving wrong gradients): turn one off")


def check_exact_length(config: Any, family: Any, max_length: int | None) -> None:
    """Refuse a ``max_length`` past the length up to which a converted model equals its original.

    Qwen v1's remote code switches on dynamic NTK rotary scaling and logn attention scaling past
    its ``seq_length``; the converted Qwen2 checkpoint (``max_position_embeddings = seq_length``)
    does not, so longer rows would train a different model than FinGPT's without any error.
    """
    if family.name != "qwen-native" or max_length is None:
        return
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise FinGPTError(
            f"max_length {max_length} is longer than the converted Qwen model's {limit} tokens (the "
            "original's seq_length); beyond it Qwen v1 applies dynamic NTK and logn attention scaling, "
            f"which the native Qwen2 model does not reproduce: set max_length <= {limit}"
        )


def _checkpoints(output_dir: Path) -> list[Path]:
    return [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]


def resume_point(
    output_dir: str | os.PathLike,
    recipe_hash: str,
    overwrite: bool = False,
    resume_from_checkpoint: str | bool | None = None,
) -> str | None:
    """Decide what to do with a training ``output_dir``; returns the checkpoint to resume from (or None).

    The directory itself (not a file, writable) is checked by ``fingpt_hf.io.check_output_dir``,
    the one home of that check; this adds what only a training run means by it:

    * empty or missing: a fresh run;
    * ``--overwrite_output_dir``: a fresh run (its old checkpoints are removed later, see
      ``clear_checkpoints``);
    * our marker with the same recipe hash and status ``running``: an interrupted run of this
      recipe, resumed from its last complete checkpoint (or ``--resume_from_checkpoint PATH``);
    * our marker with status ``running`` but no complete checkpoint and no adapter, whatever its
      recipe: a run that failed before saving anything (a bad option, an error in its first
      steps), so the corrected command (another recipe hash) starts afresh: there is nothing
      to lose and refusing would only make the user delete the directory by hand;
    * anything else (another recipe, a finished run, files that are not ours): an error, so
      nothing saved is overwritten by accident.

    ``--resume_from_checkpoint true`` asks for the last checkpoint and fails when there is none.
    """
    out = check_output_dir(output_dir, "output_dir", allow_existing=True)
    want_last = resume_from_checkpoint is True or (
        isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() == "true")
    explicit = None if want_last else _explicit_checkpoint(resume_from_checkpoint)
    empty = not out.exists() or not any(out.iterdir())
    if not empty and not overwrite:
        info = read_run_info(out)
        if info is None:
            raise FinGPTError(
                f"output_dir {out} is not empty and holds no {RUN_INFO_FILE}, so it is not a fingpt-hf run; "
                "choose an empty directory or pass --overwrite_output_dir"
            )
        if info.get("status") == "running" and not saved_anything(out):
            return _resume_target(out, explicit, want_last, last=None)
        if info.get("recipe_hash") != recipe_hash:
            raise FinGPTError(
                f"output_dir {out} holds a different run (its recipe hash {info.get('recipe_hash')} differs "
                f"from this recipe's {recipe_hash}; see {out / 'recipe.yaml'}); choose another output_dir "
                "or pass --overwrite_output_dir"
            )
        if info.get("status") == "completed":
            raise FinGPTError(
                f"output_dir {out} already holds this finished run (adapter saved at "
                f"{info.get('finished_at')}); pass --overwrite_output_dir to train it again"
            )
    return _resume_target(out, explicit, want_last, None if (empty or overwrite) else last_complete_checkpoint(out))


def _resume_target(out: Path, explicit: str | None, want_last: bool, last: str | None) -> str | None:
    if explicit is not None:
        return explicit
    if want_last and last is None:
        raise FinGPTError(f"--resume_from_checkpoint: {out} holds no complete checkpoint to resume from")
    return last


def saved_anything(output_dir: str | os.PathLike) -> bool:
    """Whether a run left something worth keeping: a complete checkpoint or an adapter."""
    out = Path(output_dir)
    adapter = any((out / name).exists() for name in ("adapter_model.safetensors", "adapter_config.json",
                                                      "adapter_model.bin"))
    return adapter or last_complete_checkpoint(out) is not None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` that was fully written (it has ``trainer_state.json``, which the
    Trainer saves last), unlike ``get_last_checkpoint``, which would pick one cut off by a kill."""
    out = Path(output_dir)
    done = [p for p in _checkpoints(out) if (p / "trainer_state.json").is_file()] if out.is_dir() else []
    if not done:
        return None
    return str(max(done, key=lambda p: int(p.name.split("-")[1])))


def _explicit_checkpoint(value: str | bool | None) -> str | None:
    if value is None or value is False or (isinstance(value, str) and value.lower() in {"false", "none", ""}):
        return None
    path = Path(str(value))
    if not path.is_dir() or not (path / "trainer_state.json").is_file():
        raise FinGPTError(f"--resume_from_checkpoint: {value} is not a Trainer checkpoint directory "
                          "(no trainer_state.json)")
    return str(path)


def clear_checkpoints(output_dir: str | os.PathLike) -> None:
    """Remove ``checkpoint-*`` folders of an earlier run (``--overwrite_output_dir``), so the new
    run neither resumes from them nor has them counted by ``save_total_limit``."""
    out = Path(output_dir)
    if out.is_dir():
        for path in _checkpoints(out):
            shutil.rmtree(path)
