"""`fingpt-hf predict`: the readers, the output files, bad rows, and a killed run that resumes.

Models are real: a tiny random Llama with the default model's tokenizer (its labels are noise, but
every number is checked against evaluation's own scoring), and the rows are real TFNS test texts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fingpt_hf import cli
from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.data.labels import INVALID, LABELS
from fingpt_hf.data.prompts import NEWS_INSTRUCTION, format_prompt
from fingpt_hf.data.readers import read_csv, read_jsonl, read_parquet, read_records
from fingpt_hf.metrics.parsing import parse_answer
from fingpt_hf.prediction import PredictConfig, run_prediction
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent
PROBS = [f"prob_{label}" for label in LABELS]


@pytest.fixture(scope="module")
def tiny_model(default_model_path, tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "model", default_model_path, pad_token=True,
                           hidden_size=64, max_position_embeddings=1024)


@pytest.fixture(scope="module")
def texts(data_dir) -> list[str]:
    from fingpt_hf.data.benchmarks import load_benchmark

    return load_benchmark("tfns", "test").select(range(300))["input"]


def collect(reader) -> tuple[list, list]:
    """(good records, bad records) of a reader run with a callback."""
    bad: list = []
    good = list(reader(on_bad=lambda n, p: bad.append((n, p))))
    return good, bad


def predict_cli(*args: str) -> int:
    return cli.main(["predict", *args])


# --- readers ----------------------------------------------------------------------------------------

def test_csv_reader_follows_rfc4180(tmp_path):
    long_text = "x" * 200_000  # over the csv module's default 131,072-char field limit
    path = tmp_path / "in.csv"
    body = ('id,text\r\n1,"two\nlines, and ""quotes"""\r\n\r\n2,' + long_text + '\r\n3,caf\xe9\r\n4,short\r\n'
            '5,"ok",extra\r\n')
    raw = b"\xef\xbb\xbf" + body.encode("utf-8")
    path.write_bytes(raw.replace("caf\xe9".encode(), b"caf\xe9"))  # record 3: a Latin-1 byte, not UTF-8
    good, bad = collect(lambda on_bad: read_csv(path, on_bad))
    assert [n for n, _ in good] == [1, 2, 4]  # records, not lines: the quoted newline and the blank line do not count
    assert good[0][1] == {"id": "1", "text": 'two\nlines, and "quotes"'}  # the BOM is not part of the first name
    assert good[1][1]["text"] == long_text
    assert [n for n, _ in bad] == [3, 5]
    assert "not valid UTF-8 (0xe9" in bad[0][1] and "3 field(s), but the header has 2" in bad[1][1]
    with pytest.raises(DataFormatError, match=r"in\.csv, record 3: bytes that are not valid UTF-8"):
        list(read_records(path))


def test_jsonl_reader_numbers_lines_and_keeps_unicode(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [b'\xef\xbb\xbf{"text": "a\xe2\x80\xa8b \xf0\x9f\x93\x88", "n": 1}', b"", b"[1, 2]",
             b'{"text": "caf\xe9"}', b'{"text": NaN}', b"not json", b'  {"text": "last"}\r']
    path.write_bytes(b"\n".join(lines) + b"\n")
    good, bad = collect(lambda on_bad: read_jsonl(path, on_bad))
    assert good == [(1, {"text": "a\u2028b \U0001f4c8", "n": 1}), (7, {"text": "last"})]  # U+2028 does not end a line
    assert [n for n, _ in bad] == [3, 4, 5, 6]
    assert "a JSON array, not an object" in bad[0][1] and "not valid UTF-8" in bad[1][1]
    assert "NaN is not a JSON value" in bad[2][1] and "not valid JSON" in bad[3][1]
    assert list(read_jsonl(io.BytesIO(b'{"a": 1}\n'))) == [(1, {"a": 1})]
    with pytest.raises(DataFormatError, match=r"in\.jsonl, line 3: a JSON array"):
        list(read_records(path))


def test_parquet_reader_streams_in_order(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(2500)], "id": list(range(2500))}), path,
                   row_group_size=700)
    rows = read_parquet(path, batch_size=1000)
    assert next(rows) == (1, {"text": "t0", "id": 0})
    rest = list(rows)
    assert [n for n, _ in rest] == list(range(2, 2501)) and rest[-1][1] == {"text": "t2499", "id": 2499}
    assert list(read_parquet(path, columns=["id"]))[5] == (6, {"id": 5})
    (tmp_path / "fake.parquet").write_text("no")
    with pytest.raises(DataFormatError, match="not a readable Parquet file"):
        list(read_records(tmp_path / "fake.parquet"))


