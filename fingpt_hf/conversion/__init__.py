"""Original Hub layouts (Baichuan2, ChatGLM2, Qwen v1) -> native transformers checkpoints.

``convert_checkpoint`` reads a checkpoint without executing its remote code and writes one that
loads with ``AutoModelForCausalLM``/``AutoTokenizer`` alone. Imports torch lazily.
"""

from fingpt_hf.conversion.spec import SOURCE_KEY, ConversionError, Converter

__all__ = ["SOURCE_KEY", "ConversionError", "Converter", "convert_checkpoint"]


def __getattr__(name: str):
    if name == "convert_checkpoint":
        from fingpt_hf.conversion import convert

        return getattr(convert, name)
    raise AttributeError(f"module 'fingpt_hf.conversion' has no attribute {name!r}")
