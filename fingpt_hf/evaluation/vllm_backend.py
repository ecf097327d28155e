"""Evaluation and prediction through a vLLM OpenAI-compatible server (``--backend vllm``).

The server runs from its own environment (``scripts/setup_vllm.sh``: vLLM pins its own torch and
transformers), so this module only speaks HTTP (standard library) and never imports vllm. Prompts
are tokenized HERE, by ``fingpt_hf.families.tokenization`` exactly as for the transformers path,
and sent as token ids, so the server sees the very ids training used (no server-side chat
template, BOS or re-tokenization can change them).

* score mode, the sum of each label's token log-probabilities after the prompt (the quantity of
  ``fingpt_hf.evaluation.scoring``), two ways:
  - every label one token (SmolLM2, Llama's ``positive``...): one prompt per row, the context,
    asking for the next token's log-probabilities of exactly the label ids (vLLM's
    ``logprob_token_ids``). These requests can use the server's prefix cache
    (``--enable-prefix-caching``) for the instruction every prompt shares, but only in whole KV
    blocks: vLLM's CPU backend uses 128-token blocks, longer than FinGPT's instruction, so there
    the hit rate is 0% (measured); GPU backends default to 16-token blocks.
  - otherwise: one prompt per (row, label), ``context + tail``, with vLLM's ``prompt_logprobs: 0``
    (every prompt token's log-probability given the ones before it), summed over the tail's
    positions. vLLM does not read the prefix cache for such requests, so this is slower.
  Each request carries ``batch_size`` rows so the server batches them.
* generate mode: greedy completion of the context ids, ``stop: ["\\n"]``; the text is the raw
  answer, parsed like the transformers path's.

The served weights must be the checkpoint named by ``--model``/``--adapter`` (their fingerprints
are what the results record); that is the user's job: the server only reports names.
The request builders and response parsers are pure functions, tested without a server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fingpt_hf.errors import FinGPTError

DEFAULT_URL = "http://127.0.0.1:8000/v1"  # `vllm serve`'s default host and port
# Requests in flight at once: enough to keep the server's batch full while we build the next one.
CONCURRENT_REQUESTS = 4
REQUEST_TIMEOUT_S = 600.0


# --- HTTP -----------------------------------------------------------------------------------------

def _error_message(body: bytes) -> str:
    """The message of an OpenAI/vLLM error body (``{"error": {"message": ...}}``), else the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return text[:500]


