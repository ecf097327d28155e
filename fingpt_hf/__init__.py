"""fingpt-hf: LoRA instruction tuning and FinGPT-faithful benchmarks for financial sentiment."""

__version__ = "0.1.0"
