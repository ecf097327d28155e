"""`fingpt-hf export`: a tuned adapter merged into its base, as a plain transformers checkpoint or a GGUF file.

``merge`` checks the inputs, merges the LoRA weights with peft and writes the output directory
atomically; ``gguf`` turns the merged Llama model into a GGUF file that llama.cpp (and Ollama) run.
"""

from fingpt_hf.export.merge import DTYPES, FORMATS, ExportResult, export_model
from fingpt_hf.export.gguf import GGUF_TYPES, write_gguf

__all__ = ["DTYPES", "FORMATS", "GGUF_TYPES", "ExportResult", "export_model", "write_gguf"]
