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
    """Parse, train, report; ``callbacks`` (TrainerCallback objects) are for scripts that wrap this one."""
    from fingpt_hf.errors import FinGPTError
    from fingpt_hf.training.recipe import parse_sft_args
    from fingpt_hf.training.sft import run_sft

    try:
        parsed = parse_sft_args(argv)
        output_dir = run_sft(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit,
                             callbacks=callbacks)
    except FinGPTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"adapter saved to {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
