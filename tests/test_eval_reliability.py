"""Reliability: no stale result reported as fresh, names are never paths, unwritable outputs and
broken inputs fail first and by name, and a killed `data build` leaves nothing that looks done."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fingpt_hf.cli import main as cli_main
from fingpt_hf.data.custom import load_custom_dataset
from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.data.mixture import MixtureSource
from fingpt_hf.data.names import RESERVED_NAMES, check_dataset_name
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.config import EvalConfig
from fingpt_hf.evaluation.leaderboard import render_leaderboard
from fingpt_hf.evaluation.results import AGGREGATE_FILE, MARKDOWN_FILE, load_results
from fingpt_hf.evaluation.runner import EvalDataset, dataset_signature, run_evaluation
from fingpt_hf.io import ensure_writable_dir
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent
ROWS = [("Profits rose sharply", "positive"), ("Shares fell after the warning", "negative"),
        ("Guidance was kept unchanged", "neutral"), ("Margins widened", "positive")]


@pytest.fixture(scope="module")
def tiny_model(default_model_path, tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "model", default_model_path, pad_token=True)


def write_csv(path: Path, rows, header=("text", "label"), encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def evaluate(model: Path, out: Path, **options) -> dict:
    config = EvalConfig(model=str(model), output_dir=str(out), dtype="fp32", batch_size=4, **options)
    return run_evaluation(config, echo=lambda _: None)


# --- 1. stale results ----------------------------------------------------------------------------

def test_edited_custom_file_is_not_reported_with_old_metrics(tiny_model, tmp_path):
    data = write_csv(tmp_path / "desk.csv", ROWS)
    out = tmp_path / "eval"
    first = evaluate(tiny_model, out, custom=str(data))["results"]["desk"]
    again = evaluate(tiny_model, out, custom=str(data))["results"]["desk"]  # unchanged: reused
    assert again["finished_at"] == first["finished_at"]

    write_csv(data, [(t, "negative") for t, _ in ROWS])  # same texts, every label edited
    with pytest.raises(FinGPTError) as err:
        evaluate(tiny_model, out, custom=str(data))
    message = str(err.value)
    assert str(out / "desk" / "result.json") in message and "rows_hash" in message and "--overwrite" in message

    replaced = evaluate(tiny_model, out, custom=str(data), overwrite=True)["results"]["desk"]
    golds = [json.loads(line)["gold"] for line in (out / "desk" / "predictions.jsonl").open()]
    # Recomputed on the edited rows (timestamps have one-second steps, so compare what was evaluated).
    assert golds == ["negative"] * 4 and replaced["eval_config"]["rows_hash"] != first["eval_config"]["rows_hash"]


def test_label_map_text_column_and_instruction_changes_are_detected(tiny_model, tmp_path):
    data = tmp_path / "ids.jsonl"
    data.write_text("".join(json.dumps({"text": t, "body": t.upper(), "label": i % 3}) + "\n"
                            for i, (t, _) in enumerate(ROWS)))
    out = tmp_path / "eval"
    base = {"custom": str(data), "label_map": '{"0": "negative", "1": "neutral", "2": "positive"}'}
    evaluate(tiny_model, out, **base)
    swapped = {**base, "label_map": '{"0": "positive", "1": "neutral", "2": "negative"}'}
    with pytest.raises(FinGPTError, match="data_label_map"):
        evaluate(tiny_model, out, **swapped)
    with pytest.raises(FinGPTError, match="data_text_column: 'text' -> 'body'"):
        evaluate(tiny_model, out, **base, text_column="body")
    with pytest.raises(FinGPTError, match="data_instruction"):
        evaluate(tiny_model, out, **base, instruction="Is this good news?")


def test_custom_name_of_a_benchmark_is_refused_and_kind_is_in_the_signature(tmp_path):
    data = write_csv(tmp_path / "mine.csv", ROWS)
    with pytest.raises(FinGPTError, match="benchmark's name"):
        EvalConfig(model="x", custom=str(data), custom_name="fpb")
    with pytest.raises(FinGPTError, match="benchmark's name.*--custom-name"):
        EvalConfig(model="x", custom=str(write_csv(tmp_path / "FPB.csv", ROWS)))
    rows = load_custom_dataset(data, name="fpb")
    as_benchmark = EvalDataset("fpb", rows, "financial_phrasebank", "sentences_50agree", "test")
    as_custom = EvalDataset("fpb", rows, str(data), None, "custom", kind="custom", source={"path": str(data)})
    assert dataset_signature({}, as_benchmark)["dataset_kind"] == "benchmark"
    assert dataset_signature({}, as_benchmark) != dataset_signature({}, as_custom)


def test_mirror_edit_changes_a_benchmark_signature(tmp_path, data_dir):
    from fingpt_hf.data.benchmarks import load_benchmark

    rows = load_benchmark("fiqa", "test", data_dir).select(range(5))
    edited = rows.map(lambda r, i: {"output": "neutral" if i == 0 else r["output"]}, with_indices=True)
    assert rows[0]["output"] != "neutral"
    sig = [dataset_signature({}, EvalDataset("fiqa", r, "pauri32/fiqa-2018", None, "test",
                                             source={"data_dir": str(data_dir)})) for r in (rows, edited)]
    assert sig[0]["rows_hash"] != sig[1]["rows_hash"]


# --- 2. names are data, not paths ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "..", ".", ".hidden", "results.json", "RESULTS.MD",
                                  "x" * 65, "", "a b", "/abs", "tab\tname"])
def test_unsafe_names_are_refused_before_anything_runs(tmp_path, name):
    data = write_csv(tmp_path / "mine.csv", ROWS)
    out = tmp_path / "deep" / "er" / "eval"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FinGPTError, match="--custom-name"):
        EvalConfig(model="x", custom=str(data), custom_name=name, output_dir=str(out))
    with pytest.raises(FinGPTError, match="dataset_mixture: .*source"):
        MixtureSource(name, path=str(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written anywhere


def test_traversal_name_on_the_command_line_writes_nothing(tmp_path, capsys):
    data = write_csv(tmp_path / "mine.csv", ROWS)
    out = tmp_path / "a" / "b" / "eval"
    code = cli_main(["eval", "--model", "x", "--custom", str(data), "--custom-name", "../../x",
                     "--output-dir", str(out)])
    assert code == 2 and "'../../x'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "x").exists()


def test_safe_names_pass_and_the_stem_is_checked(tmp_path):
    assert check_dataset_name("my-desk_v1.2") == "my-desk_v1.2"
    assert {AGGREGATE_FILE, MARKDOWN_FILE} <= RESERVED_NAMES  # the output layout's own files
    with pytest.raises(FinGPTError, match="file's stem.*pass --custom-name"):
        EvalConfig(model="x", custom=str(write_csv(tmp_path / "my desk.csv", ROWS)))
    assert EvalConfig(model="x", custom=str(tmp_path / "my desk.csv"), custom_name="desk").custom_dataset_name == "desk"


# --- 3. outputs checked before the work -----------------------------------------------------------

def test_output_dir_that_is_a_file_fails_before_any_work(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    # The model does not exist: the output check must come first, or this would fail on the model.
    for out, expected in ((blocker, "is a file, not a directory"), (blocker / "sub", f"{blocker} is a file")):
        with pytest.raises(FinGPTError, match="--output-dir") as err:
            run_evaluation(EvalConfig(model=str(tmp_path / "no-model"), datasets="fiqa", output_dir=str(out)),
                           echo=lambda _: None)
        assert expected in str(err.value)


def test_unwritable_directory_is_found_by_a_real_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # the probe must not ask os.access
    new = tmp_path / "new" / "deeper"
    assert ensure_writable_dir(new, "--output-dir") == new
    assert not (tmp_path / "new").exists() and not list(tmp_path.iterdir())  # probed, nothing left behind

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)  # what a read-only directory does, even to root
    with pytest.raises(FinGPTError, match="--output-dir .*: the directory is not writable"):
        ensure_writable_dir(tmp_path, "--output-dir")
    with pytest.raises(FinGPTError, match=f"the folder {tmp_path} it would be created in is not writable"):
        ensure_writable_dir(tmp_path / "new", "--output-dir")


def test_compare_and_data_build_check_output_first(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    # compare: refused before reading the (missing) results file, so its error is about --output.
    assert cli_main(["compare", str(tmp_path / "missing.json"), "--output", str(blocker / "t.md")]) == 2
    assert f"--output {blocker / 't.md'}" in capsys.readouterr().err
    assert cli_main(["compare", "--output", str(tmp_path)]) == 2
    assert "is a directory, not a file" in capsys.readouterr().err
    assert cli_main(["leaderboard", str(tmp_path), "--output", str(blocker / "board.md")]) == 2
    assert f"its folder {blocker}: is a file, not a directory" in capsys.readouterr().err
    started = time.monotonic()
    assert cli_main(["data", "build", "--output", str(blocker / "mix")]) == 2
    assert f"its folder {blocker}: is a file, not a directory" in capsys.readouterr().err
    assert time.monotonic() - started < 5  # refused before the mixture was built


def make_adapter(model_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(out)
    return out


def test_truncated_adapter_is_named(tiny_model, tmp_path):
    from fingpt_hf.evaluation.model_loading import adapter_files, inspect_sources

    adapter = make_adapter(tiny_model, tmp_path / "adapter")
    weights = adapter / "adapter_model.safetensors"
    assert adapter_files(str(adapter))[1] == weights  # intact: passes
    data = weights.read_bytes()
    for broken in (data[:-100], data[:5], (10**9).to_bytes(8, "little") + data[8:]):
        weights.write_bytes(broken)
        with pytest.raises(FinGPTError) as err:
            inspect_sources(str(tiny_model), str(adapter), allow_base_mismatch=True)
        assert str(weights) in str(err.value) and "truncated or damaged" in str(err.value)


# --- corrupted results, leaderboard ---------------------------------------------------------------

def test_corrupted_results_are_named_and_overwrite_recovers(tiny_model, tmp_path):
    out = tmp_path / "eval"
    evaluate(tiny_model, out, datasets="fiqa,tfns", limit=2)
    (out / AGGREGATE_FILE).write_text('{"schema_version": 1, "results": {"fiqa": ')
    with pytest.raises(FinGPTError) as err:
        evaluate(tiny_model, out, datasets="fiqa,tfns", limit=2)
    assert str(out / AGGREGATE_FILE) in str(err.value) and "--overwrite" in str(err.value)

    (out / "tfns" / "result.json").write_text("garbage")
    with pytest.raises(FinGPTError):  # still refused: both files are broken
        evaluate(tiny_model, out, datasets="fiqa,tfns", limit=2)
    fiqa_before = (out / "fiqa" / "result.json").read_bytes()
    aggregate = evaluate(tiny_model, out, datasets="fiqa,tfns", limit=2, overwrite=True)
    assert list(aggregate["results"]) == ["fiqa", "tfns"]
    assert (out / "fiqa" / "result.json").read_bytes() == fiqa_before  # kept: it was fine
    assert load_results(out / "tfns" / "result.json")["results"]["tfns"]["num_rows"] == 2
    assert (out / f"{AGGREGATE_FILE}.corrupt").read_text().startswith('{"schema_version": 1')

    (out / "tfns" / "result.json").write_text("garbage")
    with pytest.raises(FinGPTError) as err:
        evaluate(tiny_model, out, datasets="tfns", limit=2)
    assert str(out / "tfns" / "result.json") in str(err.value) and "--overwrite" in str(err.value)


def test_leaderboard_ranks_the_rest_and_reports_a_bad_file(tiny_model, tmp_path):
    runs = tmp_path / "runs"
    evaluate(tiny_model, runs / "good", datasets="fiqa", limit=2)
    (runs / "bad").mkdir()
    (runs / "bad" / AGGREGATE_FILE).write_text("{not json")
    warnings: list[str] = []
    text = render_leaderboard(runs, warn=warnings.append)
    assert "good/results.json" in text and "| 1 |" in text
    assert len(warnings) == 1 and str(runs / "bad" / AGGREGATE_FILE) in warnings[0]
    assert "Not ranked" in text and str(runs / "bad" / AGGREGATE_FILE) in text
    shutil.rmtree(runs / "good")
    with pytest.raises(FinGPTError, match="no readable results.json"):
        render_leaderboard(runs, warn=warnings.append)


# --- 4. custom files read right --------------------------------------------------------------------

def test_csv_with_byte_order_mark(tmp_path):
    path = write_csv(tmp_path / "bom.csv", ROWS, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    ds = load_custom_dataset(path)
    assert ds["input"] == [t for t, _ in ROWS] and ds["output"] == [label for _, label in ROWS]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps({"text": t, "label": l}).encode() + b"\n" for t, l in ROWS))
    assert load_custom_dataset(jsonl)["output"] == [label for _, label in ROWS]


def test_csv_rows_are_records_not_lines(tmp_path):
    rows = [("Line one\nline two\nline three", "positive"), ("Plain", "negative"), ("Bad one", "bullish")]
    path = write_csv(tmp_path / "multi.csv", rows)
    with pytest.raises(DataFormatError, match=r"multi\.csv, row 3: label='bullish'"):
        load_custom_dataset(path)
    ds = load_custom_dataset(write_csv(tmp_path / "ok.csv", rows[:2]))
    assert ds["input"][0] == "Line one\nline two\nline three"

    path.write_text('text,label\n"a\nb",positive\n"c",negative,extra\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"multi\.csv, row 2: 3 field\(s\), but the header has 2"):
        load_custom_dataset(path)


def test_csv_field_longer_than_the_csv_module_limit(tmp_path):
    long_text = "Revenue grew. " * 20_000  # 280,000 characters > 131,072
    ds = load_custom_dataset(write_csv(tmp_path / "long.csv", [(long_text, "positive"), ("Short", "neutral")]))
    assert ds["input"][0] == long_text and len(ds) == 2


def test_missing_custom_file_is_not_called_a_mirror_file(tiny_model, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataFormatError) as err:
        load_custom_dataset(missing)
    assert str(err.value) == f"{missing}: no such file"
    with pytest.raises(FinGPTError, match="no such file") as err:
        evaluate(tiny_model, tmp_path / "eval", custom=str(missing))
    assert "mirror" not in str(err.value)


# --- 5. a real kill ----------------------------------------------------------------------------------

def test_data_build_killed_mid_write_leaves_no_output(tmp_path):
    """SIGKILL while the mixture is being written (its temporary folder exists and has files):
    OUTPUT must not exist; a rerun then builds it whole."""
    output = tmp_path / "mix"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    caught = False
    for weight in (20, 60, 150):  # more rows, a longer write, until the kill lands inside it
        proc = subprocess.Popen([sys.executable, "-m", "fingpt_hf.cli", "data", "build", "--output", str(output),
                                 "--weights", f"fpb={weight}", "--on-missing", "skip"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            temp = [p for p in tmp_path.glob(".mix.tmp-*") if p.is_dir() and any(p.iterdir())]
            if temp:
                proc.send_signal(signal.SIGKILL)
                caught = True
                break
            time.sleep(0.0005)
        proc.communicate(timeout=60)
        if caught:
            break
        assert proc.returncode == 0, "the build failed on its own"
        shutil.rmtree(output)
    assert caught, "the build always finished before it could be killed mid-write"
    assert proc.returncode == -signal.SIGKILL
    assert not output.exists(), "a killed build left OUTPUT behind"

    done = subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "data", "build", "--output", str(output),
                           "--weights", "fpb=1"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import datasets

    report = json.loads((output / "mixture_report.json").read_text())
    assert len(datasets.load_from_disk(str(output))) == report["total_rows"] == 3634
