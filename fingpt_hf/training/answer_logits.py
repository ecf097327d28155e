"""An LM head that scores only the answer tokens.

Sentiment fine-tuning trains on one or two answer tokens per example (the label word and EOS),
while the prompt is tens of tokens long. The usual causal-LM forward multiplies every position's
hidden state by the (vocab x hidden) LM head and then throws almost all of those logits away;
TRL 1.16's fused head also scores every position except on Triton devices. Here the hidden
states are gathered at the positions whose next-token label is not -100 and only those go
through the head, so its cost shrinks from ``batch x seq_len`` rows to ``#answer tokens`` rows.

The patched forward speaks TRL's ``fused_lm_head=True`` protocol (it returns a
``FusedCausalLMOutput`` with the loss, per-token log-probs, entropy and top-1 flags), so
``SFTTrainer.compute_loss`` with its metrics, ``num_items_in_batch`` normalisation and wrappers
(accelerate autocast, DDP, PEFT) keeps working unchanged. Without the flag the model's previous
forward runs, so generation and evaluation are untouched.

Label smoothing (``label_smoothing_factor`` in the training arguments) is computed here too, on the
answer tokens only: TRL otherwise runs a second, full-logits forward for it. The per-token
``log_probs`` then carry the smoothed objective ``(1 - e) log p(label) + e mean_v log p(v)``, whose
negated mean is exactly transformers' ``LabelSmoother`` loss over the full logits.
"""

from __future__ import annotations

import functools
import types

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from trl.trainer.utils import FusedCausalLMOutput

from fingpt_hf.training.neftune import noise_flags
from fingpt_hf.training.shared_prefix import (
    forward_with_shared_prefix,
    plan_shared_prefixes,
    supports_shared_prefix,
    window_covers,
)

# Rows of (tokens x vocab) float32 logits scored at once; above this the head runs in checkpointed chunks
# so that full-sequence (not answer-only) training does not hold every logit for the backward pass.
CHUNK_ROWS = 1024


def find_backbone_and_head(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """The decoder body and a plain linear LM head of a causal LM, or None when it has no such split."""
    prefix = getattr(model, "base_model_prefix", None)
    backbone = getattr(model, prefix, None) if prefix else None
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if backbone is None or backbone is model or not isinstance(head, nn.Linear):
        return None
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if model.config is not config:  # multimodal wrappers route images through the top-level forward
        return None
    return backbone, head


def add_answer_only_lm_head(model: nn.Module, shared_prefix: bool = False, label_smoothing: float = 0.0) -> bool:
    """Patch ``model.forward`` so ``fused_lm_head=True`` calls score only labelled positions.

    Returns False (and leaves the model alone) for models without a backbone / linear head split.
    Apply it to the transformers model itself (``peft_model.get_base_model()``), after TRL's own
    patch: PEFT and TRL look ``forward`` up on every call. With ``shared_prefix`` (and a backbone
    that ``supports_shared_prefix``), leading tokens that rows of a batch share run once per
    batch (``fingpt_hf.training.shared_prefix``). With ``label_smoothing`` > 0 the returned
    ``log_probs`` (and loss) are the label-smoothed objective (module docstring).
    """
    found = find_backbone_and_head(model)
    if found is None:
        return False
    shared_prefix = shared_prefix and supports_shared_prefix(found[0])
    previous_forward = model.forward
    config = model.config
    logit_scale = _logit_scale(config)
    softcap = getattr(config, "final_logit_softcapping", None)

    @functools.wraps(type(model).forward)
    def _answer_only_forward(
        self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs
    ):
        if not fused_lm_head:
            extra = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            return previous_forward(*args, **{k: v for k, v in extra.items() if v is not None}, **kwargs)
        backbone, head = find_backbone_and_head(self)  # looked up per call: PEFT/FSDP may swap modules
        kwargs["use_cache"] = False
        plan = None
        given = {k for k, v in kwargs.items() if v is not None}
        if shared_prefix and not args and shift_labels is None and _NEEDED_INPUTS <= given <= _PLAIN_INPUTS:
            if window_covers(backbone.config, kwargs["input_ids"].shape[1]):
                plan = plan_shared_prefixes(kwargs["input_ids"], kwargs["attention_mask"], labels,
                                            row_keys=noise_flags(backbone))
        if plan is not None:
            hidden, labels = forward_with_shared_prefix(
                backbone, kwargs["input_ids"], kwargs["attention_mask"], labels, plan
            )
        else:
            hidden = backbone(*args, **kwargs).last_hidden_state
            if shift_labels is None:
                hidden, labels = hidden[:, :-1], labels[:, 1:]
            else:
                labels = shift_labels
        labels = labels.to(hidden.device)
        mask = labels != -100
        log_probs, entropy, is_top1 = _target_log_probs(hidden[mask], labels[mask], head, logit_scale, softcap,
                                                        label_smoothing)
        denom = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        # masked_scatter keeps an all-ignored micro-batch connected to the graph (a differentiable zero).
        full = lambda x: x.new_zeros(mask.shape).masked_scatter(mask, x)  # noqa: E731
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / denom,
            log_probs=full(log_probs),
            entropy=full(entropy),
            is_top1=full(is_top1),
            label_mask=mask,
        )

    model.forward = types.MethodType(_answer_only_forward, model)
    return True


