"""`FastSFTTrainer`: TRL's SFTTrainer, made fast for answer-only LoRA training on CPU.

Three changes, all measured on SmolLM2-135M with LoRA (see benchmarks/train_throughput.py):

* the LM head runs only where the loss needs it (``answer_logits.add_answer_only_lm_head``):
  a sentiment example has ~2 answer tokens out of ~70, so TRL's head over every position is
  mostly wasted work;
* bfloat16 autocast on CPUs with native bf16 (AVX512-BF16 / AMX) even when ``args.bf16`` is
  off: on such CPUs bf16 matmuls run about twice as fast as float32, the LoRA parameters stay
  float32 and the softmax of the loss is computed in float32;
* under bf16 autocast on CPU, the frozen linear weights are held in bf16 while ``train()`` runs,
  so autocast stops re-casting every weight on every forward (autocast only caches casts of
  weights that require grad). That is exactly the rounding autocast applies anyway, so the
  numbers do not change; the float32 weights are put back when ``train()`` returns.

Optionally (``shared_prefix=True``) the instruction that opens every row runs once per batch
(``fingpt_hf.training.shared_prefix``: same loss and gradients, ~1.5x faster steps on FinGPT's
prompts). Optionally (``compile_layers=True``) each decoder layer is compiled with ``torch.compile``
(regional compilation: the layers share one compiled graph, so the cold start is one layer's
compile). On CPU this fuses RMSNorm, rotary embeddings and the MLP's activation, which eager
bf16 runs as separate memory-bound kernels; measured ~17% faster per step on SmolLM2-135M after
~30 s of compiling. peft's DoRA layers are traced in the same graph (``trace_dora_in_one_graph``), and rebuild B
times A for their norms without an identity product (``skip_dora_identity_product``: the same numbers).

On CPU, ``train()`` also has glibc keep freed memory on its heap (``keep_freed_memory_in_process``): the
same pages serve every step instead of being unmapped and zeroed again by the kernel (~13% of a step in
benchmark runs of 6 and 60 steps).

Everything else (constructor, data handling, collator, metrics, checkpoints, gradient
accumulation normalisation) is SFTTrainer's own, so it is a drop-in replacement.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Literal

import torch
from peft.tuners.lora import dora
from transformers import TrainerCallback
from trl import SFTTrainer

from fingpt_hf.hardware import cpu_supports_bf16
from fingpt_hf.training.answer_logits import add_answer_only_lm_head, find_backbone_and_head
from fingpt_hf.training.neftune import NOISE_COLUMN, neftune_hook_with_row_mask, rows_to_noise
from fingpt_hf.training.shared_prefix import supports_shared_prefix

logger = logging.getLogger(__name__)

FastBF16 = bool | Literal["auto"]


# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory_in_process() -> bool:
    """Have glibc keep freed blocks on its heap instead of handing large ones back to the kernel.

    A CPU training step frees and allocates activations of the same sizes every step. By default glibc serves a
    block above its mmap threshold with a fresh mapping and unmaps it when freed, and the kernel zeroes the pages
    again on first touch every step; on SmolLM2-135M with the CPU recipe's trainer that was about 13% of a step in
    the throughput benchmark's runs over 6 steps and over 60 (README, Speed; one whole 698-step run showed no
    difference beyond the VM's run-to-run variation). With mmap off and the heap's top kept (up to 2 GiB), the same
    pages are reused; the arithmetic is unchanged. Returns whether it was applied: only with glibc, the C library of
    Linux distributions other than musl-based ones.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def resolve_fast_bf16(setting: FastBF16, device: torch.device | str) -> bool:
    """Whether to add bf16 autocast: ``"auto"`` means on a CPU with native bf16."""
    if setting == "auto":
        return torch.device(device).type == "cpu" and cpu_supports_bf16()
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"fast_bf16 must be True, False or 'auto', got {setting!r}")


