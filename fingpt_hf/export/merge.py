"""Merge a LoRA adapter into its base and write the result where inference tools can load it alone.

Every check that needs no weights (options, the output directory, the adapter's files and base,
the architecture for GGUF) runs first, so bad input fails in a second and writes nothing. The
model is loaded through the evaluation loader (``load_model(..., merge_adapter=True)``: peft's
``merge_and_unload``), so an export is the model that ``fingpt-hf eval`` scored. Everything is
written into a temporary directory beside the output and renamed into place: a crash leaves no
half-written output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fingpt_hf.errors import FinGPTError
from fingpt_hf.hub.card import EXPORT_INFO_FILE
from fingpt_hf.io import atomic_write_json, check_output_dir, current_umask, replace_directory
from fingpt_hf.provenance import now_iso, package_versions

DTYPES: tuple[str, ...] = ("auto", "fp16", "bf16", "fp32")
FORMATS: tuple[str, ...] = ("safetensors", "gguf")
MAX_SHARD_SIZE = "5GB"  # the Hub's recommended shard size
_SAVED_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class ExportResult:
    """What was written, for the CLI to print and tests to check."""

    output: Path
    files: list[str]
    dtype: str
    model: Any = field(repr=False, default=None)  # the merged model (kept only when asked for)
    tokenizer: Any = field(repr=False, default=None)


def _check_options(dtype: str, format: str, gguf_type: str) -> None:
    from fingpt_hf.export.gguf import GGUF_TYPES

    if dtype not in DTYPES:
        raise FinGPTError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    if format not in FORMATS:
        raise FinGPTError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if gguf_type not in GGUF_TYPES:
        raise FinGPTError(f"--gguf-type {gguf_type!r}: choose one of {', '.join(GGUF_TYPES)}")


def export_dtype(dtype: str, config: Any) -> str:
    """``auto`` keeps the base checkpoint's own precision (a float32 base merges exactly); else the flag."""
    if dtype != "auto":
        return dtype
    saved = getattr(config, "dtype", None) if config is not None else None
    saved = str(saved).replace("torch.", "") if saved is not None else None
    return _SAVED_DTYPES.get(saved, "auto")


def _restore_output_head(model, dtype) -> None:
    """Undo the loader's float32 LM head (an evaluation aid): a saved checkpoint keeps one dtype, and a
    tied head stays tied to the input embeddings instead of becoming a second copy."""
    import torch

    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.weight.dtype == dtype:
        return
    new = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None,
                          device=head.weight.device, dtype=dtype)
    with torch.no_grad():
        if getattr(model.config, "tie_word_embeddings", False):
            new.weight = model.get_input_embeddings().weight
        else:
            new.weight.copy_(head.weight)
        if head.bias is not None:
            new.bias.copy_(head.bias)
    model.set_output_embeddings(new)