@dataclass
class VLLMClient:
    """A vLLM server's OpenAI API root (``http://HOST:PORT/v1``); every failure names it."""

    url: str
    timeout: float = REQUEST_TIMEOUT_S

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    def request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET (``body`` None) or POST JSON to ``url + path``; the decoded JSON reply."""
        address = f"{self.url}{path}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(address, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            message = _error_message(err.read() or b"")
            hint = ""
            if err.code == 404 and path == "/models":
                hint = "; is --vllm-url the server's API root, ending in /v1?"
            raise FinGPTError(f"vLLM server {address}: HTTP {err.code}: {message}{hint}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise FinGPTError(f"cannot reach the vLLM server at {self.url} ({reason}); start it with "
                              "`vllm serve MODEL` (see README, 'vLLM backend') or fix --vllm-url") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise FinGPTError(f"vLLM server {address}: the reply is not JSON: {raw[:200]!r}") from None


# --- which served model ---------------------------------------------------------------------------

def choose_served_model(models: Any, wanted: str | None, lora: bool, url: str) -> str:
    """The served model name to send, checked against ``/v1/models``'s reply.

    With an adapter it must be a LoRA module (a card with a ``parent``): the base model's name
    would silently evaluate the untuned base. Without one it must be a base model. ``wanted``
    None picks the only candidate.
    """
    cards = models.get("data") if isinstance(models, dict) else None
    if not isinstance(cards, list) or not all(isinstance(c, dict) and "id" in c for c in cards):
        raise FinGPTError(f"vLLM server {url}/models: unexpected reply {str(models)[:200]}")
    loras = [c["id"] for c in cards if c.get("parent")]
    bases = [c["id"] for c in cards if not c.get("parent")]
    served = ", ".join(c["id"] for c in cards) or "none"
    if wanted is not None and wanted not in loras + bases:
        raise FinGPTError(f"vLLM server {url} does not serve --vllm-model {wanted!r} (it serves: {served})")
    if lora:
        if not loras:
            raise FinGPTError(f"vLLM server {url} serves no LoRA adapter (models: {served}), but --adapter was "
                              "given; start it with --enable-lora --lora-modules fingpt=ADAPTER_DIR")
        if wanted is None:
            if len(loras) > 1:
                raise FinGPTError(f"vLLM server {url} serves several LoRA adapters ({', '.join(loras)}); "
                                  "choose one with --vllm-model")
            return loras[0]
        if wanted not in loras:
            raise FinGPTError(f"--vllm-model {wanted!r} is a base model on {url}, but --adapter was given; "
                              f"choose its LoRA module ({', '.join(loras)})")
        return wanted
    if wanted is None:
        if len(bases) != 1:
            raise FinGPTError(f"vLLM server {url} serves {served}; choose one with --vllm-model")
        return bases[0]
    if wanted not in bases:
        raise FinGPTError(f"--vllm-model {wanted!r} is a LoRA adapter on {url}, but no --adapter was given; "
                          f"pass --adapter, or choose the base model ({', '.join(bases)})")
    return wanted


# --- requests and replies (pure) ------------------------------------------------------------------

def score_request(model: str, prompts: Sequence[Sequence[int]]) -> dict[str, Any]:
    """A completions request that returns each prompt's own token log-probabilities.

    ``max_tokens: 1`` (vLLM refuses 0 unless ``echo``); the one generated token is ignored.
    """
    return {"model": model, "prompt": [list(p) for p in prompts], "max_tokens": 1, "temperature": 0,
            "prompt_logprobs": 0, "add_special_tokens": False}


def next_token_request(model: str, contexts: Sequence[Sequence[int]], token_ids: Sequence[int]) -> dict[str, Any]:
    """A completions request for the log-probabilities of ``token_ids`` as the token after each
    context (vLLM's ``logprob_token_ids``; keys come back as ``token_id:N``, never decoded text)."""
    return {"model": model, "prompt": [list(c) for c in contexts], "max_tokens": 1, "temperature": 0,
            "logprobs": 1, "logprob_token_ids": sorted(set(token_ids)), "return_tokens_as_token_ids": True,
            "add_special_tokens": False}


def generate_request(model: str, contexts: Sequence[Sequence[int]], max_new_tokens: int) -> dict[str, Any]:
    """Greedy completions of the context ids, stopped at a newline (or EOS), as generate mode does.

    The penalties are pinned because vLLM otherwise takes defaults from the model's
    generation_config, which greedy transformers decoding ignores.
    """
    return {"model": model, "prompt": [list(c) for c in contexts], "max_tokens": max_new_tokens,
            "temperature": 0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0, "presence_penalty": 0.0,
            "frequency_penalty": 0.0, "stop": ["\n"], "skip_special_tokens": True, "add_special_tokens": False}


def _choices(response: Any, count: int, url: str) -> list[dict[str, Any]]:
    """The reply's choices in prompt order (by ``index``), exactly one per prompt."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or len(choices) != count or not all(isinstance(c, dict) for c in choices):
        got = len(choices) if isinstance(choices, list) else "no"
        raise FinGPTError(f"vLLM server {url}/completions: expected {count} choices, got {got}")
    return sorted(choices, key=lambda c: c.get("index", 0))


def tail_logprob(prompt_logprobs: Any, prompt: Sequence[int], tail_len: int, url: str) -> float:
    """Summed log-probability of the last ``tail_len`` tokens of ``prompt``.

    ``prompt_logprobs[i]`` maps token ids (JSON: strings) to ``{"logprob", "rank", "decoded_token"}``
    for position i given positions < i (None at position 0); the prompt's own token is always there.
    """
    if not isinstance(prompt_logprobs, list):
        raise FinGPTError(f"vLLM server {url}: the reply has no prompt_logprobs; is it a vLLM server "
                          "(the parameter is vLLM's own, not OpenAI's)?")
    if len(prompt_logprobs) != len(prompt):
        raise FinGPTError(f"vLLM server {url}: {len(prompt_logprobs)} prompt log-probabilities for a "
                          f"{len(prompt)}-token prompt")
    total = 0.0
    for position in range(len(prompt) - tail_len, len(prompt)):
        entry = prompt_logprobs[position]
        token = prompt[position]
        value = entry.get(str(token), entry.get(token)) if isinstance(entry, dict) else None
        if not isinstance(value, dict) or not isinstance(value.get("logprob"), (int, float)):
            raise FinGPTError(f"vLLM server {url}: no log-probability for token {token} at prompt position "
                              f"{position}")
        total += float(value["logprob"])
    return total


def parse_scores(response: Any, prompts: Sequence[Sequence[int]], tail_lens: Sequence[int], url: str
                 ) -> list[float]:
    """Each prompt's tail log-likelihood, in request order."""
    choices = _choices(response, len(prompts), url)
    return [tail_logprob(c.get("prompt_logprobs"), p, n, url) for c, p, n in zip(choices, prompts, tail_lens)]


def parse_next_token_scores(response: Any, count: int, token_ids: Sequence[int], url: str) -> list[list[float]]:
    """Per context, the log-probability of each of ``token_ids`` (in that order) as the next token."""
    out = []
    for choice in _choices(response, count, url):
        logprobs = choice.get("logprobs")
        top = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
        first = top[0] if isinstance(top, list) and top and isinstance(top[0], dict) else None
        if first is None:
            raise FinGPTError(f"vLLM server {url}: the reply has no logprobs.top_logprobs; is it a vLLM server "
                              "(logprob_token_ids is vLLM's own parameter)?")
        row = []
        for token in token_ids:
            value = first.get(f"token_id:{token}")
            if not isinstance(value, (int, float)):
                raise FinGPTError(f"vLLM server {url}: no log-probability for label token {token} in the reply")
            row.append(float(value))
        out.append(row)
    return out


def parse_generations(response: Any, count: int, url: str) -> list[str]:
    """The generated texts, in request order (the stop string itself is not included by vLLM)."""
    texts = [c.get("text") for c in _choices(response, count, url)]
    if not all(isinstance(t, str) for t in texts):
        raise FinGPTError(f"vLLM server {url}/completions: a choice has no text")
    return texts  # type: ignore[return-value]


# --- the "model" the runners hold -----------------------------------------------------------------

@dataclass
class RemoteModel:
    """Stands where the runners keep a transformers model: the served name, the client, and the
    base config (read locally; the family rules come from it, as for a loaded model)."""

    client: VLLMClient
    name: str
    config: Any

    @property
    def url(self) -> str:
        return self.client.url


def connect(source, url: str | None, model: str | None, trust_remote_code: bool = False):
    """A ``LoadedModel`` whose model is the server's: the tokenizer is loaded as ``load_model``
    loads it (the adapter's saved tokenizer first), no weights; the served name is checked."""
    from transformers import AutoTokenizer

    from fingpt_hf.evaluation.model_loading import LoadedModel, read_model_config
    from fingpt_hf.families.registry import check_remote_code, get_family
    from fingpt_hf.families.tokenization import prepare_tokenizer

    if (source.adapter_config or {}).get("use_dora"):
        # vLLM's LoRA loader refuses it ("vLLM does not yet support DoRA", vllm/lora/peft_helper.py): say so first
        raise FinGPTError(f"--adapter {source.adapter_info['name_or_path']} is a DoRA adapter (use_dora in its "
                          "adapter_config.json), which vLLM cannot serve as a LoRA module; merge it with "
                          "`fingpt-hf export --model BASE --adapter ADAPTER --output DIR`, serve DIR as the base model "
                          "and run without --adapter")
    client = VLLMClient(url or DEFAULT_URL)
    name = choose_served_model(client.request("/models"), model, source.adapter_info is not None, client.url)
    config = read_model_config(source, trust_remote_code)
    if config is None:
        raise FinGPTError(f"--model {source.model}: cannot load its config (needed for its tokenizer rules)")
    family = get_family(config)
    check_remote_code(family, trust_remote_code)
    tokenizer_source, revision = source.model_path, source.model_info["revision"]
    if source.adapter_dir is not None and (source.adapter_dir / "tokenizer_config.json").is_file():
        tokenizer_source, revision = str(source.adapter_dir), None
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=revision, trust_remote_code=trust_remote_code)
    prepare_tokenizer(tokenizer, family)
    return LoadedModel(RemoteModel(client, name, config), tokenizer, source.model_info, source.adapter_info,
                       device=f"vllm:{client.url}", dtype="vllm")


