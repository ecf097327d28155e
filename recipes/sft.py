#!/usr/bin/env python
"""LoRA SFT on FinGPT's sentiment mixture: a YAML recipe plus command-line overrides.

    python recipes/sft.py --config recipes/smollm2-135m/sft_lora.yaml [--any_field value ...]
    accelerate launch --config_file ds_configs/accelerate/zero2_8gpu.yaml recipes/sft.py --config ...

Every recipe key is a field of fingpt_hf.training.recipe.ScriptArguments, trl.SFTConfig or
trl.ModelConfig; an unknown key is an error. The flow reads top to bottom like TRL's
``trl/scripts/sft.py`` (parse, checks, data, tokenizer, model, trainer, train, save, push); each
step is a small helper in fingpt_hf.training.sft.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Sequence


def train(script_args: Any, training_args: Any, model_args: Any, recipe: Mapping[str, Any] | None = None,
          callbacks: Sequence[Any] = ()) -> Path:
    """Checks, data, tokenizer, model, trainer, train, save; returns the adapter's directory."""
    from fingpt_hf.evaluation.during_training import ValidationF1Callback
    from fingpt_hf.training.eva import load_eva
    from fingpt_hf.training.sft import (build_trainer, build_training_rows, compute_lora_init, held_out_rows,
                                        load_tokenizer, load_training_mixture, load_training_model, prepare_run,
                                        save_run, start_run)

    # Checks that need neither data nor weights (model, device, output directory, resume point).
    plan = prepare_run(script_args, training_args, model_args, recipe)

    # Data: FinGPT's mixture (validation and test rows left out), and the validation rows to
    # evaluate on during training (`eval_holdout`).
    rows, report = load_training_mixture(plan)
    held_out = held_out_rows(plan)

    # Tokenizer, and the rows as prompt + answer token ids with the loss on the answer only.
    tokenizer = load_tokenizer(plan)
    train_rows = build_training_rows(rows, tokenizer, plan.family, plan.prompt_style, plan.max_length,
                                     noised_sources=script_args.neftune_sources)
    eval_rows = (build_training_rows(held_out, tokenizer, plan.family, plan.prompt_style, plan.max_length)
                 if held_out is not None else None)

    # Model and LoRA config; with `lora_init: eva`, LoRA's A from the training rows' activations
    # (computed on the base model, loaded into the trainer's PeftModel).
    model, lora_config = load_training_model(plan, tokenizer)
    eva = compute_lora_init(plan, model, lora_config, train_rows, tokenizer)

    # Trainer; with validation rows, each evaluation also scores them as `fingpt-hf eval` does
    # (weighted F1 per benchmark), which `metric_for_best_model` can name.
    trainer = build_trainer(plan, model, tokenizer, train_rows, eval_rows, lora_config, callbacks)
    if eva is not None:
        load_eva(trainer.model, eva)
    if held_out is not None and script_args.eval_f1:
        trainer.add_callback(ValidationF1Callback(trainer, held_out, tokenizer, plan.prompt_style,
                                                  plan.max_length, script_args.eval_f1_batch_size))

    # Train: resumes from this recipe's last complete checkpoint when the directory holds one.
    start_run(plan, report, eval_rows)
    trainer.train(resume_from_checkpoint=plan.resume)

    # Save the adapter and fingpt_run.json.
    return save_run(plan, trainer, report, eval_rows)


def main(argv: list[str] | None = None, callbacks: list | None = None) -> int:
    """Parse, train, push; ``callbacks`` (TrainerCallback objects) are for scripts that wrap this one."""
    from accelerate import PartialState

    from fingpt_hf.errors import FinGPTError
    from fingpt_hf.hub.push import push_to_hub
    from fingpt_hf.training.recipe import parse_sft_args
    from fingpt_hf.training.teardown import end_training_process

    try:
        # Parse the recipe and the command line (every key is checked).
        parsed = parse_sft_args(argv)
        args = parsed.training_args
        # --hub_token lives in memory only: prepare_run clears it on `args` before the Trainer
        # pickles them into training_args.bin, and it is never part of recipe.yaml. None:
        # huggingface_hub's usual lookup (HF_TOKEN, `hf auth login`).
        push, repo_id, token = bool(args.push_to_hub), args.hub_model_id, args.hub_token
        output_dir = train(parsed.script_args, args, parsed.model_args, recipe=parsed.explicit,
                           callbacks=callbacks or ())
        # Push the finished adapter once, with its card (not every checkpoint).
        if push and PartialState().is_main_process:
            push_to_hub(output_dir, repo_id, private=bool(args.hub_private_repo), revision=args.hub_revision,
                        commit_message="fingpt-hf: LoRA adapter", token=token)
    except FinGPTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"adapter saved to {output_dir}")
    # Every rank gets here with its outputs written: leave the process groups in order, and end a
    # rank of a multi-process run without the interpreter's teardown (fingpt_hf/training/teardown.py).
    return end_training_process(0)


if __name__ == "__main__":
    sys.exit(main())