def cast_frozen_linear_weights(model: torch.nn.Module, dtype: torch.dtype) -> list[tuple[torch.nn.Module, torch.Tensor]]:
    """Cast the weights of frozen ``nn.Linear`` layers to ``dtype``; return (module, old weight) to undo it.

    The output head is skipped: it is usually tied to the input embeddings, whose lookups are not
    autocast, and the answer-only head makes its cost negligible anyway.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_head = getattr(base, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    tied = {id(p) for p in head.parameters()} if head is not None else set()
    saved = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            type(module) is torch.nn.Linear
            and module is not head
            and id(weight) not in tied
            and not weight.requires_grad
            and weight.dtype == torch.float32
        ):
            saved.append((module, weight.data))
            module.weight.data = weight.data.to(dtype)
    return saved


def repeated_layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The model's stack of decoder layers: its largest ``ModuleList`` whose children share one class."""
    best = None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            if len({type(child) for child in module}) == 1 and (best is None or len(module) > len(best)):
                best = module
    return best


_PEFT_DEQUANTIZE_MODULE_WEIGHT = dora.dequantize_module_weight


def _plain_linear_weight_first(module: torch.nn.Module) -> torch.Tensor:
    """peft's ``dequantize_module_weight``, without its torchao type test for a plain ``nn.Linear``."""
    if type(module) is torch.nn.Linear and type(module.weight) is torch.nn.Parameter:
        return module.weight
    return _PEFT_DEQUANTIZE_MODULE_WEIGHT(module)


def trace_dora_in_one_graph() -> None:
    """Let ``torch.compile`` trace peft's DoRA layers without breaking the graph (idempotent).

    Every DoRA forward fetches its base weight through peft's ``dequantize_module_weight``, which tests
    ``type(weight).__module__.startswith("torchao.")``: dynamo cannot trace that, so each DoRA module split a
    compiled decoder layer (7 graph breaks in a Llama MLP) and nothing around it fused: the CPU recipe's steps took
    1.18x as long (README, Speed). A plain ``nn.Linear`` holding a plain ``Parameter`` is not
    quantized, and for it peft's helper returns the weight as is; so does this one, without the test. Every
    other module (bitsandbytes, torchao, HQQ weights) still goes to peft's helper.
    """
    dora.dequantize_module_weight = _plain_linear_weight_first


_PEFT_GET_LORA_WEIGHT = dora.DoraLinearLayer.get_lora_weight


@dora.cache_decorator("lora-weight")
def _lora_weight_without_identity(self, lora_A, lora_B, adapter_name=None):
    """peft's ``lora_B(lora_A(eye)).T`` (DoRA's B times A, for its weight norms), without the identity product.

    ``lora_A(eye)`` is A's transpose, exactly: each of its entries is one weight times 1 plus zeros, in float32 or
    in bf16 under autocast (where the weight is rounded to bf16 as ``lora_A`` would round it; only a float32 product in
    TF32, where a GPU allows it, would round A, which this does not). So this passes A's
    transpose, contiguous like the product's output, to ``lora_B`` itself: the same input, the same product, the same
    result, without building an identity of the layer's input width and multiplying by it at every step (on the CPU
    recipe's shape about 3% of a step: README, Speed). peft multiplies by the identity so that FSDP, whose sharded
    weights cannot be read outside their module's forward, works; such weights (and any A but a plain bias-free
    ``nn.Linear`` whose weight has its full shape: DeepSpeed ZeRO-3 leaves an empty one) still go through peft's."""
    weight = lora_A.weight
    if (type(lora_A) is torch.nn.Linear and lora_A.bias is None and type(weight) is torch.nn.Parameter
            and weight.shape == (lora_A.out_features, lora_A.in_features)):
        return lora_B(weight.t().contiguous()).T
    return _PEFT_GET_LORA_WEIGHT.__wrapped__(self, lora_A, lora_B, adapter_name=adapter_name)


def skip_dora_identity_product() -> None:
    """Have peft's DoRA layers rebuild B times A without an identity product (idempotent; see
    ``_lora_weight_without_identity``)."""
    dora.DoraLinearLayer.get_lora_weight = _lora_weight_without_identity