# --- checks before the model ------------------------------------------------------------------------

def test_input_and_output_problems_fail_before_the_model(tmp_path, capsys):
    good = tmp_path / "in.jsonl"
    good.write_text('{"text": "Shares rose."}\n')
    (tmp_path / "in.txt").write_text("x")
    # A model that does not exist: had it been looked at, the error would name it instead.
    model = ("--model", str(tmp_path / "no-model"))
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    if os.access(readonly, os.W_OK):  # root writes anywhere; sysfs refuses new files even to root
        readonly = Path("/sys")
    try:
        tempfile.TemporaryFile(dir=readonly).close()
        pytest.fail(f"{readonly} is writable; no read-only directory to test with")
    except OSError:
        pass
    cases = [
        (("--input", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "o.csv")), "missing.csv: no such file"),
        (("--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.csv")), "unsupported file type '.txt'"),
        (("--input", str(good), "--output", str(tmp_path / "o.xlsx")), "unsupported file type '.xlsx'"),
        (("--input", str(good), "--output", str(tmp_path / "nodir" / "o.csv")), "nodir does not exist"),
        (("--input", str(good), "--output", str(readonly / "o.csv")), f"cannot write in {readonly}"),
    ]
    for args, message in cases:
        assert predict_cli(*model, *args) == 2
        err = capsys.readouterr().err
        assert message in err and "no-model" not in err, (args, err)
    (tmp_path / "done.csv").write_text("text,label\n")
    assert predict_cli(*model, "--input", str(good), "--output", str(tmp_path / "done.csv")) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err


