"""The steps of LoRA supervised fine-tuning on FinGPT's sentiment mixture with TRL's ``SFTTrainer``.

``recipes/sft.py`` shows the flow and calls these in order: ``prepare_run`` (every check that
needs neither data nor weights), ``load_training_mixture``, ``load_tokenizer`` and
``build_training_rows``, ``load_training_model``, ``build_trainer``, ``start_run``, train,
``save_run`` (the adapter + tokenizer + ``recipe.yaml`` + ``fingpt_run.json`` layout that
``PeftModel.from_pretrained(base, DIR)`` loads as it is).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, Mapping, Sequence

from fingpt_hf.conversion.spec import SOURCE_KEY
from fingpt_hf.errors import FinGPTError
from fingpt_hf.hardware import emulated_bf16_warning
from fingpt_hf.training.checks import (
    check_exact_length,
    check_device_requests,
    check_model_path,
    resume_point,
    check_shared_prefix,
    clear_checkpoints,
)
from fingpt_hf.training.loraplus import loraplus_optimizer
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


def build_training_rows(rows, tokenizer, family, prompt_style: str, max_length: int | None,
                        noised_sources: Collection[str] | None = None):
    """Mixture rows -> ``prompt``/``completion`` -> ``input_ids``, ``completion_mask`` and ``labels``
    (and, with ``noised_sources``, each row's NEFTune flag from its source: ``neftune_sources``)."""
    from fingpt_hf.data.prompts import adds_special_tokens, format_prompt
    from fingpt_hf.families.tokenization import tokenize_prompt_completion
    from fingpt_hf.training.neftune import NOISE_COLUMN, noise_flag

    def encode(row: Mapping[str, Any]) -> dict[str, Any]:
        example = {"prompt": format_prompt(row, style=prompt_style, tokenizer=tokenizer), "completion": row["output"]}
        ids = tokenize_prompt_completion(example, tokenizer, family, max_length=max_length,
                                         add_special_tokens=adds_special_tokens(prompt_style))
        # Loss on the answer (+ EOS) only. We set the labels ourselves: TRL folds `completion_mask`
        # into labels only for data sets it recognises as prompt-completion, which a pre-tokenized
        # one is not, and would otherwise train on every token; a `labels` column it leaves as is.
        ids["labels"] = [t if m else -100 for t, m in zip(ids["input_ids"], ids["completion_mask"])]
        if noised_sources is not None:
            ids[NOISE_COLUMN] = noise_flag(row["dataset"], noised_sources)
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


@dataclasses.dataclass
class RunPlan:
    """What the pre-flight checks decided, before any data or weights load; the later steps of
    ``recipes/sft.py`` (data, tokenizer, model, trainer, train, save) all read it."""

    script_args: Any
    training_args: Any
    model_args: Any
    recipe: dict[str, Any]
    recipe_hash: str
    started_at: str
    model_path: str
    config: Any
    family: Any
    output_dir: Path
    resume: str | None
    mixture_config: Any
    prompt_style: str
    max_length: int | None
    liger: bool = False
    optimizer_cls_and_kwargs: tuple[Any, dict[str, Any]] | None = None  # LoRA+ (loraplus_lr_ratio); None: the Trainer's
    lora_init: dict[str, Any] = dataclasses.field(default_factory=dict)  # what EVA cost (lora_init: eva), for fingpt_run.json

    @property
    def model_info(self) -> dict[str, Any]:
        return {"name_or_path": self.model_args.model_name_or_path, "resolved_path": self.model_path,
                "revision": self.model_args.model_revision, "family": self.family.name,
                "converted_from": getattr(self.config, SOURCE_KEY, None)}


def prepare_run(script_args: Any, training_args: Any, model_args: Any,
                recipe: Mapping[str, Any] | None = None) -> RunPlan:
    """Every check that needs neither data nor weights: values, device, model path and family,
    remote code, context length, shared-prefix combinations, and the output directory (a fresh
    run, this recipe's interrupted run to resume, or an error).

    Secret options (``hub_token``) are cleared on ``training_args`` here, before anything is
    built: the Trainer pickles its arguments into every ``training_args.bin``. A caller that
    pushes afterwards (recipes/sft.py) reads the token before calling.
    """
    from fingpt_hf.families.default_model import resolve_model_path
    from fingpt_hf.families.registry import check_remote_code, get_family

    validate_sft_args(script_args, training_args, model_args)  # parse_sft_args did too; direct callers did not
    for key in SECRET_KEYS:
        setattr(training_args, key, None)
    started_at = now_iso()
    recipe = dict(recipe) if recipe is not None else resolved_recipe(script_args, training_args, model_args)
    recipe = {k: v for k, v in recipe.items() if k not in SECRET_KEYS}
    if not model_args.use_peft:
        raise FinGPTError("use_peft is false: fingpt-hf trains LoRA adapters; set `use_peft: true`")
    if training_args.eval_strategy != "no" and not script_args.eval_holdout:
        raise FinGPTError(f"eval_strategy {training_args.eval_strategy.value!r} needs rows to evaluate on: "
                          "set eval_holdout (a fraction such as 0.05, or a row count)")
    if training_args.push_to_hub and not training_args.hub_model_id:
        raise FinGPTError("push_to_hub needs hub_model_id (the Hub repository, e.g. user/fingpt-smollm2-lora)")
    check_device_requests(training_args, model_args)
    check_shared_prefix(script_args, training_args)
    model_path = resolve_model_path(model_args.model_name_or_path)
    config = check_model_path(model_path, model_args.model_revision, training_args.trust_remote_code)
    family = get_family(config)
    check_remote_code(family, training_args.trust_remote_code)
    check_exact_length(config, family, training_args.max_length)
    optimizer = (loraplus_optimizer(training_args, script_args.loraplus_lr_ratio)
                 if script_args.loraplus_lr_ratio is not None else None)
    rhash = recipe_hash(recipe)
    resume = resume_point(training_args.output_dir, rhash, script_args.overwrite_output_dir,
                          training_args.resume_from_checkpoint)
    return RunPlan(script_args, training_args, model_args, recipe, rhash, started_at, model_path, config, family,
                   Path(training_args.output_dir), resume, script_args.mixture_config(),
                   script_args.prompt_style or family.prompt_style, training_args.max_length,
                   optimizer_cls_and_kwargs=optimizer)


def load_training_mixture(plan: RunPlan):
    """The mixture's rows and report; every rank builds the same rows (deterministic and cheap).
    A source left out (``on_missing: skip``, e.g. NWGI train offline) is said loudly here, and
    recorded in ``fingpt_run.json`` and the card."""
    from accelerate import PartialState

    from fingpt_hf.data.mixture import build_mixture

    rows, report = build_mixture(plan.mixture_config, plan.script_args.data_dir)
    if PartialState().is_main_process:
        for line in report.summary_lines():
            logger.info("mixture: %s", line)
        for skipped in report.skipped:
            logger.warning("MIXTURE SOURCE LEFT OUT: %s %s (x%g): %s; the run trains without it",
                           skipped.name, skipped.split, skipped.weight, skipped.reason)
    return rows, report


def held_out_rows(plan: RunPlan):
    """The validation rows evaluated during training (``eval_holdout``), or None."""
    return evaluation_rows(plan.mixture_config, plan.script_args.eval_holdout, plan.training_args.seed,
                           plan.script_args.data_dir)


def load_tokenizer(plan: RunPlan):
    """The model's tokenizer with the family's pad token and padding side."""
    from transformers import AutoTokenizer

    from fingpt_hf.families.tokenization import prepare_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(plan.model_path, revision=plan.model_args.model_revision,
                                              trust_remote_code=plan.training_args.trust_remote_code)
    prepare_tokenizer(tokenizer, plan.family)
    return tokenizer


def load_training_model(plan: RunPlan, tokenizer: Any):
    """The base model (``load_model``) with the tokenizer's pad id, and its LoRA config; a target
    list that matches nothing, or padding-free batches the model cannot read, fail here."""
    from fingpt_hf.families.lora import build_lora_config, top_layers
    from fingpt_hf.training.eva import eva_config

    model_args, script_args = plan.model_args, plan.script_args
    model = load_model(plan.model_path, model_args, plan.training_args)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    lora_config = build_lora_config(
        model, r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
        target_modules=lora_targets(model_args.lora_target_modules), family=plan.family,
        use_rslora=model_args.use_rslora, use_dora=model_args.use_dora,
        modules_to_save=model_args.lora_modules_to_save,
        layers_to_transform=top_layers(model, script_args.lora_top_layers),
        **({"init_lora_weights": "eva", "eva_config": eva_config()} if script_args.lora_init == "eva" else {}),
    )
    if plan.training_args.padding_free:
        check_padding_free(model, plan.family)
    return model, lora_config


def answer_only_collator(tokenizer: Any, training_args: Any):
    """The padding collator of padded (not padding-free) training batches: right padding, answer-only labels."""
    from fingpt_hf.training.collator import AnswerOnlyCollator

    return AnswerOnlyCollator(pad_token_id=tokenizer.pad_token_id, padding_side="right",
                              pad_to_multiple_of=training_args.pad_to_multiple_of)


def eva_autocast_dtype(plan: RunPlan) -> Any:
    """The dtype training computes in, for EVA's forward passes: mixed precision, else the fast
    trainer's bf16 autocast where it adds one (CPUs with native bf16), else none."""
    import torch

    from fingpt_hf.training.fast_trainer import resolve_fast_bf16

    args = plan.training_args
    if args.bf16 or (plan.script_args.fast_path and resolve_fast_bf16("auto", args.device)):
        return torch.bfloat16
    return torch.float16 if args.fp16 else None


def compute_lora_init(plan: RunPlan, model: Any, lora_config: Any, train_rows: Any, tokenizer: Any):
    """EVA's ``A`` from the first training batches (``lora_init: eva``), on the base model before the
    trainer wraps it; None for peft's default init, and when resuming (the checkpoint holds ``A``)."""
    from fingpt_hf.training.eva import compute_eva

    if plan.script_args.lora_init != "eva" or plan.resume:
        return None
    if getattr(model, "hf_device_map", None) is None:
        model.to(plan.training_args.device)  # where the Trainer would put it; quantized models already are
    result = compute_eva(model, lora_config, train_rows, answer_only_collator(tokenizer, plan.training_args),
                         plan.training_args.per_device_train_batch_size, eva_autocast_dtype(plan))
    plan.lora_init = result.summary()
    logger.info("EVA: LoRA's A from %d training batches in %.1f s", result.batches, result.seconds)
    return result


def build_trainer(plan: RunPlan, model: Any, tokenizer: Any, train_rows: Any, eval_rows: Any, lora_config: Any,
                  callbacks: Sequence[Any] = ()):
    """TRL's ``SFTTrainer`` (or ``FastSFTTrainer`` with ``fast_path``) over the tokenized rows."""
    from fingpt_hf.training.ema import AdapterEMACallback
    from fingpt_hf.training.liger import enable_liger_when_available

    script_args, training_args = plan.script_args, plan.training_args
    training_args.push_to_hub = False  # the Trainer would create the repo now and push every checkpoint;
    # recipes/sft.py pushes the finished adapter once, after training
    training_args.report_to = _report_to(training_args.report_to)
    if training_args.padding_free:
        # TRL's padding-free collator: rows laid end to end with position ids restarting at 0, and
        # the answer-only labels we set. Rows are already cut to max_length (TRL refuses
        # max_length without packing, since it would not enforce it).
        collator, training_args.max_length = None, None
    else:
        collator = answer_only_collator(tokenizer, training_args)
    fast_options = ({"compile_layers": script_args.compile_layers, "shared_prefix": script_args.shared_prefix,
                     "noise_flagged_rows": script_args.neftune_sources is not None}
                    if script_args.fast_path else {})
    plan.liger = enable_liger_when_available(training_args, script_args.liger_when_available)
    if note := emulated_bf16_warning(training_args.device.type, training_args.bf16):
        logger.warning(note)
    callbacks = list(callbacks)
    if script_args.ema_decay is not None:
        callbacks.append(AdapterEMACallback(script_args.ema_decay))
    return _trainer_class(script_args.fast_path)(
        **fast_options, model=model, args=training_args, train_dataset=train_rows, eval_dataset=eval_rows,
        processing_class=tokenizer, data_collator=collator, peft_config=lora_config, callbacks=callbacks,
        optimizer_cls_and_kwargs=plan.optimizer_cls_and_kwargs,
    )


def _write_run_info(plan: RunPlan, report: Any, eval_rows: Any, **fields: Any) -> None:
    from accelerate import PartialState

    extra = {"prompt_style": plan.prompt_style, "max_length": plan.max_length, **plan.lora_init,
             **fields.pop("extra", {})}
    write_run_info(plan.output_dir, recipe=plan.recipe, started_at=plan.started_at, model=plan.model_info,
                   mixture=report.to_dict(), eval_rows=len(eval_rows or []), resumed_from=plan.resume,
                   world_size=PartialState().num_processes, extra=extra, **fields)


def start_run(plan: RunPlan, report: Any, eval_rows: Any) -> None:
    """Claim the output directory: ``recipe.yaml`` and ``fingpt_run.json`` (status ``running``),
    which is what lets a killed run resume and a different run be refused."""
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    if state.is_main_process:
        if plan.script_args.overwrite_output_dir:
            clear_checkpoints(plan.output_dir)
        plan.output_dir.mkdir(parents=True, exist_ok=True)
        write_recipe(plan.output_dir, plan.recipe)
        _write_run_info(plan, report, eval_rows, status="running")
    state.wait_for_everyone()
    if plan.resume:
        logger.info("resuming from %s", plan.resume)


def save_run(plan: RunPlan, trainer: Any, report: Any, eval_rows: Any) -> Path:
    """Save the adapter (``PeftModel.from_pretrained(base, DIR)`` loads it as it is) and mark the
    run completed in ``fingpt_run.json`` with its log history."""
    from accelerate import PartialState

    if eval_rows is not None and plan.training_args.eval_strategy == "no":
        trainer.log_metrics("eval", trainer.evaluate())
    trainer.save_model(str(plan.output_dir))
    state = PartialState()
    if state.is_main_process:
        _write_run_info(plan, report, eval_rows, status="completed", log_history=trainer.state.log_history,
                        finished_at=now_iso(), extra={"liger_kernel": plan.liger,
                                                      "global_step": trainer.state.global_step,
                                                      "best_model_checkpoint": trainer.state.best_model_checkpoint,
                                                      "best_metric": trainer.state.best_metric})
    state.wait_for_everyone()
    return plan.output_dir