def _run_batches(requests: list[Callable[[], list]], progress: Callable | None, sizes: list[int]) -> list[list]:
    """Run the request closures a few at a time, results in order; ``progress`` gets rows done."""
    results: list[list] = [[] for _ in requests]
    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        futures = [pool.submit(fn) for fn in requests]
        for i, future in enumerate(futures):
            results[i] = future.result()
            if progress is not None:
                progress(sizes[i])
    return results


def score_labels(
    model: RemoteModel,
    tokenizer,
    prompts: Sequence[str],
    labels: Sequence[str],
    batch_size: int = 16,
    add_special_tokens: bool = True,
    progress: Callable | None = None,
    family=None,
    max_length: int | None = None,
) -> list[list[float]]:
    """``fingpt_hf.evaluation.scoring.score_labels`` on the server: same ids, same sum of tail
    log-probabilities; ``batch_size`` rows (times the labels) per request."""
    from fingpt_hf.evaluation.scoring import tokenize_labels

    if not prompts:
        return []
    items = tokenize_labels(tokenizer, prompts, labels, add_special_tokens=add_special_tokens, family=family,
                            max_length=max_length)
    url = model.url
    chunks = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    sizes = [len(c) for c in chunks]
    if all(len(tail) == 1 for tail in items[0].tails):  # one prompt per row, cacheable
        firsts = [tail[0] for tail in items[0].tails]

        def next_job(chunk: Sequence) -> Callable[[], list]:
            contexts = [it.context for it in chunk]
            return lambda: parse_next_token_scores(
                model.client.request("/completions", next_token_request(model.name, contexts, firsts)),
                len(contexts), firsts, url)

        return [row for part in _run_batches([next_job(c) for c in chunks], progress, sizes) for row in part]

    def job(chunk: Sequence) -> Callable[[], list]:
        ids = [it.context + tail for it in chunk for tail in it.tails]
        lens = [len(tail) for it in chunk for tail in it.tails]
        return lambda: parse_scores(model.client.request("/completions", score_request(model.name, ids)), ids,
                                    lens, url)

    flat = [s for part in _run_batches([job(c) for c in chunks], progress, sizes) for s in part]
    k = len(labels)
    return [flat[r * k:(r + 1) * k] for r in range(len(items))]


def generate_answers(
    model: RemoteModel,
    tokenizer,
    prompts: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 8,
    add_special_tokens: bool = True,
    progress: Callable | None = None,
    family=None,
    max_length: int | None = None,
) -> list[str]:
    """``fingpt_hf.evaluation.generation.generate_answers`` on the server: greedy, the same ids."""
    from fingpt_hf.families.catalog import GENERIC
    from fingpt_hf.families.tokenization import answer_room, prompt_ids

    if not prompts:
        return []
    family = family or GENERIC
    room = answer_room(tokenizer, family) if max_length is not None else 0  # the cut training made
    encoded = [prompt_ids(p, tokenizer, family, add_special_tokens, max_length, answer_length=room) for p in prompts]
    url = model.url

    def job(chunk: list[list[int]]) -> Callable[[], list]:
        return lambda: parse_generations(
            model.client.request("/completions", generate_request(model.name, chunk, max_new_tokens)), len(chunk), url)

    chunks = [encoded[i:i + batch_size] for i in range(0, len(encoded), batch_size)]
    return [t for part in _run_batches([job(c) for c in chunks], progress, [len(c) for c in chunks]) for t in part]