def compile_repeated_layers(model: torch.nn.Module) -> int:
    """Compile each decoder layer in place (``nn.Module.compile``: parameter names do not change,
    so checkpoints and adapters are as without it). Returns how many layers were compiled."""
    layers = repeated_layers(model)
    if layers is None:
        logger.warning("compile_layers: %s has no stack of repeated layers; nothing compiled",
                       type(model).__name__)
        return 0
    if any(isinstance(module, dora.DoraLinearLayer) for module in layers.modules()):
        trace_dora_in_one_graph()
    for layer in layers:
        layer.compile(dynamic=True)  # batches of every length share one graph
    return len(layers)


class _RestoreWeightsAtTrainEnd(TrainerCallback):
    """Restores the float32 frozen weights before any other callback's ``on_train_end``."""

    def __init__(self, trainer: "FastSFTTrainer"):
        self.trainer = trainer

    def on_train_end(self, args, state, control, **kwargs):
        self.trainer.restore_frozen_weights()


class FastSFTTrainer(SFTTrainer):
    """``trl.SFTTrainer`` with an answer-only LM head and CPU bf16 autocast.

    Extra keyword arguments:
        fast_bf16: ``"auto"`` (default: bf16 autocast on CPUs with native bf16), ``True`` or ``False``.
            ``args.bf16``/``args.fp16`` are honoured as in SFTTrainer whatever this says.
        answer_only_head: set False to keep TRL's LM head (for comparisons).
        compile_layers: compile each decoder layer in place with ``torch.compile(dynamic=True)``.
        shared_prefix: run the leading tokens that rows of a batch share (FinGPT's instruction)
            once per batch (``fingpt_hf.training.shared_prefix``); needs the answer-only head.
        noise_flagged_rows: NEFTune (``args.neftune_noise_alpha``) only on rows whose ``neftune_noise`` column is 1
            (``fingpt_hf.training.neftune``; the recipe's ``neftune_sources``).

    ``args.label_smoothing_factor`` (with the default ``loss_type="nll"``) is applied by the answer-only
    head to the answer tokens, the loss ``transformers.trainer_pt_utils.LabelSmoother`` computes over the
    full logits, without the second full-logits forward that SFTTrainer runs for it.
    """

    def __init__(self, *args, fast_bf16: FastBF16 = "auto", answer_only_head: bool = True,
                 compile_layers: bool = False, shared_prefix: bool = False, noise_flagged_rows: bool = False,
                 **kwargs):
        with warnings.catch_warnings():
            if answer_only_head:  # the head below smooths without SFTTrainer's extra forward
                warnings.filterwarnings("ignore", message="`label_smoothing_factor` is deprecated", category=FutureWarning)
            super().__init__(*args, **kwargs)
        # neftune_sources: this trainer attaches the noise (per row, neftune.py), not the Trainer's own hook
        self.row_noise_alpha = self.neftune_noise_alpha if noise_flagged_rows else None
        if noise_flagged_rows:
            if self.row_noise_alpha is None:
                raise ValueError("noise_flagged_rows needs args.neftune_noise_alpha (the noise it restricts)")
            self.neftune_noise_alpha = None
        if any(isinstance(module, dora.DoraLinearLayer) for module in self.model.modules()):
            skip_dora_identity_product()
        self.compiled_layers = compile_repeated_layers(self.model) if compile_layers else 0
        self._bf16_saved: list[tuple[torch.nn.Module, torch.Tensor]] = []
        self.callback_handler.callbacks.insert(0, _RestoreWeightsAtTrainEnd(self))
        self.fast_bf16 = resolve_fast_bf16(fast_bf16, self.args.device)
        if fast_bf16 == "auto" and not self.fast_bf16 and self.args.device.type == "cpu" and not self.args.bf16:
            logger.warning("FastSFTTrainer: this CPU has no native bf16 (AVX512-BF16 or AMX), so it trains in "
                           "float32, whose steps are slower (README, Speed).")
        self.answer_only_head = self.shared_prefix = False
        if answer_only_head:
            target = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            smoothing = self.args.label_smoothing_factor if self.args.loss_type == "nll" else 0.0
            self.answer_only_head = add_answer_only_lm_head(target, shared_prefix=shared_prefix,
                                                            label_smoothing=smoothing)
            if self.answer_only_head and smoothing:
                self.label_smoother = None  # SFTTrainer's fused path now returns the smoothed objective
            self.shared_prefix = self.answer_only_head and shared_prefix and supports_shared_prefix(
                find_backbone_and_head(target)[0])
            if shared_prefix and not self.shared_prefix:
                logger.warning("FastSFTTrainer: shared_prefix needs the answer-only head, position ids and sdpa "
                               "or eager attention; %s trains without it.", type(target).__name__)
            if not self.answer_only_head:
                logger.warning(
                    "FastSFTTrainer: %s has no decoder/linear LM head split; using TRL's standard loss.",
                    type(target).__name__,
                )

    def train(self, *args, **kwargs):
        if self.args.device.type == "cpu" and keep_freed_memory_in_process():
            logger.info("FastSFTTrainer: glibc keeps freed memory on its heap for this process (faster CPU steps).")
        with self._frozen_linear_weights_in_bf16(), self._noise_on_flagged_rows():
            return super().train(*args, **kwargs)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.row_noise_alpha is not None and NOISE_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, NOISE_COLUMN]  # kept for the collator

    @contextlib.contextmanager
    def _noise_on_flagged_rows(self):
        """NEFTune on the rows whose ``neftune_noise`` flag is 1 (``compute_loss`` passes the flags)."""
        if self.row_noise_alpha is None:
            yield
            return
        embeddings = self.accelerator.unwrap_model(self.model).get_input_embeddings()
        embeddings.neftune_noise_alpha = self.row_noise_alpha
        handle = embeddings.register_forward_hook(neftune_hook_with_row_mask)
        try:
            yield
        finally:
            handle.remove()
            del embeddings.neftune_noise_alpha

    def compute_loss(self, model, inputs, *args, **kwargs):
        flags = inputs.pop(NOISE_COLUMN, None)
        if flags is not None and self.row_noise_alpha is None:
            raise ValueError(f"batches carry '{NOISE_COLUMN}' but this trainer was not built with noise_flagged_rows")
        if flags is None and self.row_noise_alpha is not None and model.training:
            raise ValueError(f"noise_flagged_rows: a training batch has no '{NOISE_COLUMN}' column (build the rows "
                             "with build_training_rows(noised_sources=...)); every row would be noised")
        embeddings = self.accelerator.unwrap_model(model).get_input_embeddings()
        with rows_to_noise(embeddings, flags):
            return super().compute_loss(model, inputs, *args, **kwargs)

    @contextlib.contextmanager
    def _frozen_linear_weights_in_bf16(self):
        uses_bf16 = self.fast_bf16 or self.args.bf16
        if uses_bf16 and self.args.device.type == "cpu" and not self.args.fp16:
            self._bf16_saved = cast_frozen_linear_weights(self.model, torch.bfloat16)
        try:
            yield
        finally:
            self.restore_frozen_weights()

    def restore_frozen_weights(self) -> None:
        """Put the float32 frozen weights back (idempotent).

        Runs first among the callbacks at the end of training (see ``_RestoreWeightsAtTrainEnd``),
        so callbacks that run the model then, outside autocast, see the model as it was given.
        """
        for module, weight in getattr(self, "_bf16_saved", []):
            module.weight.data = weight
        self._bf16_saved = []

    def compute_loss_context_manager(self) -> contextlib.ExitStack:
        stack = super().compute_loss_context_manager()
        if self.fast_bf16 and not (self.args.bf16 or self.args.fp16):
            stack.enter_context(torch.autocast(device_type=self.args.device.type, dtype=torch.bfloat16))
        return stack