def test_bad_rows_of_a_file_stop_before_the_model(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "Profit doubled."}\n{"text": ""}\n\n{"body": "x"}\n"a string"\n{"text": "\xff"}\n')
    assert predict_cli("--model", str(tmp_path / "no-model"), "--input", str(path),
                       "--output", str(tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert "4 bad row(s): line 2: text is empty; line 4: no 'text' field; line 5: a JSON str, not an object; " \
           "line 6: bytes that are not valid UTF-8" in err
    assert "--on-bad-row skip" in err and "no-model" not in err and not (tmp_path / "o.jsonl.partial").exists()
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id,body\n1,x\n")
    assert predict_cli("--model", "m", "--input", str(csv_path), "--output", str(tmp_path / "o.csv")) == 2
    assert "no column 'text' (--text-column); found id, body" in capsys.readouterr().err
    csv_path.write_text("text,label\nx,positive\n")
    assert predict_cli("--model", "m", "--input", str(csv_path), "--output", str(tmp_path / "o.csv")) == 2
    assert "column(s) label would be overwritten" in capsys.readouterr().err


# --- predictions ------------------------------------------------------------------------------------

def test_score_mode_csv_keeps_columns_and_matches_evaluation_scoring(tiny_model, texts, tmp_path):
    from fingpt_hf.evaluation.model_loading import inspect_sources, load_model
    from fingpt_hf.evaluation.scoring import score_labels

    rows = [{"id": str(i), "text": t, "note": f'n,"{i}"\nline'} for i, t in enumerate(texts[:24])]
    path = tmp_path / "in.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "note"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out.csv"
    summary = run_prediction(PredictConfig(model=str(tiny_model), input=str(path), output=str(out), dtype="fp32",
                                           chunk_size=10, batch_size=4), echo=lambda m: None)
    assert summary.rows_written == 24 and summary.chunks == 3 and not (tmp_path / "out.csv.partial").exists()
    with open(out, newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == ["id", "text", "note", "label", *PROBS]
    assert [{k: r[k] for k in ("id", "text", "note")} for r in written] == rows

    loaded = load_model(inspect_sources(str(tiny_model)), "fp32", "cpu")
    prompts = [format_prompt(NEWS_INSTRUCTION, r["text"]) for r in rows]
    scores = score_labels(loaded.model, loaded.tokenizer, prompts, LABELS, batch_size=4)
    for row, score in zip(written, scores):
        probs = [float(row[c]) for c in PROBS]
        expected = [math.exp(s) / sum(math.exp(x) for x in score) for s in score]
        assert probs == pytest.approx(expected, rel=1e-5)
        assert row["label"] == LABELS[max(range(3), key=lambda j: score[j])]
    assert len({r["label"] for r in written}) > 1 or len({r["prob_positive"] for r in written}) > 1


def test_generate_mode_jsonl_to_parquet(tiny_model, texts, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t, "meta": {"i": i, "tags": ["a"]}}) + "\n"
                            for i, t in enumerate(texts[:12])), encoding="utf-8")
    out = tmp_path / "out.parquet"
    run_prediction(PredictConfig(model=str(tiny_model), input=str(path), output=str(out), mode="generate",
                                 dtype="fp32", chunk_size=5, max_new_tokens=4), echo=lambda m: None)
    table = pq.read_table(out)
    assert table.column_names == ["text", "meta", "label", *PROBS, "raw_answer"]
    rows = table.to_pylist()
    assert [r["text"] for r in rows] == texts[:12] and rows[3]["meta"] == {"i": 3, "tags": ["a"]}
    assert all(r[p] is None for r in rows for p in PROBS)
    assert all(r["label"] == (parse_answer(r["raw_answer"], "strict") or INVALID) for r in rows)
    assert any(r["raw_answer"] for r in rows)


def test_stdin_skip_reports_bad_rows_and_error_stops_at_the_line(tiny_model, texts, tmp_path, monkeypatch, capsys):
    lines = [json.dumps({"text": texts[0]}).encode(), b'{"text": "   "}', b"[]", json.dumps({"text": texts[1]}).encode(),
             b'{"text": 5}', b'{"text": "\xc3"}', json.dumps({"text": texts[2], "extra": True}).encode()]
    data = b"\n".join(lines) + b"\n"
    out = tmp_path / "out.jsonl"
    args = ("--model", str(tiny_model), "--input", "-", "--output", str(out), "--dtype", "fp32", "--chunk-size", "3")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert predict_cli(*args) == 2
    err = capsys.readouterr().err
    assert "<stdin>: bad row (line 2: text is empty)" in err or "-: bad row (line 2: text is empty)" in err, err
    assert not out.exists()

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert predict_cli(*args, "--on-bad-row", "skip") == 0
    err = capsys.readouterr().err
    assert "skipped 4 bad row(s): lines 2, 3, 5, 6" in err
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in written] == texts[:3] and written[2]["extra"] is True
    assert all(abs(sum(r[p] for p in PROBS) - 1) < 1e-9 for r in written)


def test_adapter_prompt_settings_come_from_its_training_run(default_model_path, tiny_model, texts, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    adapter = tmp_path / "adapter"
    model = LlamaForCausalLM.from_pretrained(tiny_model)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
                   ).save_pretrained(adapter)
    (adapter / "fingpt_run.json").write_text(json.dumps({"prompt_style": "chat", "max_length": 48}))
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:8]), encoding="utf-8")
    notes: list[str] = []

    def run(name: str, **options) -> bytes:
        out = tmp_path / f"{name}.jsonl"
        run_prediction(PredictConfig(model=str(tiny_model), adapter=str(adapter), input=str(path), output=str(out),
                                     dtype="fp32", **options), echo=notes.append)
        return out.read_bytes()

    implicit = run("implicit")
    assert any("prompt style chat (from" in n and "fingpt_run.json" in n for n in notes)
    assert any("max_length 48 (from" in n for n in notes)
    assert implicit == run("explicit", prompt_style="chat", max_length=48)
    assert implicit != run("fingpt", prompt_style="fingpt", max_length=48)


