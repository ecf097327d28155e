"""``PredictConfig``: the options of ``fingpt-hf predict`` (its parser is generated from this dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fingpt_hf.data.prompts import PROMPT_STYLES
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.config import DTYPES, MODES, BackendOptions, check_backend

BAD_ROW_POLICIES: tuple[str, ...] = ("error", "skip")


@dataclass
class PredictConfig(BackendOptions):
    """Options of a prediction run (see ``fingpt-hf predict --help``)."""

    model: str = field(metadata={"help": "Base model: Hub id, local path or embedded:smollm2-135m-instruct."})
    input: str = field(metadata={"help": "Rows to label: .csv, .jsonl or .parquet, or - for JSON Lines on stdin."})
    output: str = field(metadata={"help": "Where the labelled rows go: .csv, .jsonl or .parquet (by suffix)."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter: local directory or Hub id."})
    text_column: str = field(default="text", metadata={"help": "The column holding the text to label."})
    mode: Literal["score", "generate"] = field(
        default="score",
        metadata={"help": "score: the label with the highest log-likelihood, with probabilities; generate: "
                          "greedy generation, the answer parsed by --parser (raw_answer kept)."},
    )
    parser: Literal["strict", "fingpt"] = field(
        default="strict", metadata={"help": "Answer parser for --mode generate (fingpt = FinGPT's change_target)."}
    )
    instruction: str | None = field(default=None, metadata={"help": "Instruction of every prompt (default: FinGPT's news one)."})
    prompt_style: Literal["fingpt", "chat"] | None = field(
        default=None,
        metadata={"help": "fingpt or chat (default: what the adapter was trained with, from its fingpt_run.json, "
                          "else the model family's)."},
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Cut prompts from the left to this many tokens with the answer, as training did "
                          "(default: the adapter's training max_length; no cut without one)."},
    )
    max_new_tokens: int = field(default=8, metadata={"help": "Generated tokens at most (--mode generate)."})
    batch_size: int = field(default=16, metadata={"help": "Rows per forward pass."})
    chunk_size: int = field(
        default=512, metadata={"help": "Rows per durable chunk: an interrupted run resumes at the first unfinished one."}
    )
    on_bad_row: Literal["error", "skip"] = field(
        default="error",
        metadata={"help": "error: stop at a bad row (empty/missing text, undecodable bytes, a JSONL line that is "
                          "not an object), before the model loads for files; skip: leave it out and report it."},
    )
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = field(
        default="auto",
        metadata={"help": "auto: bf16 where the device supports it, fp16 on a CUDA GPU without bf16, else fp32."},
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, mps, ... (default: cuda if available)."})
    revision: str | None = field(default=None, metadata={"help": "Base model revision (branch, tag or commit)."})
    adapter_revision: str | None = field(default=None, metadata={"help": "Adapter revision on the Hub."})
    allow_base_mismatch: bool = field(
        default=False, metadata={"help": "Use the adapter even if it was trained on another base model."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub (off by default)."})
    merge_adapter: bool = field(
        default=True, metadata={"help": "Merge the LoRA weights into the base model first (faster)."}
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Replace an existing output, and start over when OUTPUT.partial/ holds another run's chunks."},
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check option values, so a typo fails before any data or model is read."""
        if self.mode not in MODES:
            raise FinGPTError(f"--mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.parser not in ("strict", "fingpt"):
            raise FinGPTError(f"--parser {self.parser!r}; choose strict or fingpt")
        if self.on_bad_row not in BAD_ROW_POLICIES:
            raise FinGPTError(f"--on-bad-row {self.on_bad_row!r}; choose {' or '.join(BAD_ROW_POLICIES)}")
        if self.prompt_style is not None and self.prompt_style not in PROMPT_STYLES:
            raise FinGPTError(f"--prompt-style {self.prompt_style!r}; choose {' or '.join(PROMPT_STYLES)}")
        if self.dtype not in DTYPES:
            raise FinGPTError(f"--dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        for name in ("batch_size", "chunk_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise FinGPTError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < 2:
            raise FinGPTError(f"--max-length must be >= 2, got {self.max_length}")
        check_backend(self.backend, self.vllm_url, self.vllm_model, self.device)
        if not self.text_column:
            raise FinGPTError("--text-column must name a column")
        if self.instruction is not None and not self.instruction.strip():
            raise FinGPTError("--instruction is empty")
