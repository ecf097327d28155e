"""FinGPT's instructions and prompt template, and the same content through a chat template."""

from __future__ import annotations

from typing import Any, Literal, Mapping

from fingpt_hf.errors import FinGPTError

FINGPT_TEMPLATE = "Instruction: {instruction}\nInput: {input}\nAnswer: "

# FinGPT_Benchmark/benchmarks/{fpb,fiqa,tfns,nwgi}.py use exactly these strings.
NEWS_INSTRUCTION = "What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}."
TWEET_INSTRUCTION = "What is the sentiment of this tweet? Please choose an answer from {negative/neutral/positive}."

PromptStyle = Literal["fingpt", "chat"]
PROMPT_STYLES: tuple[str, ...] = ("fingpt", "chat")


def adds_special_tokens(style: str) -> bool:
    """Whether the tokenizer should add its special tokens (BOS, ...) to a prompt of ``style``:
    not for ``chat``, whose template already carries them. Training and evaluation both ask here,
    so a model is scored on the same token sequence it was trained on."""
    return style != "chat"


def format_prompt(
    row: Mapping[str, Any] | str,
    text: str | None = None,
    style: str = "fingpt",
    tokenizer: Any = None,
) -> str:
    """Build the prompt for one example, from a row (``instruction``/``input``) or two strings.

    ``fingpt`` is FinGPT's plain template; ``chat`` sends the same instruction and input as one
    user turn through the tokenizer's chat template, with the assistant prompt opened.
    """
    if isinstance(row, str):
        instruction, text_ = row, text
    else:
        instruction, text_ = row["instruction"], row["input"]
    if text_ is None:
        raise FinGPTError("format_prompt needs the input text")
    if style == "fingpt":
        return FINGPT_TEMPLATE.format(instruction=instruction, input=text_)
    if style == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise FinGPTError("prompt style 'chat' needs a tokenizer that has a chat template")
        messages = [{"role": "user", "content": f"{instruction}\nInput: {text_}"}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise FinGPTError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