# --- durability -------------------------------------------------------------------------------------

def test_killed_run_resumes_at_the_first_missing_chunk(tiny_model, texts, tmp_path, capsys):
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    work = tmp_path / "labels.jsonl.partial"
    args = ["--model", str(tiny_model), "--input", str(path), "--output", str(out), "--dtype", "fp32",
            "--chunk-size", "10", "--batch-size", "5"]
    command = [sys.executable, "-m", "fingpt_hf.cli", "predict", *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    deadline = time.monotonic() + 300
    while not (work / "chunk-000000.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # a hard stop: no cleanup code runs
    _, killed_err = proc.communicate(timeout=60)
    assert (work / "chunk-000000.json").exists(), killed_err.decode()[-3000:]
    assert not out.exists(), "the run finished before it was killed"
    finished = len(list(work.glob("chunk-*.json")))
    assert 1 <= finished < 30

    # Different options are refused, naming what changed, before any model is loaded.
    assert predict_cli(*args[:-4], "--chunk-size", "20", "--batch-size", "5") == 2
    err = capsys.readouterr().err
    assert "options.chunk_size: 10 -> 20" in err and "--overwrite" in err and str(work) in err

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed_at = int(rerun.stderr.split("resuming at chunk ")[1].split()[0])
    assert resumed_at >= finished and f"of 30 ({resumed_at * 10} row(s) already done" in rerun.stderr
    assert f"wrote 300 row(s) to {out} ({300 - resumed_at * 10} labelled in this run" in rerun.stderr
    assert not work.exists()

    reference = tmp_path / "reference.jsonl"
    run_prediction(PredictConfig(model=str(tiny_model), input=str(path), output=str(reference), dtype="fp32",
                                 chunk_size=10, batch_size=5), echo=lambda m: None)
    assert out.read_bytes() == reference.read_bytes()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == list(range(300))

    # --overwrite replaces a finished output; the same command without it is refused.
    assert predict_cli(*args) == 2 and "already exists" in capsys.readouterr().err


def test_rows_past_the_context_are_refused_by_row_before_the_weights(default_model_path, texts, tmp_path,
                                                                     monkeypatch, capsys):
    """A prompt that does not fit the model's context with its answer would be garbage without an
    error: a file is checked row by row with the tokenizer before any weights load (the error names
    the line); standard input chunk by chunk, keeping the chunks before; --max-length cuts instead."""
    short = save_tiny_llama(tmp_path / "short", default_model_path, pad_token=True, max_position_embeddings=96)
    long_text = " ".join(texts[:8])  # ~200 tokens with the prompt
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps({"text": t}) for t in [texts[0], texts[1], long_text, texts[2]]) + "\n")
    out = tmp_path / "out.jsonl"
    args = ("--model", str(short), "--output", str(out), "--dtype", "fp32", "--chunk-size", "2")
    (short / "model.safetensors").rename(tmp_path / "weights")  # no weights: the check must come first
    assert predict_cli(*args, "--input", str(data)) == 2
    err = capsys.readouterr().err
    assert f"{data}: line 3 needs " in err and "more than the model's context of 96" in err, err
    (tmp_path / "weights").rename(short / "model.safetensors")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.read_bytes())))
    assert predict_cli(*args, "--input", "-") == 2
    assert "line 3 needs " in capsys.readouterr().err and not out.exists()

    # The first chunk of stdin is kept; cutting prompts is another run over it, so it starts over.
    assert predict_cli(*args, "--input", str(data), "--max-length", "96") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert predict_cli(*args, "--input", str(data), "--max-length", "96", "--overwrite") == 0, capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 4