# A batch the shared-prefix path takes: exactly these keys (no position ids, embeddings, masks in 4D).
_NEEDED_INPUTS = {"input_ids", "attention_mask"}
_PLAIN_INPUTS = _NEEDED_INPUTS | {"use_cache", "return_dict", "output_attentions", "output_hidden_states"}


def _target_log_probs(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    head: nn.Module,
    logit_scale: float = 1.0,
    softcap: float | None = None,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row log p(label), entropy (no grad) and top-1 flag for gathered hidden states ``(n, hidden)``.

    With ``label_smoothing`` e > 0 the first is ``(1 - e) log p(label) + e mean_v log p(v)``.

    The head is called as a module (``head(hidden)``), never through its ``weight``, so whatever
    hooks or wraps it still applies: DeepSpeed ZeRO-3 gathers its partitioned weight in a forward
    pre-hook, and quantised or fused heads compute through their own ``forward``. The matmul runs
    in the ambient autocast dtype; the softmax is computed in float32.
    """
    if hidden.shape[0] <= CHUNK_ROWS:
        return _score_chunk(hidden, labels, head, logit_scale, softcap, label_smoothing)
    parts = [
        checkpoint(_score_chunk, h, y, head, logit_scale, softcap, label_smoothing, use_reentrant=False)
        for h, y in zip(hidden.split(CHUNK_ROWS), labels.split(CHUNK_ROWS))
    ]
    return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]


def _score_chunk(hidden, labels, head, logit_scale, softcap, label_smoothing=0.0):
    logits = head(hidden).float()
    if logit_scale != 1.0:
        logits = logits * logit_scale
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    log_softmax = logits.log_softmax(dim=-1)
    log_probs = log_softmax.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if label_smoothing:
        log_probs = (1 - label_smoothing) * log_probs + label_smoothing * log_softmax.mean(-1)
    with torch.no_grad():
        entropy = -(log_softmax.exp() * log_softmax).sum(-1)
        is_top1 = logits.argmax(-1) == labels
    return log_probs, entropy, is_top1


def _logit_scale(config) -> float:
    """The same output scaling TRL's fused head applies (Cohere, Granite, Falcon-H1, ...)."""
    for name in ("logit_scale", "output_multiplier", "lm_head_multiplier"):
        value = getattr(config, name, None)
        if value is not None:
            return float(value)
    scaling = getattr(config, "logits_scaling", None)
    if scaling is not None:
        return float(scaling) if config.model_type == "hyperclovax" else 1.0 / float(scaling)
    return 1.0
