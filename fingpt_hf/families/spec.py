"""What differs between model families when LoRA-tuning them the FinGPT way."""

from __future__ import annotations

from dataclasses import dataclass, field

#: ``FamilySpec.lora_target_modules`` value meaning "every linear layer except the output head".
ALL_LINEAR_TARGETS: tuple[str, ...] = ()


@dataclass(frozen=True)
class FamilySpec:
    """One model family: how to recognise it and what it needs.

    ``lora_target_modules`` are peft target names (a module matches when its dotted name equals
    a target or ends with ``"." + target``); the empty tuple ``ALL_LINEAR_TARGETS`` means all linear
    layers but the output head. ``pad_token_candidates`` are existing vocabulary tokens tried
    in order when the tokenizer has no pad token (then EOS); we never add a token, because that
    would silently resize the embeddings. ``eos_token_candidates`` do the same for tokenizers
    that ship without an EOS (Qwen v1). ``prefix_tokens`` are special tokens the family's own
    tokenizer puts before every prompt (ChatGLM's ``[gMASK] sop``). ``converted_from`` names the
    ``fingpt-hf model convert`` families (``config.json["fingpt_hf_source"]["family"]``) whose
    native checkpoints this entry covers; they are matched before ``model_type``, since a converted
    ChatGLM2 is a ``glm`` model with ChatGLM2's tokenizer.
    """

    name: str
    model_types: tuple[str, ...]
    lora_target_modules: tuple[str, ...]
    architectures: tuple[str, ...] = ()
    needs_remote_code: bool = False
    pad_token_candidates: tuple[str, ...] = ()
    eos_token_candidates: tuple[str, ...] = ()
    prefix_tokens: tuple[str, ...] = ()
    add_eos: bool = True
    prompt_style: str = "fingpt"
    fingpt_lora_target_modules: tuple[str, ...] | None = None
    converted_from: tuple[str, ...] = ()
    notes: str = ""
    examples: tuple[str, ...] = field(default=())

    @property
    def targets_all_linear(self) -> bool:
        return self.lora_target_modules == ALL_LINEAR_TARGETS