def render_card(source, fmt: str, dtype: str, files: list[str], gguf_type: str | None) -> str:
    """README.md: base, adapter (and its weights hash), how to load, and the adapter's benchmark results."""
    from huggingface_hub import ModelCard, ModelCardData

    from fingpt_hf.evaluation.results import load_results
    from fingpt_hf.hub.card import BENCHMARK_ORDER, SHORT_NAMES, TAGS, _hub_model_id, check_results, find_results

    adapter = source.adapter_info or {}
    base_id = _hub_model_id(adapter.get("base_model_name_or_path")) or _hub_model_id(source.model)
    data = ModelCardData(base_model=base_id, library_name=None if fmt == "gguf" else "transformers",
                         pipeline_tag="text-generation", language="en",
                         tags=[t for t in TAGS if t not in ("peft", "lora")] + ["merged-lora"]
                         + (["gguf"] if fmt == "gguf" else []))
    lines = [
        "# Merged fingpt-hf model for financial sentiment analysis", "",
        "Written by `fingpt-hf export`: a LoRA adapter merged into its base model "
        f"({'GGUF ' + str(gguf_type) if fmt == 'gguf' else 'safetensors, ' + dtype}); no peft needed to run it.", "",
        f"- **Base model:** `{source.model}`" + (f" (weights {source.model_info['hash']})"
                                                 if source.model_info.get("hash") else ""),
        f"- **Adapter:** `{adapter.get('name_or_path')}` (weights {adapter.get('hash')})",
        f"- **Files:** {', '.join(f'`{f}`' for f in files)}", "",
        "## Use", "",
    ]
    if fmt == "gguf":
        lines += ["```bash", f"llama-cli -m {files[0]} -p 'Instruction: What is the sentiment of this news? Please "
                  "choose an answer from {negative/neutral/positive}.\\nInput: Profits rose 20%.\\nAnswer: '", "```"]
    else:
        lines += ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  "model = AutoModelForCausalLM.from_pretrained(PATH)",
                  "tokenizer = AutoTokenizer.from_pretrained(PATH)", "```"]
    results_path = find_results(source.adapter_dir) if source.adapter_dir is not None else None
    if results_path is not None:
        results = check_results(load_results(results_path), results_path)["results"]
        names = [n for n in BENCHMARK_ORDER if n in results] + sorted(n for n in results if n not in BENCHMARK_ORDER)
        lines += ["", "## Benchmark results (of the adapter, before merging)", "",
                  f"From `{results_path.name}` in the adapter directory; values x100.", "",
                  "| data set | rows | mode | accuracy | F1 macro | F1 weighted |", "|---|---:|---|---:|---:|---:|"]
        for name in names:
            m = results[name]["metrics"]
            lines.append(f"| {SHORT_NAMES.get(name, name)} | {results[name].get('num_rows', '-')} | "
                         f"{results[name].get('mode', '-')} | {100 * m['accuracy']:.2f} | {100 * m['f1_macro']:.2f} | "
                         f"{100 * m['f1_weighted']:.2f} |")
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def export_model(
    model: str,
    adapter: str,
    output: str | os.PathLike,
    dtype: str = "auto",
    format: str = "safetensors",
    gguf_type: str = "f16",
    overwrite: bool = False,
    device: str | None = "cpu",
    keep_model: bool = False,
    echo: Callable[[str], None] = lambda _: None,
) -> ExportResult:
    """Merge ``adapter`` into ``model`` and write ``output`` (safetensors checkpoint or one GGUF file)."""
    from fingpt_hf.evaluation.model_loading import inspect_sources, load_model, read_model_config

    _check_options(dtype, format, gguf_type)
    output = Path(output).expanduser()
    if not adapter:
        raise FinGPTError("--adapter is required: export merges an adapter into its base model")
    source = inspect_sources(model, adapter)  # adapter files and base checked, nothing loaded
    sources = [p for p in (Path(source.model_path), source.adapter_dir) if p is not None and p.exists()]
    check_output_dir(output, "--output", allow_existing=overwrite, sources=tuple(sources))
    config = read_model_config(source)
    if config is None:
        raise FinGPTError(f"--model {model}: cannot load its config")
    if format == "gguf":
        from fingpt_hf.export.gguf import check_gguf_architecture

        check_gguf_architecture(config, model)
    resolved = export_dtype(dtype, config)

    echo(f"loading {model} + {adapter} ({resolved})")
    loaded = load_model(source, dtype=resolved, device=device, merge_adapter=True)
    merged, tokenizer = loaded.model, loaded.tokenizer
    _restore_output_head(merged, loaded.dtype)
    merged.config.dtype = loaded.dtype

    output.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.export."))
    try:
        if format == "gguf":
            from fingpt_hf.export.gguf import gguf_file_name, write_gguf

            echo(f"writing GGUF {gguf_type}")
            write_gguf(merged, tokenizer, build / gguf_file_name(gguf_type), gguf_type, name=output.name)
        else:
            echo("writing safetensors")
            merged.save_pretrained(build, max_shard_size=MAX_SHARD_SIZE)  # config + generation config too
            tokenizer.save_pretrained(build)
        files = sorted(p.name for p in build.iterdir())
        (build / "README.md").write_text(render_card(source, format, str(loaded.dtype).replace("torch.", ""),
                                                     files, gguf_type if format == "gguf" else None),
                                         encoding="utf-8")
        atomic_write_json(build / EXPORT_INFO_FILE, {
            "schema_version": 1, "format": format, "dtype": str(loaded.dtype).replace("torch.", ""),
            "gguf_type": gguf_type if format == "gguf" else None, "model": dict(source.model_info),
            "adapter": dict(source.adapter_info or {}), "files": [*files, "README.md"],
            "created_at": now_iso(), "versions": package_versions(),
        })
        build.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700 directories
        replace_directory(build, output)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return ExportResult(output, sorted(p.name for p in output.iterdir()), str(loaded.dtype).replace("torch.", ""),
                        merged if keep_model else None, tokenizer if keep_model else None)
