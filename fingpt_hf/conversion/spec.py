"""What one original Hub layout needs to become a native transformers checkpoint.

A ``Converter`` is a small class per family (Baichuan2, ChatGLM2, Qwen v1). The engine in
``fingpt_hf.conversion.convert`` does everything else (finding and checking the source files,
streaming the shards, writing the result atomically), so a family module only says how config,
tensor names and tokenizer map. Every method works from the source's ``config.json`` as a plain
dict: the original configuration classes are remote code and are never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from fingpt_hf.errors import FinGPTError

#: Key added to the converted ``config.json``: which original family and checkpoint it came from.
#: ``fingpt_hf.families.get_family`` reads ``family`` from it to pick the converted family's entry.
SOURCE_KEY = "fingpt_hf_source"


class ConversionError(FinGPTError):
    """A source checkpoint that cannot be converted; the message names the file."""


class Converter:
    """Maps one original layout to a native one. Subclasses set the class attributes and override
    the four ``native_*``/``convert_*``/``build_*`` methods."""

    #: Name recorded in ``config.json[SOURCE_KEY]["family"]`` (``"baichuan2"``, ``"chatglm2"``, ``"qwen"``).
    family: ClassVar[str]
    #: Human-readable name of the original models, for messages and the README.
    title: ClassVar[str]
    #: ``model_type`` values of the original ``config.json`` this converter accepts.
    source_model_types: ClassVar[tuple[str, ...]]
    #: Files besides config.json and the weights that the source must have (tokenizer files).
    tokenizer_files: ClassVar[tuple[str, ...]]
    #: The native class the result loads as (``LlamaForCausalLM``...), for messages and tests.
    native_architecture: ClassVar[str]

    def native_config(self, source: dict[str, Any]) -> Any:
        """The native ``PretrainedConfig`` for the original ``config.json`` ``source``."""
        raise NotImplementedError

    def convert_tensor(self, name: str, tensor: Any, source: dict[str, Any]) -> list[tuple[str, Any]]:
        """Native ``(name, tensor)`` pairs for one original tensor; ``[]`` drops a known buffer.

        Must work on meta tensors too (the engine dry-runs every name and shape before writing).
        An unknown name raises ``KeyError`` (the engine turns it into an error naming the file).
        """
        raise NotImplementedError

    def build_tokenizer(self, source_dir: Path, source: dict[str, Any]) -> Any:
        """A fast (``tokenizers``-backed) tokenizer equal to the original one, from its files."""
        raise NotImplementedError

    def build_generation_config(self, source_dir: Path, source: dict[str, Any], tokenizer: Any) -> Any:
        """The ``GenerationConfig`` to save (the source's own values where it has them)."""
        raise NotImplementedError

    def warnings(self, source: dict[str, Any]) -> list[str]:
        """Things the native model does differently from the original (said in the README too)."""
        return []

    def changes(self) -> list[str]:
        """One line per transformation, for the converted checkpoint's README."""
        return []


# --- reading the source's small files (shared by the family converters) ------------------------------

def read_json_object(path: Path, missing_ok: bool = False) -> dict[str, Any]:
    """A JSON object file of the source; ``{}`` for a missing file when ``missing_ok``."""
    import json

    if missing_ok and not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path}: missing") from None
    except (OSError, ValueError) as err:
        raise ConversionError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(loaded, dict):
        raise ConversionError(f"{path}: expected a JSON object")
    return loaded


def read_sentencepiece(path: Path) -> tuple[Any, dict[str, int]]:
    """A sentencepiece ``tokenizer.model``: its protobuf and the ``{piece: id}`` vocabulary."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise ConversionError(f"{path}: not a sentencepiece model ({type(err).__name__}: {err})") from None
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    if not vocab or len(vocab) != len(proto.pieces):
        raise ConversionError(f"{path}: empty or has duplicate pieces")
    return proto, vocab


def generation_config_from(source_dir: Path, defaults: dict[str, Any], keep: tuple[str, ...] = ()) -> Any:
    """``defaults`` updated with the source's ``generation_config.json``: the keys ``GenerationConfig``
    knows, plus ``keep`` (the originals add keys only their remote ``chat()`` reads; Baichuan2's
    ``user_token_id``/``assistant_token_id`` are worth keeping for a chat template)."""
    from transformers import GenerationConfig

    path = source_dir / "generation_config.json"
    known = set(GenerationConfig().to_dict()) - {"transformers_version"} | set(keep)
    values = {**defaults, **{k: v for k, v in read_json_object(path, missing_ok=True).items() if k in known}}
    config = GenerationConfig(**values)
    try:
        config.validate(strict=True)
    except ValueError as err:
        raise ConversionError(f"{path}: not a valid generation config for transformers ({err})") from None
    return config
