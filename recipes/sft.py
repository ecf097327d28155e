#!/usr/bin/env python
"""LoRA SFT on FinGPT's sentiment mixture: a YAML recipe plus command-line overrides.

    python recipes/sft.py --config recipes/smollm2-135m/sft_lora.yaml [--any_field value ...]
    accelerate launch --config_file ds_configs/accelerate/zero2_8gpu.yaml recipes/sft.py --config ...

Every recipe key is a field of fingpt_hf.training.recipe.ScriptArguments, trl.SFTConfig or
trl.ModelConfig; an unknown key is an error. The logic lives in fingpt_hf.training.sft.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None, callbacks: list | None = None) -> int:
    """Parse, train, save, push; ``callbacks`` (TrainerCallback objects) are for scripts that wrap this one."""
    from accelerate import PartialState

    from fingpt_hf.errors import FinGPTError
    from fingpt_hf.hub.push import push_to_hub
    from fingpt_hf.training.recipe import parse_sft_args
    from fingpt_hf.training.sft import run_sft

    try:
        # 1. Parse the recipe and the command line (every key is checked).
        parsed = parse_sft_args(argv)
        args = parsed.training_args
        # --hub_token lives in memory only: run_sft clears it on `args` before the Trainer pickles
        # them into training_args.bin, and it is never part of recipe.yaml. None: huggingface_hub's
        # usual lookup (HF_TOKEN, `hf auth login`).
        push, repo_id, token = bool(args.push_to_hub), args.hub_model_id, args.hub_token
        # 2. Checks, data, tokenizer, model, LoRA, trainer, train, save (adapter + fingpt_run.json).
        output_dir = run_sft(parsed.script_args, args, parsed.model_args, recipe=parsed.explicit,
                             callbacks=callbacks)
        # 3. Push the finished adapter once, with its card (not every checkpoint).
        if push and PartialState().is_main_process:
            push_to_hub(output_dir, repo_id, private=bool(args.hub_private_repo), revision=args.hub_revision,
                        commit_message="fingpt-hf: LoRA adapter", token=token)
    except FinGPTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"adapter saved to {output_dir}")
    # Leave the process group in order (every rank gets here), rather than to interpreter exit,
    # where a torch/DeepSpeed comm thread can abort the process after the work is saved.
    PartialState().destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
