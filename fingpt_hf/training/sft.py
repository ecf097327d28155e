"""LoRA supervised fine-tuning on FinGPT's sentiment mixture with TRL's ``SFTTrainer``.

``run_sft`` does everything ``recipes/sft.py`` needs after argument parsing: checks first (model,
device, output directory, LoRA targets), then data, model, training and the output directory
layout (adapter + tokenizer + ``recipe.yaml`` + ``fingpt_run.json``) that
``PeftModel.from_pretrained(base, DIR)`` loads as it is.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from fingpt_hf.conversion.spec import SOURCE_KEY
from fingpt_hf.errors import FinGPTError
from fingpt_hf.training.checks import (
    check_exact_length,
    check_device_requests,
    check_model_path,
    check_output_dir,
    check_shared_prefix,
    clear_checkpoints,
)
from fingpt_hf.training.recipe import to_plain
from fingpt_hf.training.run_info import SECRET_KEYS, now_iso, recipe_hash, write_recipe, write_run_info
from fingpt_hf.training.validation import validate_sft_args

logger = logging.getLogger(__name__)


def resolved_recipe(script_args: Any, training_args: Any, model_args: Any) -> dict[str, Any]:
    """Options that differ from their dataclass defaults (used when no parsed recipe is given)."""
    recipe: dict[str, Any] = {}
    for obj in (script_args, training_args, model_args):
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            value = getattr(obj, f.name)
            if default is dataclasses.MISSING or to_plain(value) != to_plain(default):
                recipe[f.name] = to_plain(value)
    return recipe


def lora_targets(value: Any) -> Any:
    """ModelConfig turns a one-item list into a string; a plain module name is still a list."""
    if isinstance(value, str) and value != "all-linear" and re.fullmatch(r"[\w.]+", value):
        return [value]
    return value


def evaluation_rows(mixture_config: Any, holdout: float, seed: int, data_dir: str | None):
    """Rows to evaluate on during training: ``holdout`` (a fraction or a count) of the validation
    splits of the mixture's benchmarks, a seeded sample; None when ``holdout`` is 0.

    They are never training rows: the mixture leaves the validation rows out (refused otherwise),
    where a slice of the weighted mixture would repeat rows that are also trained on.
    """
    from fingpt_hf.data.mixture import validation_rows

    if not holdout:
        return None
    if not mixture_config.exclude_validation:
        raise FinGPTError("eval_holdout evaluates on the benchmarks' validation rows, which this mixture trains "
                          "on (dataset_mixture.exclude_validation: false); set it to true or eval_holdout: 0")
    rows = validation_rows(mixture_config, data_dir)
    if rows is None:
        raise FinGPTError("eval_holdout: no source of the mixture has a validation split (they come from the "
                          "benchmarks' train splits)")
    size = round(holdout * len(rows)) if holdout < 1 else int(holdout)
    if not 1 <= size <= len(rows):
        raise FinGPTError(f"eval_holdout {holdout}: the mixture's validation splits have {len(rows)} rows")
    return rows.shuffle(seed=seed).select(range(size)) if size < len(rows) else rows


def _report_to(value: Any) -> list[str]:
    """``report_to`` without TensorBoard when it is not installed (logged, not fatal)."""
    entries = [value] if isinstance(value, str) else list(value or [])
    entries = [e for e in entries if e and e != "none"]
    if "tensorboard" in entries and not (
        importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    ):
        logger.warning("report_to: tensorboard is not installed (pip install tensorboard); logging to stdout only")
        entries.remove("tensorboard")
    return entries


def build_training_rows(rows, tokenizer, family, prompt_style: str, max_length: int | None):
    """Mixture rows -> ``prompt``/``completion`` -> ``input_ids``, ``completion_mask`` and ``labels``."""
    from fingpt_hf.data.prompts import adds_special_tokens, format_prompt
    from fingpt_hf.families.tokenization import tokenize_prompt_completion

    def encode(row: Mapping[str, Any]) -> dict[str, Any]:
        example = {"prompt": format_prompt(row, style=prompt_style, tokenizer=tokenizer), "completion": row["output"]}
        ids = tokenize_prompt_completion(example, tokenizer, family, max_length=max_length,
                                         add_special_tokens=adds_special_tokens(prompt_style))
        # Loss on the answer (+ EOS) only. We set the labels ourselves: TRL folds `completion_mask`
        # into labels only for data sets it recognises as prompt-completion, which a pre-tokenized
        # one is not, and would otherwise train on every token; a `labels` column it leaves as is.
        ids["labels"] = [t if m else -100 for t, m in zip(ids["input_ids"], ids["completion_mask"])]
        return ids

    return rows.map(encode, remove_columns=rows.column_names, desc="Tokenizing")


def load_model(model_path: str, model_args: Any, training_args: Any):
    """The base model for training (``fingpt_hf.families.loading``), placed for k-bit and ZeRO-3."""
    from accelerate import PartialState
    from trl import get_quantization_config

    from fingpt_hf.families.loading import load_causal_lm

    kwargs: dict[str, Any] = dict(training_args.model_init_kwargs or {})
    kwargs.setdefault("revision", model_args.model_revision)
    kwargs.setdefault("trust_remote_code", training_args.trust_remote_code)
    kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation is not None:
        kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs.setdefault("device_map", {"": PartialState().local_process_index})  # k-bit: one GPU per process
    from transformers.integrations import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        # from_pretrained partitions the weights with deepspeed.zero.Init, which sizes batches with
        # DeepSpeed's own view of the process group; make sure it has joined the one torch started.
        import deepspeed

        deepspeed.init_distributed()
    return load_causal_lm(model_path, option="model_name_or_path", **kwargs)


def check_padding_free(model: Any, family: Any) -> None:
    """Padding-free batches are one long row told apart only by position ids: right for models
    whose attention reads them (transformers' own classes: varlen kernels under FlashAttention,
    a block-diagonal mask under sdpa/eager), wrong for ALiBi models and remote code."""
    from fingpt_hf.training.collator import model_uses_position_ids

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    native = type(base).__module__.startswith("transformers.")
    if not native or not model_uses_position_ids(base):
        raise FinGPTError(
            f"padding_free: {type(base).__name__} ({family.name}) cannot tell packed rows apart "
            f"({'remote code' if not native else 'no position ids'}); set `padding_free: false`"
        )


def _trainer_class(fast_path: bool):
    if fast_path:
        from fingpt_hf.training.fast_trainer import FastSFTTrainer

        return FastSFTTrainer
    from trl import SFTTrainer

    return SFTTrainer


def run_sft(
    script_args: Any,
    training_args: Any,
    model_args: Any,
    recipe: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] | None = None,
) -> Path:
    """Train a LoRA adapter as the recipe says; returns the output directory holding it.

    Secret options (``hub_token``) are cleared on ``training_args`` here, before anything is
    built: the Trainer pickles its arguments into every ``training_args.bin``. A caller that
    pushes afterwards (recipes/sft.py) reads the token before calling.
    """
    from accelerate import PartialState
    from transformers import AutoTokenizer

    from fingpt_hf.data.mixture import build_mixture
    from fingpt_hf.families.default_model import resolve_model_path
    from fingpt_hf.families.lora import build_lora_config, top_layers
    from fingpt_hf.families.registry import check_remote_code, get_family
    from fingpt_hf.families.tokenization import prepare_tokenizer
    from fingpt_hf.training.collator import AnswerOnlyCollator
    from fingpt_hf.training.liger import enable_liger_when_available

    # 0. Every value in range, every path usable (parse_sft_args did it too; direct callers did not).
    validate_sft_args(script_args, training_args, model_args)
    for key in SECRET_KEYS:
        setattr(training_args, key, None)
    started_at = now_iso()
    recipe = dict(recipe) if recipe is not None else resolved_recipe(script_args, training_args, model_args)
    recipe = {k: v for k, v in recipe.items() if k not in SECRET_KEYS}
    state = PartialState()

    # 1. Checks that need neither data nor weights.
    if not model_args.use_peft:
        raise FinGPTError("use_peft is false: fingpt-hf trains LoRA adapters; set `use_peft: true`")
    if training_args.eval_strategy != "no" and not script_args.eval_holdout:
        raise FinGPTError(f"eval_strategy {training_args.eval_strategy.value!r} needs rows to evaluate on: "
                          "set eval_holdout (a fraction such as 0.05, or a row count)")
    if training_args.push_to_hub and not training_args.hub_model_id:
        raise FinGPTError("push_to_hub needs hub_model_id (the Hub repository, e.g. user/fingpt-smollm2-lora)")
    check_device_requests(training_args, model_args)
    check_shared_prefix(script_args, training_args, model_args)
    model_path = resolve_model_path(model_args.model_name_or_path)
    config = check_model_path(model_path, model_args.model_revision, training_args.trust_remote_code)
    family = get_family(config)
    check_remote_code(family, training_args.trust_remote_code)
    check_exact_length(config, family, training_args.max_length)
    output_dir = Path(training_args.output_dir)
    rhash = recipe_hash(recipe)
    resume = check_output_dir(output_dir, rhash, script_args.overwrite_output_dir,
                              training_args.resume_from_checkpoint)
    mixture_config = script_args.mixture_config()
    prompt_style = script_args.prompt_style or family.prompt_style

    # 2. Data (every rank builds the same rows; it is deterministic and cheap).
    rows, report = build_mixture(mixture_config, script_args.data_dir)
    if state.is_main_process:
        for line in report.summary_lines():
            logger.info("mixture: %s", line)
        for skipped in report.skipped:  # e.g. NWGI train, which the offline mirror lacks
            logger.warning("MIXTURE SOURCE LEFT OUT: %s %s (x%g): %s; the run trains without it",
                           skipped.name, skipped.split, skipped.weight, skipped.reason)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=model_args.model_revision,
                                              trust_remote_code=training_args.trust_remote_code)
    prepare_tokenizer(tokenizer, family)
    max_length = training_args.max_length
    train_rows = build_training_rows(rows, tokenizer, family, prompt_style, max_length)
    held_out = evaluation_rows(mixture_config, script_args.eval_holdout, training_args.seed, script_args.data_dir)
    eval_rows = build_training_rows(held_out, tokenizer, family, prompt_style, max_length) if held_out else None

    # 3. Model and LoRA targets (a target list that matches nothing fails here, before training).
    model = load_model(model_path, model_args, training_args)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    lora_config = build_lora_config(
        model, r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
        target_modules=lora_targets(model_args.lora_target_modules), family=family,
        use_rslora=model_args.use_rslora, use_dora=model_args.use_dora,
        modules_to_save=model_args.lora_modules_to_save,
        layers_to_transform=top_layers(model, script_args.lora_top_layers),
    )
    if training_args.padding_free:
        check_padding_free(model, family)

    # 4. The output directory is ours from here on.
    state.wait_for_everyone()
    model_info = {"name_or_path": model_args.model_name_or_path, "resolved_path": model_path,
                  "revision": model_args.model_revision, "family": family.name,
                  "converted_from": getattr(config, SOURCE_KEY, None)}
    if state.is_main_process:
        if script_args.overwrite_output_dir:
            clear_checkpoints(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_recipe(output_dir, recipe)
        write_run_info(output_dir, recipe=recipe, status="running", started_at=started_at, model=model_info,
                       mixture=report.to_dict(), eval_rows=len(eval_rows or []), resumed_from=resume,
                       world_size=state.num_processes,
                       extra={"prompt_style": prompt_style, "max_length": max_length})
    state.wait_for_everyone()

    training_args.push_to_hub = False  # the Trainer would create the repo now and push every checkpoint;
    # recipes/sft.py pushes the finished adapter once, after training
    training_args.report_to = _report_to(training_args.report_to)
    if training_args.padding_free:
        # TRL's padding-free collator: rows laid end to end with position ids restarting at 0, and
        # the answer-only labels we set. Rows are already cut to max_length (TRL refuses
        # max_length without packing, since it would not enforce it).
        collator, training_args.max_length = None, None
    else:
        collator = AnswerOnlyCollator(
            pad_token_id=tokenizer.pad_token_id,
            padding_side="right",
            pad_to_multiple_of=training_args.pad_to_multiple_of,
        )
    fast_options = ({"compile_layers": script_args.compile_layers, "shared_prefix": script_args.shared_prefix}
                    if script_args.fast_path else {})
    liger = enable_liger_when_available(training_args, script_args.liger_when_available)
    trainer = _trainer_class(script_args.fast_path)(
        **fast_options,
        model=model,
        args=training_args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        data_collator=collator,
        peft_config=lora_config,
        callbacks=list(callbacks or []),
    )
    if resume:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    if eval_rows is not None and training_args.eval_strategy == "no":
        trainer.log_metrics("eval", trainer.evaluate())
    trainer.save_model(str(output_dir))

    if state.is_main_process:
        write_run_info(output_dir, recipe=recipe, status="completed", started_at=started_at, model=model_info,
                       mixture=report.to_dict(), eval_rows=len(eval_rows or []), resumed_from=resume,
                       world_size=state.num_processes, log_history=trainer.state.log_history,
                       finished_at=now_iso(), extra={"prompt_style": prompt_style, "max_length": max_length,
                                                     "liger_kernel": liger,
                                                     "global_step": trainer.state.global_step})
    state.wait_for_everyone()
    return output_dir
