"""`fingpt-hf eval` end to end: result files, generate mode, bad input caught before model loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fingpt_hf.data.labels import INVALID, LABELS
from fingpt_hf.errors import FinGPTError
from fingpt_hf.evaluation.config import EvalConfig
from fingpt_hf.evaluation.results import RESULTS_SCHEMA_VERSION, load_results, render_markdown_table
from fingpt_hf.evaluation.runner import run_evaluation
from fingpt_hf.metrics.parsing import parse_answer
from tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent


def make_tiny_model(path: Path, tokenizer_dir: Path, hidden: int = 32) -> Path:
    """A random 2-layer llama with the default model's tokenizer (pad id set), saved as safetensors."""
    return save_tiny_llama(path, tokenizer_dir, pad_token=True, hidden_size=hidden, max_position_embeddings=1024)


def make_adapter(model_dir: Path, out: Path, base_name: str) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(out)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_name
    config_path.write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def tiny_model(default_model_path, tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", default_model_path)


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "eval", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def test_cli_score_mode_real_model_writes_every_file(default_model_path, tmp_path):
    out = tmp_path / "eval"
    proc = run_cli("--model", str(default_model_path), "--datasets", "fpb", "--limit", "50", "--mode", "score",
                   "--batch-size", "25", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    aggregate = load_results(out / "results.json")
    result = aggregate["results"]["fpb"]
    assert result["schema_version"] == RESULTS_SCHEMA_VERSION
    assert (result["num_rows"], result["mode"], result["parser"], result["split"]) == (50, "score", None, "test")
    assert result["dataset_id"] == "financial_phrasebank" and result["dataset_config"] == "sentences_50agree"
    assert result["model"]["hash"].startswith("sha256:") and result["adapter"] is None
    assert result["metrics"]["invalid_rate"] == 0.0 and result["examples_per_second"] > 0
    assert sum(map(sum, result["metrics"]["confusion_matrix"]["matrix"])) == 50
    assert json.loads((out / "fpb" / "result.json").read_text()) == result
    records = [json.loads(line) for line in (out / "fpb" / "predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(50))
    for r in records:
        assert r["prediction"] in LABELS and r["gold"] in LABELS
        ll = r["log_likelihoods"]
        assert set(ll) == set(LABELS) and r["prediction"] == max(ll, key=ll.get)
    accuracy = sum(r["prediction"] == r["gold"] for r in records) / 50
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert (out / "fpb" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| fpb | test | 50 | score |" in (out / "results.md").read_text()


def test_generate_mode_parses_answers(tiny_model, tmp_path):
    config = EvalConfig(model=str(tiny_model), datasets="tfns", limit=6, mode="generate", parser="strict",
                        max_new_tokens=3, batch_size=4, dtype="fp32", output_dir=str(tmp_path))
    aggregate = run_evaluation(config, echo=lambda _: None)
    result = aggregate["results"]["tfns"]
    assert (result["mode"], result["parser"], result["num_rows"]) == ("generate", "strict", 6)
    records = [json.loads(line) for line in (tmp_path / "tfns" / "predictions.jsonl").read_text().splitlines()]
    invalid = 0
    for r in records:
        assert isinstance(r["raw_answer"], str) and "log_likelihoods" not in r
        parsed = parse_answer(r["raw_answer"], "strict")
        assert r["prediction"] == (parsed if parsed is not None else INVALID)
        invalid += parsed is None
    assert result["metrics"]["invalid_rate"] == pytest.approx(invalid / 6)


def test_generate_mode_real_model_fingpt_parser(default_model_path, tmp_path):
    config = EvalConfig(model=str(default_model_path), datasets="fpb", limit=8, mode="generate", parser="fingpt",
                        batch_size=8, output_dir=str(tmp_path))
    result = run_evaluation(config, echo=lambda _: None)["results"]["fpb"]
    assert result["metrics"]["invalid_rate"] == 0.0  # FinGPT's parser never fails
    records = [json.loads(line) for line in (tmp_path / "fpb" / "predictions.jsonl").read_text().splitlines()]
    assert all("\n" not in r["raw_answer"].strip() for r in records)  # stopped at the first newline
    assert all(r["prediction"] == parse_answer(r["raw_answer"], "fingpt") for r in records)


def test_adapter_base_mismatch_is_an_error_before_loading(default_model_path, tmp_path):
    model_a = make_tiny_model(tmp_path / "a", default_model_path, hidden=32)
    model_b = make_tiny_model(tmp_path / "b", default_model_path, hidden=48)
    adapter = make_adapter(model_a, tmp_path / "adapter", base_name=str(model_a))
    proc = run_cli("--model", str(model_b), "--adapter", str(adapter), "--datasets", "fpb", "--limit", "4",
                   "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "was trained on" in proc.stderr and "hidden_size: 32 vs 48" in proc.stderr
    assert "--allow-base-mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()

    # The same architecture saved elsewhere is accepted, and the adapter is applied and fingerprinted.
    copy_a = make_tiny_model(tmp_path / "a_copy", default_model_path, hidden=32)
    out = tmp_path / "ok"
    proc = run_cli("--model", str(copy_a), "--adapter", str(adapter), "--datasets", "fpb", "--limit", "4",
                   "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    adapter_info = load_results(out)["results"]["fpb"]["adapter"]
    assert adapter_info["name_or_path"] == str(adapter) and adapter_info["hash"].startswith("sha256:")


def test_adapter_changes_scores(default_model_path, tiny_model, tmp_path):
    adapter = make_adapter(tiny_model, tmp_path / "adapter", base_name=str(tiny_model))
    base = run_evaluation(EvalConfig(model=str(tiny_model), datasets="fpb", limit=4, dtype="fp32",
                                     output_dir=str(tmp_path / "base")), echo=lambda _: None)
    tuned = run_evaluation(EvalConfig(model=str(tiny_model), adapter=str(adapter), datasets="fpb", limit=4,
                                      dtype="fp32", output_dir=str(tmp_path / "tuned")), echo=lambda _: None)
    assert base["results"]["fpb"]["adapter"] is None and tuned["results"]["fpb"]["adapter"] is not None

    def lls(d):
        return [json.loads(x)["log_likelihoods"] for x in (tmp_path / d / "fpb" / "predictions.jsonl").open()]

    assert lls("base") != lls("tuned")


def test_labels_outside_the_map_fail_before_loading(tmp_path):
    data = tmp_path / "mine.csv"
    data.write_text("sentence,sentiment\nProfits rose,up\nShares fell,down\nGuidance kept,flat\nOdd one,bullish\n")
    proc = run_cli("--model", str(tmp_path / "no-such-model"), "--custom", str(data), "--text-column", "sentence",
                   "--label-column", "sentiment", "--label-map",
                   '{"up": "positive", "down": "negative", "flat": "neutral"}', "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert str(data) in proc.stderr and "row 4" in proc.stderr and "bullish" in proc.stderr


def test_custom_dataset_is_evaluated(tiny_model, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": l}) + "\n"
                            for t, l in [("Profits rose", 2), ("Shares fell", 0), ("Guidance kept", 1)]))
    config = EvalConfig(model=str(tiny_model), custom=str(data), label_map='{"0": "negative", "1": "neutral", '
                        '"2": "positive"}', custom_name="mine", output_dir=str(tmp_path / "o"), dtype="fp32")
    assert config.dataset_names == []
    result = run_evaluation(config, echo=lambda _: None)["results"]["mine"]
    assert result["num_rows"] == 3 and result["split"] == "custom" and result["dataset_id"] == str(data.resolve())


def test_older_results_schema_is_an_error(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"schema_version": 0, "results": {}}))
    proc = run_cli("--model", str(tmp_path / "no-such-model"), "--datasets", "fpb", "--limit", "2",
                   "--output-dir", str(out))
    assert proc.returncode == 2
    assert str(out / "results.json") in proc.stderr and "older" in proc.stderr
    with pytest.raises(FinGPTError, match="newer"):
        (out / "results.json").write_text(json.dumps({"schema_version": 99, "results": {}}))
        load_results(out)


def test_bad_options_are_errors():
    with pytest.raises(FinGPTError, match="unknown benchmark"):
        EvalConfig(model="x", datasets="fpb,imdb")
    with pytest.raises(FinGPTError, match="label-map"):
        EvalConfig(model="x", custom="f.csv", label_map="{not json")
    with pytest.raises(FinGPTError, match="--limit"):
        EvalConfig(model="x", limit=0)


def test_recipe_yaml_and_overrides(tiny_model, tmp_path):
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"model: {tiny_model}\ndatasets: [fiqa]\nlimit: 3\ndtype: fp32\n"
                      f"output_dir: {tmp_path / 'from-yaml'}\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "recipes/evaluate.py", "--config", str(recipe), "--limit", "5"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = load_results(tmp_path / "from-yaml")["results"]["fiqa"]
    assert result["num_rows"] == 5 and result["mode"] == "score"


def test_markdown_table_shows_percentages():
    metrics = {"accuracy": 0.5, "f1_macro": 0.25, "f1_micro": 0.5, "f1_weighted": 0.125, "invalid_rate": 0.0}
    table = render_markdown_table([{"dataset": "fpb", "split": "test", "num_rows": 4, "mode": "score",
                                    "parser": None, "metrics": metrics, "examples_per_second": 3.0}])
    assert "| fpb | test | 4 | score | - | 50.00 | 25.00 | 50.00 | 12.50 | 0.00 | 3.00 |" in table
