"""``EvalConfig``: the one dataclass behind ``fingpt-hf eval`` and ``recipes/evaluate.py``.

Both build their options from this dataclass with ``HfArgumentParser``/``TrlParser``, so the
command line and the YAML recipe cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fingpt_hf.data.benchmarks import BENCHMARK_NAMES
from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.prompts import PROMPT_STYLES
from fingpt_hf.errors import FinGPTError

MODES: tuple[str, ...] = ("score", "generate")
DTYPES: tuple[str, ...] = ("auto", "fp16", "bf16", "fp32")
BACKENDS: tuple[str, ...] = ("transformers", "vllm")


def check_backend(backend: str, vllm_url: str | None, vllm_model: str | None, device: str | None = None,
                  device_map: str | None = None) -> None:
    """The backend options of ``fingpt-hf eval`` and ``predict``: vLLM options only with
    ``--backend vllm`` (they would be ignored otherwise), and no local placement with it (the
    server places the model)."""
    if backend not in BACKENDS:
        raise FinGPTError(f"--backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "vllm":
        given = [name for name, value in (("--vllm-url", vllm_url), ("--vllm-model", vllm_model)) if value]
        if given:
            raise FinGPTError(f"{' and '.join(given)} need --backend vllm")
        return
    if vllm_url is not None and not vllm_url.startswith(("http://", "https://")):
        raise FinGPTError(f"--vllm-url {vllm_url!r}; give the server's API root, e.g. http://127.0.0.1:8000/v1")
    placed = [name for name, value in (("--device", device), ("--device-map", device_map)) if value]
    if placed:
        raise FinGPTError(f"{' and '.join(placed)} cannot be used with --backend vllm: the server places the model")


@dataclass(kw_only=True)
class BackendOptions:
    """Where the model runs, for ``fingpt-hf eval`` and ``predict`` alike (see ``check_backend``)."""

    backend: Literal["transformers", "vllm"] = field(
        default="transformers",
        metadata={"help": "transformers: load the model here; vllm: query a running vLLM server (--vllm-url) that "
                          "serves the same checkpoint (the model is not loaded; its tokenizer is)."},
    )
    vllm_url: str | None = field(
        default=None, metadata={"help": "The vLLM server's API root (default: http://127.0.0.1:8000/v1)."}
    )
    vllm_model: str | None = field(
        default=None,
        metadata={"help": "Served model name to query (default: the server's only LoRA module with --adapter, "
                          "else its base model)."},
    )


@dataclass
class EvalConfig(BackendOptions):
    """Options of an evaluation run (see ``fingpt-hf eval --help``)."""

    model: str = field(metadata={"help": "Base model: Hub id, local path or embedded:smollm2-135m-instruct."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter: local directory or Hub id."})
    datasets: str | None = field(
        default=None,
        metadata={"help": f"Comma-separated benchmarks ({','.join(BENCHMARK_NAMES)}); default: all four, "
                          "or none when --custom is given."},
    )
    split: str = field(default="test", metadata={"help": "Benchmark split: test (FinGPT's), validation (a seeded 10% of "
                                                    "train, for choosing settings) or train."})
    custom: str | None = field(default=None, metadata={"help": "A user data set file (.csv, .jsonl or .json)."})
    custom_name: str | None = field(default=None, metadata={"help": "Name of the custom data set (default: file stem)."})
    text_column: str = field(default="text", metadata={"help": "Text column of --custom."})
    label_column: str = field(default="label", metadata={"help": "Label column of --custom."})
    label_map: str | None = field(
        default=None, metadata={"help": 'JSON object mapping --custom labels to negative/neutral/positive, '
                                        'e.g. \'{"0": "negative", "1": "neutral", "2": "positive"}\' '
                                        '(default: the labels already are these words).'}
    )
    instruction: str | None = field(default=None, metadata={"help": "Instruction for --custom rows (default: FinGPT's news one)."})
    mode: Literal["score", "generate"] = field(
        default="score",
        metadata={"help": "score: pick the label with the highest log-likelihood (never invalid); "
                          "generate: greedy FinGPT-style generation, answer parsed by --parser."},
    )
    parser: Literal["strict", "fingpt"] = field(
        default="strict", metadata={"help": "Answer parser for --mode generate (fingpt = FinGPT's change_target)."}
    )
    prompt_style: Literal["fingpt", "chat"] | None = field(
        default=None,
        metadata={"help": "fingpt: FinGPT's plain template; chat: the tokenizer's chat template (default: what "
                          "the adapter was trained with, from its fingpt_run.json, else the model family's)."},
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Cut prompts from the left to this many tokens with the answer, as training did "
                          "(default: the adapter's training max_length; no cut without one)."},
    )
    batch_size: int = field(default=16, metadata={"help": "Examples per forward pass."})
    max_new_tokens: int = field(default=8, metadata={"help": "Generated tokens at most (--mode generate)."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N rows of each data set."})
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = field(
        default="auto",
        metadata={"help": "auto: bf16 where the device supports it, fp16 on a CUDA GPU without bf16, else fp32."},
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, mps, ... (default: cuda if available)."})
    device_map: str | None = field(
        default=None,
        metadata={"help": "'auto': spread the model over every visible GPU (accelerate's device_map), for models "
                          "too large for one; the base is loaded there directly, in --dtype."},
    )
    output_dir: str = field(default="eval_results", metadata={"help": "Where result files go (see docs)."})
    data_dir: str | None = field(default=None, metadata={"help": "FinGPT data mirror (default: $FINGPT_DATA_DIR or the Hub)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub (off by default)."})
    revision: str | None = field(default=None, metadata={"help": "Base model revision (branch, tag or commit)."})
    adapter_revision: str | None = field(default=None, metadata={"help": "Adapter revision on the Hub."})
    allow_base_mismatch: bool = field(
        default=False, metadata={"help": "Evaluate even if the adapter was trained on another base model."}
    )
    merge_adapter: bool = field(
        default=True, metadata={"help": "Merge the LoRA weights into the base model before evaluating (faster)."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Re-evaluate data sets whose finished result has a different config."}
    )
    seed: int = field(default=42, metadata={"help": "Random seed (recorded; evaluation is deterministic)."})

    def __post_init__(self) -> None:
        if isinstance(self.datasets, (list, tuple)):  # YAML may give a list
            self.datasets = ",".join(str(d) for d in self.datasets)
        if isinstance(self.label_map, dict):  # YAML may give a mapping
            self.label_map = json.dumps(self.label_map)
        self.validate()

    # Derived values -------------------------------------------------------------------------
    @property
    def dataset_names(self) -> list[str]:
        """The benchmarks to evaluate, in the given order (custom data set not included)."""
        if self.datasets is None:
            return [] if self.custom else list(BENCHMARK_NAMES)
        names = [n.strip().lower() for n in self.datasets.split(",") if n.strip()]
        return list(dict.fromkeys(names))

    @property
    def label_map_dict(self) -> dict[str, str] | None:
        if self.label_map is None:
            return None
        try:
            mapping = json.loads(self.label_map)
        except json.JSONDecodeError as err:
            raise FinGPTError(f"--label-map is not valid JSON ({err.msg}): {self.label_map!r}") from None
        if not isinstance(mapping, dict):
            raise FinGPTError(f"--label-map must be a JSON object, got {self.label_map!r}")
        bad = {k: v for k, v in mapping.items() if v not in LABELS}
        if bad:
            raise FinGPTError(f"--label-map maps to {bad}; values must be one of {', '.join(LABELS)}")
        return {str(k): v for k, v in mapping.items()}

    def validate(self) -> None:
        """Check option values, so bad input fails before any data or model is loaded."""
        if self.mode not in MODES:
            raise FinGPTError(f"--mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.parser not in ("strict", "fingpt"):
            raise FinGPTError(f"--parser {self.parser!r}; choose strict or fingpt")
        if self.prompt_style is not None and self.prompt_style not in PROMPT_STYLES:
            raise FinGPTError(f"--prompt-style {self.prompt_style!r}; choose {' or '.join(PROMPT_STYLES)}")
        if self.dtype not in DTYPES:
            raise FinGPTError(f"--dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        unknown = [n for n in self.dataset_names if n not in BENCHMARK_NAMES]
        if unknown:
            raise FinGPTError(f"--datasets: unknown benchmark(s) {', '.join(unknown)}; "
                              f"choose from {', '.join(BENCHMARK_NAMES)}")
        if not self.dataset_names and not self.custom:
            raise FinGPTError("--datasets is empty and no --custom data set was given: nothing to evaluate")
        if self.label_map is not None:
            self.label_map_dict  # noqa: B018 - validates the JSON
        if self.max_length is not None and self.max_length < 2:
            raise FinGPTError(f"--max-length must be >= 2, got {self.max_length}")
        if self.device_map not in (None, "auto"):
            raise FinGPTError(f"--device-map {self.device_map!r}; the only choice is auto")
        if self.device_map and self.device:
            raise FinGPTError("--device-map auto places the model itself; leave --device unset")
        check_backend(self.backend, self.vllm_url, self.vllm_model, self.device, self.device_map)
        if self.batch_size < 1:
            raise FinGPTError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise FinGPTError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.limit is not None and self.limit < 1:
            raise FinGPTError(f"--limit must be >= 1, got {self.limit}")
        if self.split not in ("train", "validation", "test"):
            raise FinGPTError(f"--split {self.split!r}; choose train, validation (our seeded slice of train, "
                              "for choosing settings) or test")
        if self.custom:
            self.custom_dataset_name  # noqa: B018 - validates the name before anything runs

    @property
    def custom_dataset_name(self) -> str | None:
        """The custom data set's name (``--custom-name``, else the file's stem), checked: it names
        the result directory and a table column, so it must be a plain name, never a benchmark's
        (a custom set filed as ``fpb`` would be ranked as FinGPT's FPB)."""
        if not self.custom:
            return None
        from pathlib import Path

        from fingpt_hf.data.names import check_dataset_name

        given = self.custom_name is not None
        name = self.custom_name if given else Path(self.custom).stem
        what = "--custom-name" if given else f"--custom {self.custom}: the default name (the file's stem)"
        try:
            check_dataset_name(name, what)
        except FinGPTError as err:
            raise FinGPTError(str(err) + ("" if given else "; pass --custom-name")) from None
        if name.lower() in BENCHMARK_NAMES:
            raise FinGPTError(f"{what} {name!r} is a benchmark's name; a custom data set needs its own "
                              "(pass --custom-name)")
        return name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
