"""The vLLM backend (``--backend vllm``): requests, replies and errors against a fake server, plus
one opt-in agreement test against a real vLLM server (``-m vllm``, ``FINGPT_VLLM_PYTHON``).

The fake server answers in the shapes of vLLM 0.32's protocol classes
(``vllm/entrypoints/openai/completion/protocol.py``: ``CompletionResponse``/
``CompletionResponseChoice`` with ``prompt_logprobs: list[dict[int, Logprob] | None]``, token ids
as JSON string keys; ``vllm/entrypoints/serve/engine/protocol.py``: ``ModelList``/``ModelCard``
with ``parent`` set for LoRA modules, and ``ErrorResponse {"error": {message, type, param, code}}``).
Its log-probabilities are a known function of (position, token), so a wrong position, token or
sum shows up as a wrong number.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation import vllm_backend as vb

BASE_NAME = "smollm2"
LORA_NAME = "fingpt"


def fake_logprob(position: int, token: int) -> float:
    return -((token % 97) + 1) / 50.0 - position / 1000.0


def fake_text(prompt: list[int]) -> str:
    return ["positive", "negative", "neutral"][sum(prompt) % 3]


class FakeVLLM:
    """A threaded HTTP server speaking vLLM's completions and models routes; it records requests."""

    def __init__(self, models: list[dict[str, Any]] | None = None, prompt_logprobs: bool = True):
        self.models = models if models is not None else [{"id": BASE_NAME, "object": "model", "parent": None,
                                                          "root": "/models/smollm2", "max_model_len": 2048}]
        self.prompt_logprobs = prompt_logprobs
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def error(self, code: int, message: str, kind: str, param: str | None = None) -> None:
                self.reply(code, {"error": {"message": message, "type": kind, "param": param, "code": code}})

            def do_GET(self):
                if self.path == "/v1/models":
                    self.reply(200, {"object": "list", "data": fake.models})
                else:
                    self.error(404, "Not Found", "NotFoundError")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if self.path != "/v1/completions":
                    return self.error(404, "Not Found", "NotFoundError")
                if body.get("model") not in [m["id"] for m in fake.models]:
                    return self.error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError",
                                      "model")
                prompts = body["prompt"]
                choices = []
                for i, prompt in enumerate(prompts):
                    choice = {"index": i, "text": fake_text(prompt), "logprobs": None, "finish_reason": "length",
                              "stop_reason": None, "token_ids": None, "prompt_token_ids": None,
                              "routed_experts": None, "prompt_logprobs": None}
                    if fake.prompt_logprobs and body.get("logprob_token_ids"):  # next-token log-probs
                        top = {f"token_id:{t}": fake_logprob(len(prompt), t) for t in body["logprob_token_ids"]}
                        choice["logprobs"] = {"text_offset": [0], "token_logprobs": [-0.5], "tokens": ["token_id:5"],
                                              "top_logprobs": [{"token_id:5": -0.5, **top}]}
                    if fake.prompt_logprobs and body.get("prompt_logprobs") is not None:
                        choice["prompt_logprobs"] = [None] + [
                            {str(tok): {"logprob": fake_logprob(pos, tok), "rank": 1, "decoded_token": "x"}}
                            for pos, tok in enumerate(prompt) if pos > 0]
                    choices.append(choice)
                # Out of order on purpose: the client must sort by index.
                self.reply(200, {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"],
                                 "choices": choices[::-1],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeVLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tokenizer(default_model_path):
    from transformers import AutoTokenizer

    from fingpt_hf.families.catalog import GENERIC
    from fingpt_hf.families.tokenization import prepare_tokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(default_model_path), GENERIC)


# --- pure functions --------------------------------------------------------------------------------

def test_score_request_sends_ids_and_asks_for_prompt_logprobs():
    body = vb.score_request("m", [(1, 2, 3), [4, 5]])
    assert body == {"model": "m", "prompt": [[1, 2, 3], [4, 5]], "max_tokens": 1, "temperature": 0,
                    "prompt_logprobs": 0, "add_special_tokens": False}


def test_generate_request_is_greedy_and_stops_at_newline():
    body = vb.generate_request("m", [[7, 8]], 5)
    assert body["prompt"] == [[7, 8]] and body["max_tokens"] == 5 and body["stop"] == ["\n"]
    assert body["temperature"] == 0 and body["repetition_penalty"] == 1.0 and "prompt_logprobs" not in body


def test_tail_logprob_sums_the_tail_positions_only():
    prompt = [10, 11, 12, 13]
    plp = [None] + [{str(t): {"logprob": fake_logprob(p, t), "rank": 3}, "999": {"logprob": -0.01}}
                    for p, t in enumerate(prompt) if p > 0]
    assert vb.tail_logprob(plp, prompt, 2, "U") == pytest.approx(fake_logprob(2, 12) + fake_logprob(3, 13))
    assert vb.tail_logprob(plp, prompt, 1, "U") == pytest.approx(fake_logprob(3, 13))


@pytest.mark.parametrize("plp, match", [
    (None, "no prompt_logprobs"),
    ([None, {"11": {"logprob": -1.0}}], "2 prompt log-probabilities for a 3-token prompt"),
    ([None, {"11": {"logprob": -1.0}}, {"5": {"logprob": -1.0}}], "no log-probability for token 12"),
])
def test_tail_logprob_rejects_incomplete_replies(plp, match):
    with pytest.raises(FinGPTError, match=match) as err:
        vb.tail_logprob(plp, [10, 11, 12], 1, "http://h:1/v1")
    assert "http://h:1/v1" in str(err.value)


def test_parse_scores_orders_choices_by_index_and_checks_their_number():
    prompts = [[1, 2], [3, 4]]
    choices = [{"index": i, "prompt_logprobs": [None, {str(p[1]): {"logprob": -float(i + 1)}}]}
               for i, p in enumerate(prompts)]
    assert vb.parse_scores({"choices": choices[::-1]}, prompts, [1, 1], "U") == [-1.0, -2.0]
    with pytest.raises(FinGPTError, match="expected 2 choices, got 1"):
        vb.parse_scores({"choices": choices[:1]}, prompts, [1, 1], "U")


LORA_CARDS = [{"id": BASE_NAME, "parent": None}, {"id": LORA_NAME, "parent": BASE_NAME, "root": "/a"}]


@pytest.mark.parametrize("cards, wanted, lora, expected", [
    ([{"id": BASE_NAME}], None, False, BASE_NAME),
    (LORA_CARDS, None, True, LORA_NAME),
    (LORA_CARDS, None, False, BASE_NAME),
    (LORA_CARDS, LORA_NAME, True, LORA_NAME),
])
def test_choose_served_model(cards, wanted, lora, expected):
    assert vb.choose_served_model({"data": cards}, wanted, lora, "U") == expected


@pytest.mark.parametrize("cards, wanted, lora, match", [
    ([{"id": BASE_NAME}], None, True, "serves no LoRA adapter .*--enable-lora --lora-modules"),
    ([{"id": BASE_NAME}], "nope", False, "does not serve --vllm-model 'nope'"),
    (LORA_CARDS, BASE_NAME, True, "is a base model .*--adapter was given"),
    (LORA_CARDS, LORA_NAME, False, "is a LoRA adapter .*no --adapter"),
    (LORA_CARDS + [{"id": "other", "parent": BASE_NAME}], None, True, "several LoRA adapters"),
])
def test_choose_served_model_errors(cards, wanted, lora, match):
    with pytest.raises(FinGPTError, match=match):
        vb.choose_served_model({"data": cards}, wanted, lora, "http://h:1/v1")


# --- over HTTP -------------------------------------------------------------------------------------

def test_unreachable_server_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(FinGPTError, match="cannot reach the vLLM server at " + url.replace(".", r"\.")):
        vb.VLLMClient(url, timeout=5).request("/models")


def test_wrong_model_name_reports_the_servers_message():
    with FakeVLLM() as fake:
        client = vb.VLLMClient(fake.url)
        with pytest.raises(FinGPTError, match=r"/v1/completions: HTTP 404: The model `nope` does not exist"):
            client.request("/completions", vb.score_request("nope", [[1, 2]]))


def test_wrong_api_root_hints_at_v1():
    with FakeVLLM() as fake:
        with pytest.raises(FinGPTError, match="HTTP 404.*ending in /v1"):
            vb.VLLMClient(fake.url[: -len("/v1")]).request("/models")


def test_next_token_request_and_reply():
    body = vb.next_token_request("m", [[1, 2]], [9, 7, 9])
    assert body["logprob_token_ids"] == [7, 9] and body["logprobs"] == 1 and body["return_tokens_as_token_ids"]
    reply = {"choices": [{"index": 0, "logprobs": {"top_logprobs": [{"token_id:7": -1.5, "token_id:9": -0.25}]}}]}
    assert vb.parse_next_token_scores(reply, 1, [9, 7], "U") == [[-0.25, -1.5]]
    with pytest.raises(FinGPTError, match="no log-probability for label token 8"):
        vb.parse_next_token_scores(reply, 1, [8], "U")
    with pytest.raises(FinGPTError, match="U: the reply has no logprobs.top_logprobs"):
        vb.parse_next_token_scores({"choices": [{"index": 0, "logprobs": None}]}, 1, [7], "U")


PROMPTS = ["Instruction: Say the sentiment.\nInput: " + t + "\nAnswer: "
           for t in ("Profit rose.", "Sales fell sharply.", "Ok.")]


def test_single_token_labels_are_scored_from_the_context_alone(tokenizer):
    from fingpt_hf.data.labels import LABELS
    from fingpt_hf.evaluation.scoring import tokenize_labels

    items = tokenize_labels(tokenizer, PROMPTS, LABELS)
    assert all(len(t) == 1 for t in items[0].tails)  # SmolLM2's labels: one token each
    with FakeVLLM() as fake:
        remote = vb.RemoteModel(vb.VLLMClient(fake.url), BASE_NAME, None)
        done: list[int] = []
        scores = vb.score_labels(remote, tokenizer, PROMPTS, LABELS, batch_size=2, progress=done.append)
    assert sorted(p for r in fake.requests for p in r["prompt"]) == sorted(it.context for it in items)
    assert all("prompt_logprobs" not in r for r in fake.requests) and sum(done) == len(PROMPTS)
    for it, row in zip(items, scores):
        assert row == pytest.approx([fake_logprob(len(it.context), t[0]) for t in it.tails])


def test_score_labels_sends_our_ids_and_sums_the_tails(tokenizer):
    from fingpt_hf.evaluation.scoring import tokenize_labels

    labels = ["very positive", "negative", "not at all neutral"]  # several tokens: the prompt_logprobs path
    with FakeVLLM() as fake:
        remote = vb.RemoteModel(vb.VLLMClient(fake.url), BASE_NAME, None)
        done: list[int] = []
        scores = vb.score_labels(remote, tokenizer, PROMPTS, labels, batch_size=2, progress=done.append)
    items = tokenize_labels(tokenizer, PROMPTS, labels)
    sent = sorted(p for r in fake.requests for p in r["prompt"])  # requests run concurrently
    assert sent == sorted(it.context + tail for it in items for tail in it.tails)
    assert sorted(len(r["prompt"]) for r in fake.requests) == [len(labels), 2 * len(labels)]  # batch_size rows
    assert sum(done) == len(PROMPTS) and all(r["prompt_logprobs"] == 0 for r in fake.requests)
    assert len({len(t) for t in items[0].tails}) > 1
    for it, row in zip(items, scores):
        n = len(it.context)
        expected = [sum(fake_logprob(n + j, t) for j, t in enumerate(tail)) for tail in it.tails]
        assert row == pytest.approx(expected)


def test_score_labels_without_prompt_logprobs_fails_naming_the_url(tokenizer):
    with FakeVLLM(prompt_logprobs=False) as fake:
        remote = vb.RemoteModel(vb.VLLMClient(fake.url), BASE_NAME, None)
        with pytest.raises(FinGPTError, match=f"{fake.url}: the reply has no prompt_logprobs"):
            vb.score_labels(remote, tokenizer, ["Answer: "], ["very positive", "negative"])


def test_generate_answers_sends_prompt_ids_and_keeps_order(tokenizer):
    from fingpt_hf.families.catalog import GENERIC
    from fingpt_hf.families.tokenization import prompt_ids

    prompts = [f"Input: row {i}\nAnswer: " for i in range(5)]
    with FakeVLLM() as fake:
        remote = vb.RemoteModel(vb.VLLMClient(fake.url), BASE_NAME, None)
        answers = vb.generate_answers(remote, tokenizer, prompts, batch_size=2, max_new_tokens=4)
    ids = [prompt_ids(p, tokenizer, GENERIC) for p in prompts]
    assert sorted(p for r in fake.requests for p in r["prompt"]) == sorted(ids)  # requests run concurrently
    assert all(r["max_tokens"] == 4 and r["stop"] == ["\n"] for r in fake.requests)
    assert answers == [fake_text(i) for i in ids]


# --- wired into the commands -----------------------------------------------------------------------

def test_backend_options_are_checked(default_model_path):
    from fingpt_hf.evaluation.config import EvalConfig
    from fingpt_hf.prediction.config import PredictConfig

    with pytest.raises(FinGPTError, match="--vllm-url need --backend vllm"):
        EvalConfig(model=str(default_model_path), vllm_url="http://h:1/v1")
    with pytest.raises(FinGPTError, match="--backend 'tgi'"):
        EvalConfig(model=str(default_model_path), backend="tgi")
    with pytest.raises(FinGPTError, match="API root"):
        EvalConfig(model=str(default_model_path), backend="vllm", vllm_url="127.0.0.1:8000")
    with pytest.raises(FinGPTError, match="--device-map cannot be used with --backend vllm"):
        EvalConfig(model=str(default_model_path), backend="vllm", device_map="auto")
    with pytest.raises(FinGPTError, match="--vllm-model need --backend vllm"):
        PredictConfig(model="m", input="a.csv", output="b.csv", vllm_model="fingpt")


def test_eval_with_vllm_backend_records_it(default_model_path, data_dir, tmp_path):
    from fingpt_hf.evaluation.config import EvalConfig
    from fingpt_hf.evaluation.runner import run_evaluation

    with FakeVLLM() as fake:
        config = EvalConfig(model=str(default_model_path), datasets="fpb", limit=4, backend="vllm",
                            vllm_url=fake.url, output_dir=str(tmp_path / "eval"))
        run_evaluation(config, echo=lambda _: None)
    result = json.loads((tmp_path / "eval" / "fpb" / "result.json").read_text())
    assert (result["backend"], result["vllm_url"], result["vllm_model"]) == ("vllm", fake.url, BASE_NAME)
    assert result["model"]["hash"].startswith("sha256:")  # provenance of the local checkpoint
    rows = [json.loads(line) for line in (tmp_path / "eval" / "fpb" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(max(r["log_likelihoods"], key=r["log_likelihoods"].get) == r["prediction"]
                                  for r in rows)
    assert all(-100 < v < 0 for r in rows for v in r["log_likelihoods"].values())  # the fake's numbers
    assert fake.requests and all(r["model"] == BASE_NAME for r in fake.requests)


def test_eval_with_adapter_refuses_a_server_without_lora(default_model_path, data_dir, tmp_path):
    from fingpt_hf.evaluation.model_loading import inspect_sources

    source = inspect_sources(str(default_model_path))
    source.adapter_info = {"name_or_path": "some/adapter"}  # what inspect_sources sets for an adapter
    with FakeVLLM() as fake:
        with pytest.raises(FinGPTError, match=f"vLLM server {fake.url} serves no LoRA adapter"):
            vb.connect(source, fake.url, None)


def test_a_dora_adapter_is_refused_before_any_request(default_model_path, tmp_path):
    """vLLM cannot serve a DoRA adapter (the CPU default's since round 23) as a LoRA module: a real peft DoRA adapter is
    refused, naming it and the way out (the merged export), before the server is asked anything."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fingpt_hf.evaluation.model_loading import inspect_sources

    model = AutoModelForCausalLM.from_pretrained(default_model_path)
    adapter = tmp_path / "dora"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], use_dora=True)).save_pretrained(adapter)
    source = inspect_sources(str(default_model_path), str(adapter))
    with FakeVLLM() as fake:  # it serves no LoRA module: asked first, it would be refused for that instead
        with pytest.raises(FinGPTError, match=rf"--adapter {adapter} is a DoRA adapter .*fingpt-hf export"):
            vb.connect(source, fake.url, None)
        assert fake.requests == []


def test_predict_with_vllm_backend(default_model_path, tmp_path):
    from fingpt_hf.prediction.config import PredictConfig
    from fingpt_hf.prediction.runner import run_prediction

    source = tmp_path / "in.csv"
    source.write_text("text\nProfit rose.\nSales fell.\nNothing happened.\n")
    with FakeVLLM() as fake:
        config = PredictConfig(model=str(default_model_path), input=str(source), output=str(tmp_path / "out.jsonl"),
                               backend="vllm", vllm_url=fake.url)
        summary = run_prediction(config, echo=lambda _: None)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert summary.rows_written == 3 and len(rows) == 3
    assert all(math.isclose(sum(r[f"prob_{k}"] for k in ("negative", "neutral", "positive")), 1.0) for r in rows)
    assert len(fake.requests) == 1 and len(fake.requests[0]["prompt"]) == 3  # one request, a prompt per row


# --- the real server (opt-in) ----------------------------------------------------------------------

def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if proc.poll() is not None:
            pytest.fail(f"the vLLM server exited with {proc.returncode}; its log:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
                if reply.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(2)
    pytest.fail(f"the vLLM server did not answer within {limit_s:.0f} s; its log:\n{log.read_text()[-4000:]}")


@pytest.mark.vllm
def test_vllm_agrees_with_transformers(default_model_path, data_dir, tmp_path):
    """~100 FPB rows in score mode, both backends in float32: >= 99% of the labels agree.

    The transformers run goes first, so the idle server's workers do not share its CPU cores.
    """
    python = os.environ.get("FINGPT_VLLM_PYTHON")
    if not python:
        pytest.skip("set FINGPT_VLLM_PYTHON to a python that has vllm (bash scripts/setup_vllm.sh)")
    port, rows = free_port(), 100
    url = f"http://127.0.0.1:{port}/v1"
    cli = str(Path(sys.executable).parent / "fingpt-hf")
    common = ["eval", "--model", str(default_model_path), "--datasets", "fpb", "--limit", str(rows), "--mode", "score"]

    def evaluate(name: str, extra: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        out_dir = tmp_path / name
        subprocess.run([cli, *common, *extra, "--output-dir", str(out_dir)], check=True, timeout=900)
        records = [json.loads(line) for line in (out_dir / "fpb" / "predictions.jsonl").read_text().splitlines()]
        return json.loads((out_dir / "fpb" / "result.json").read_text()), records

    t_result, t_preds = evaluate("transformers", ["--dtype", "fp32"])
    log = tmp_path / "vllm.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(default_model_path),
             "--served-model-name", BASE_NAME, "--dtype", "float32", "--max-model-len", "1024",
             "--enable-prefix-caching", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        startup = _wait_for_server(url, proc, log, 480)
        v_result, v_preds = evaluate("vllm", ["--backend", "vllm", "--vllm-url", url])
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
    agreement = sum(a["prediction"] == b["prediction"] for a, b in zip(v_preds, t_preds)) / rows
    gap = max(abs(a["log_likelihoods"][k] - b["log_likelihoods"][k]) for a, b in zip(v_preds, t_preds)
              for k in a["log_likelihoods"])
    print(f"\nvLLM agreement {100 * agreement:.1f}% on {rows} FPB rows; startup {startup:.0f} s; "
          f"vLLM {v_result['examples_per_second']:.2f} rows/s, transformers {t_result['examples_per_second']:.2f} "
          f"rows/s; max |log-likelihood gap| {gap:.1e}; accuracy vLLM {v_result['metrics']['accuracy']:.3f}, transformers "
          f"{t_result['metrics']['accuracy']:.3f}")
    if os.environ.get("FINGPT_VLLM_RESULTS"):  # the figures the README states come from this file
        from fingpt_hf.io import atomic_write_json
        from fingpt_hf.provenance import now_iso, package_versions

        atomic_write_json(os.environ["FINGPT_VLLM_RESULTS"], {
            "command": "FINGPT_VLLM_PYTHON=.venv-vllm/bin/python FINGPT_VLLM_RESULTS=PATH "
                       "python -m pytest -s -m vllm tests/test_vllm_backend.py",
            "rows": rows, "dataset": "fpb test (first rows)", "mode": "score", "dtype": "float32 on both sides",
            "label_agreement": agreement, "max_log_likelihood_gap": gap, "server_startup_s": startup,
            "rows_per_s": {"transformers": t_result["examples_per_second"], "vllm": v_result["examples_per_second"]},
            "accuracy": {"transformers": t_result["metrics"]["accuracy"], "vllm": v_result["metrics"]["accuracy"]},
            "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count(), "versions": package_versions(),
            "finished_at": now_iso(),
        })
    assert len(v_preds) == len(t_preds) == rows
    assert v_result["backend"] == "vllm" and v_result["model"]["hash"] == t_result["model"]["hash"]
    assert agreement >= 0.99
    assert gap < 1e-2  # float32 on both sides: the same numbers up to kernel rounding
