"""EVA: LoRA's ``A`` from the training rows' own activations (peft's ``init_lora_weights="eva"``).

EVA (Paischer et al., "One Initialization to Rule them All", 2024) sets each adapted layer's ``A``
to the top right-singular vectors of that layer's inputs on training rows (an incremental PCA
over batches until the directions stop moving), ``B`` stays 0, so training starts exactly at the
base model, as with the default init, but with ``A`` along the directions the data actually uses.
peft does the work (``get_eva_state_dict`` / ``initialize_lora_eva_weights``); this module decides
what it runs on:

* the **base model before the trainer wraps it**: the fast trainer compiles each decoder layer,
  and running EVA's hooked forwards through compiled layers would compile them once more for a
  graph that training never runs. The state dict is loaded into the trainer's ``PeftModel``
  afterwards (``B`` is 0 until then, and DoRA's magnitudes, ``|W + s B A|``, do not read ``A``);
* the first batches of the training rows in the mixture's (seeded) order, as the trainer pads them;
* every token but padding (``use_label_mask=False``): the answer-only labels leave about 2 tokens
  a row, too few for a 16-component PCA per batch;
* ``rho=1``: every layer keeps ``lora_r`` (peft's default 2 moves ranks between layers, which
  changes the adapter's shapes and its ``rank_pattern``);
* the dtype training computes in (bf16 autocast where the fast trainer uses it), so the
  directions are those of the inputs training sees; peft's PCA itself runs in float32.

Every process computes the same directions from the same rows (no gathering across processes).
A resumed run skips EVA: its checkpoint holds the trained ``A``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from fingpt_hf.errors import FinGPTError

# peft's advice for EVA through get_peft_model(low_cpu_mem_usage=True); here EVA runs on the base model before the
# trainer wraps it, so that path (and the batch size it would free) does not apply.
warnings.filterwarnings("ignore", message="lora with eva initialization used with low_cpu_mem_usage=False")

#: Where peft's ``PeftModelForCausalLM`` puts the wrapped model's modules.
PEFT_PREFIX = "base_model.model."


def eva_config() -> Any:
    """peft's ``EvaConfig`` with the choices above (uniform ranks, every non-pad token)."""
    from peft import EvaConfig

    return EvaConfig(rho=1.0, use_label_mask=False)


@dataclass
class EvaResult:
    """What EVA computed: ``A`` per layer (base-model module names) and what it cost."""

    state_dict: dict[str, torch.Tensor]
    seconds: float
    batches: int

    def summary(self) -> dict[str, Any]:
        return {"lora_init": "eva", "eva_seconds": round(self.seconds, 1), "eva_batches": self.batches}


def compute_eva(model: torch.nn.Module, lora_config: Any, rows: Any, collator: Any, batch_size: int,
                autocast_dtype: torch.dtype | None = None) -> EvaResult:
    """EVA's ``A`` for ``model`` (not yet wrapped by peft) from the first batches of ``rows``.

    ``rows`` are tokenized training rows (``input_ids`` and labels), ``collator`` pads them as the
    trainer will; only ``input_ids`` and ``attention_mask`` reach the model.
    """
    from peft import get_eva_state_dict
    from transformers.integrations import is_deepspeed_zero3_enabled

    if lora_config.init_lora_weights != "eva":
        raise FinGPTError("compute_eva needs a LoraConfig with init_lora_weights='eva' (lora_init: eva)")
    if is_deepspeed_zero3_enabled():
        raise FinGPTError("lora_init: eva cannot run under DeepSpeed ZeRO-3 (each process holds a shard of the "
                          "weights EVA runs forward passes through); use ZeRO-2 or lora_init: default")
    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collator)
    if len(loader) == 0:
        raise FinGPTError("lora_init: eva needs training rows to run on; the mixture has none")
    device = next(model.parameters()).device
    batches = 0

    def forward(m: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Any:
        nonlocal batches
        batches += 1
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return m(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)

    start = time.perf_counter()
    state = get_eva_state_dict(model, loader, peft_config=lora_config, forward_fn=forward,
                               gather_distributed_inputs=False, show_progress_bar=False)
    return EvaResult(state, time.perf_counter() - start, batches)


def load_eva(peft_model: torch.nn.Module, result: EvaResult) -> None:
    """Copy EVA's ``A`` into ``peft_model`` (the trainer's). The layers must be the same on both sides:
    peft would quietly give a LoRA layer EVA did not compute the default init instead."""
    from peft import initialize_lora_eva_weights
    from peft.tuners.lora import LoraLayer

    state = {PEFT_PREFIX + name: weight for name, weight in result.state_dict.items()}
    lora_layers = {name for name, module in peft_model.named_modules() if isinstance(module, LoraLayer)}
    if set(state) != lora_layers:
        extra, missing = sorted(set(state) - lora_layers), sorted(lora_layers - set(state))
        raise FinGPTError(f"EVA's layers differ from the trainer's LoRA layers: {len(extra)} computed without a "
                          f"LoRA layer (e.g. {extra[:2]}), {len(missing)} LoRA layers not computed "
                          f"(e.g. {missing[:2]})")
    initialize_lora_eva_weights(peft_model, eva_state_dict=state)
