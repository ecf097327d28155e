"""Answer-only loss: the padding collator (rows are tokenized by ``fingpt_hf.families.tokenization``).

Loss is on the answer tokens (and the EOS after them) only; prompt and padding are -100.
FinGPT labels the prompt with the pad id instead of -100: where pad is a real token (Qwen
v1's ``<|extra_0|>``, an added ``[PAD]``) that trains the model to predict pad after every
prompt token. We do not copy that.

TRL's SFTTrainer already gives answer-only loss for prompt-completion data sets
(``completion_only_loss``); this module covers what it does not: left padding (the fast
trainer path), ChatGLM-style prefix tokens kept when truncating, a pad token equal to EOS, and
truncating the prompt rather than the answer. ``AnswerOnlyCollator`` accepts TRL's tokenized
features (``input_ids`` with ``completion_mask`` or TRL-built ``labels``), so it can be passed
to ``SFTTrainer(data_collator=...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fingpt_hf.errors import FinGPTError
from fingpt_hf.training.neftune import NOISE_COLUMN

IGNORE_INDEX = -100


def model_uses_position_ids(model: Any) -> bool:
    """Whether ``model.forward`` takes ``position_ids`` (RoPE models do; Bloom/MPT use ALiBi)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


@dataclass
class AnswerOnlyCollator:
    """Pad a batch and label only the answer.

    Each feature has ``input_ids`` and either ``completion_mask`` (1 = answer) or ``labels``
    (-100 = no loss, as TRL prepares them); with both, a token needs both to carry loss.
    Output: ``input_ids``, ``attention_mask``, ``labels``, each row's ``neftune_noise`` flag when the
    features carry one (``neftune_sources``) and, by default when padding on the left,
    ``position_ids`` counting from 0 at the first real token, as ``generate`` does.
    Models with absolute position embeddings (GPT-2, OPT) are wrong without them; RoPE models
    number positions from the first pad otherwise, which is harmless (RoPE is relative) but
    differs from generation. Bloom and MPT take no ``position_ids`` (ALiBi from the attention
    mask; see ``model_uses_position_ids``): set ``return_position_ids=False`` for them.

    ``max_length`` truncates the prompt from the left, keeping the first
    ``keep_prefix_tokens`` tokens (BOS, ChatGLM's ``[gMASK] sop``; see
    ``fingpt_hf.families.tokenization.special_prefix_length``); the answer is never cut.
    """

    pad_token_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None
    max_length: int | None = None
    keep_prefix_tokens: int = 0
    return_position_ids: bool | None = None
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        if self.padding_side not in ("right", "left"):
            raise FinGPTError(f"padding_side must be 'right' or 'left', not {self.padding_side!r}")
        if self.return_tensors != "pt":
            raise FinGPTError("AnswerOnlyCollator only returns PyTorch tensors (return_tensors='pt')")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise FinGPTError(f"pad_to_multiple_of must be positive, not {self.pad_to_multiple_of}")
        if self.max_length is not None and self.max_length <= self.keep_prefix_tokens:
            raise FinGPTError(
                f"max_length {self.max_length} must exceed keep_prefix_tokens {self.keep_prefix_tokens}"
            )

    def _row(self, index: int, feature: Mapping[str, Any]) -> tuple[list[int], list[bool]]:
        ids = [int(t) for t in feature["input_ids"]]
        if "completion_mask" not in feature and "labels" not in feature:
            raise FinGPTError(
                f"batch feature {index} has neither 'completion_mask' nor 'labels'; tokenize with "
                "tokenize_prompt_completion or TRL's prompt-completion preparation"
            )
        loss = [True] * len(ids)
        for key, keeps in (("completion_mask", lambda v: bool(v)), ("labels", lambda v: v != IGNORE_INDEX)):
            if key in feature:
                values = list(feature[key])
                if len(values) != len(ids):
                    raise FinGPTError(
                        f"batch feature {index}: '{key}' has {len(values)} entries for {len(ids)} input_ids"
                    )
                loss = [a and keeps(int(v)) for a, v in zip(loss, values)]
        if not any(loss):
            raise FinGPTError(f"batch feature {index} has no answer tokens to train on")
        if self.max_length is not None and len(ids) > self.max_length:
            first_answer = loss.index(True)
            drop = len(ids) - self.max_length
            keep = self.keep_prefix_tokens
            if keep + drop > first_answer:
                raise FinGPTError(
                    f"batch feature {index}: max_length {self.max_length} cannot hold its "
                    f"{len(ids) - first_answer} answer tokens after {keep} prefix tokens"
                )
            ids = ids[:keep] + ids[keep + drop :]
            loss = loss[:keep] + loss[keep + drop :]
        return ids, loss

    @staticmethod
    def _flag(index: int, feature: Mapping[str, Any]) -> float:
        if NOISE_COLUMN not in feature:
            raise FinGPTError(f"batch feature {index} has no '{NOISE_COLUMN}' where other rows of its batch have one")
        return feature[NOISE_COLUMN]

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise FinGPTError("cannot collate an empty batch")
        rows = [self._row(i, f) for i, f in enumerate(features)]
        width = max(len(ids) for ids, _ in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(rows)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        for i, (ids, loss) in enumerate(rows):
            span = slice(0, len(ids)) if self.padding_side == "right" else slice(width - len(ids), width)
            tokens = torch.tensor(ids, dtype=torch.long)
            input_ids[i, span] = tokens
            labels[i, span] = torch.where(torch.tensor(loss), tokens, IGNORE_INDEX)
            attention_mask[i, span] = 1
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if any(NOISE_COLUMN in f for f in features):  # neftune_sources: which rows NEFTune noises
            out[NOISE_COLUMN] = torch.tensor([float(self._flag(i, f)) for i, f in enumerate(features)])
        want_positions = self.return_position_ids
        if want_positions is None:
            want_positions = self.padding_side == "left"
        if want_positions:
            out["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return out
