"""The validation split: a seeded slice of each benchmark's train split (never test rows), shown by
`data stats`, left out of training mixtures by default, and what `eval_holdout` evaluates on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fingpt_hf.data.benchmarks import VALIDATION_FRACTION, load_benchmark, load_train_rows
from fingpt_hf.data.errors import MissingSplitError
from fingpt_hf.data.mixture import MixtureConfig, build_mixture
from fingpt_hf.errors import FinGPTError
from fingpt_hf.training.recipe import parse_sft_args
from tiny_models import save_tiny_llama, sft_script, tiny_sft_recipe

REPO = Path(__file__).resolve().parent.parent


def _rows(ds) -> list[tuple[str, str, str]]:
    return list(zip(ds["instruction"], ds["input"], ds["output"]))


@pytest.mark.parametrize("name", ["fpb", "fiqa", "tfns"])
def test_validation_is_a_seeded_slice_of_train(name, data_dir):
    train = _rows(load_benchmark(name, "train", data_dir))
    validation = _rows(load_benchmark(name, "validation", data_dir))
    rest = _rows(load_train_rows(name, data_dir))
    assert len(validation) == round(VALIDATION_FRACTION * len(train)) and len(rest) == len(train) - len(validation)
    # Together, and only together, the two parts are the train split (as multisets of rows).
    assert Counter(validation) + Counter(rest) == Counter(train)
    assert _rows(load_benchmark(name, "validation", data_dir)) == validation  # deterministic
    assert _rows(load_train_rows(name, data_dir, exclude_validation=False)) == train


def test_validation_slices_are_drawn_per_benchmark_and_nwgi_has_none_offline(data_dir):
    fpb = load_benchmark("fpb", "validation", data_dir)
    tfns = load_benchmark("tfns", "validation", data_dir)
    first_fpb = load_benchmark("fpb", "train", data_dir).select(range(len(fpb)))
    assert fpb["input"] != first_fpb["input"]  # a permutation, not the head of train
    assert len(tfns) == 954 and len(fpb) == 363
    with pytest.raises(MissingSplitError, match="nwgi split 'train' is not in the local data mirror"):
        load_benchmark("nwgi", "validation", data_dir)


def test_mixture_never_contains_validation_or_test_rows(data_dir):
    config = MixtureConfig.from_dict({"datasets": [{"name": "fpb", "weight": 2.5}, {"name": "fiqa", "weight": 3},
                                                   {"name": "tfns", "weight": 1.5}, {"name": "nwgi", "weight": 1}]})
    assert config.exclude_validation
    mixture, report = build_mixture(config, data_dir)
    mixed = Counter(mixture["input"])
    for name in ("fpb", "fiqa", "tfns"):
        train = Counter(load_benchmark(name, "train", data_dir)["input"])
        for text in load_benchmark(name, "validation", data_dir)["input"]:
            if train[text] == 1:  # a text that appears once in train is in validation only
                assert text not in mixed, (name, text)
        test = set(load_benchmark(name, "test", data_dir)["input"])
        # Test texts reach the mixture only where FinGPT's own train split already holds them.
        assert {t for t in test if t in mixed} <= {t for t in test if train[t]}
    assert [s.name for s in report.skipped] == ["nwgi"]
    # FinGPT's own recipe keeps its whole train splits: 60,588 rows offline, as FinGPT builds them.
    assert MixtureConfig.fingpt_default().exclude_validation is False


def test_validation_split_cannot_be_trained_on():
    with pytest.raises(FinGPTError, match="validation rows are for choosing recipes"):
        MixtureConfig.from_dict({"datasets": [{"name": "fpb", "split": "validation"}]})


def test_data_stats_shows_validation(data_dir):
    proc = subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "data", "stats", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "  validation: 363 rows" in proc.stdout and "left out of mixtures by default" in proc.stdout


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", default_model_path)


def _train(recipe: dict, tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "out")])
    return sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit)


def test_eval_holdout_evaluates_on_validation_rows(tiny_model, tmp_path):
    out = _train(tiny_sft_recipe(tiny_model, eval_holdout=8, max_steps=2), tmp_path)
    info = json.loads((out / "fingpt_run.json").read_text())
    assert info["eval_rows"] == 8 and any("eval_loss" in e for e in info["log_history"])
    mixture = {"datasets": [{"name": "fpb", "weight": 1}], "max_samples": 32, "exclude_validation": False}
    with pytest.raises(FinGPTError, match="which this mixture trains on"):
        _train(tiny_sft_recipe(tiny_model, eval_holdout=8, dataset_mixture=mixture), tmp_path / "whole")


@pytest.mark.parametrize("fast_path", [False, True])
def test_validation_f1_during_training_chooses_the_saved_checkpoint(tiny_model, tmp_path, fast_path):
    """Each evaluation scores the validation rows as `fingpt-hf eval` does; with metric_for_best_model
    naming that figure, the saved adapter is the best checkpoint, and evaluating it afterwards with
    `fingpt-hf eval --split validation` gives the figure the run logged for it (fp32: the plain
    trainer; the fast path scores under its bf16 CPU autocast, so its figure is its own)."""
    from fingpt_hf.evaluation.config import EvalConfig
    from fingpt_hf.evaluation.runner import run_evaluation

    fpb_validation = len(load_benchmark("fpb", "validation"))
    recipe = tiny_sft_recipe(tiny_model, eval_holdout=fpb_validation, max_steps=6, learning_rate=2e-2,
                             eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
                             metric_for_best_model="fpb_f1_weighted", greater_is_better=True,
                             load_best_model_at_end=True, fast_path=fast_path)
    out = _train(recipe, tmp_path)
    info = json.loads((out / "fingpt_run.json").read_text())
    evals = [e for e in info["log_history"] if "eval_fpb_f1_weighted" in e]
    assert [e["step"] for e in evals] == [3, 6]
    assert all(e["eval_mean_f1_weighted"] == e["eval_fpb_f1_weighted"] for e in evals)  # one benchmark
    assert len({round(e["eval_fpb_f1_weighted"], 6) for e in evals}) > 1, "the figure never moved"
    best = max(evals, key=lambda e: e["eval_fpb_f1_weighted"])
    assert info["best_metric"] == best["eval_fpb_f1_weighted"]
    assert info["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")
    if fast_path:
        return
    run_evaluation(EvalConfig(model=str(tiny_model), adapter=str(out), datasets="fpb", split="validation",
                              dtype="fp32", merge_adapter=False, batch_size=32, output_dir=str(tmp_path / "eval")),
                   echo=lambda line: None)
    result = json.loads((tmp_path / "eval" / "fpb" / "result.json").read_text())
    assert result["num_rows"] == fpb_validation and result["split"] == "validation"
    assert result["metrics"]["f1_weighted"] == pytest.approx(best["eval_fpb_f1_weighted"], abs=1e-9)


def test_exclude_scored_texts_leaves_no_test_or_validation_text_in_the_mixture(data_dir):
    """FinGPT's splits repeat sentences: with ``exclude_scored_texts`` no text of a test or validation
    row reaches training, checked here by exact text and by `data stats`' leakage count."""
    from fingpt_hf.data.leakage import benchmark_leakage

    weights = {"datasets": [{"name": "fpb", "weight": 1}, {"name": "fiqa", "weight": 2},
                            {"name": "tfns", "weight": 1}, {"name": "nwgi", "weight": 1}]}
    plain, plain_report = build_mixture(MixtureConfig.from_dict(weights), data_dir)
    clean, report = build_mixture(MixtureConfig.from_dict({**weights, "exclude_scored_texts": True}), data_dir)
    scored = set()
    for name in ("fpb", "fiqa", "tfns"):
        scored |= set(load_benchmark(name, "test", data_dir)["input"]) | set(load_benchmark(name, "validation", data_dir)["input"])
    scored |= set(load_benchmark("nwgi", "test", data_dir)["input"])
    assert any(text in scored for text in plain["input"])  # the plain mixture has some (FiQA-SA: FinGPT's split)
    assert not any(text in scored for text in clean["input"])
    leakage = benchmark_leakage(data_dir, train_sets={"mixture": clean["input"]})
    assert all(test.leaked_rows == 0 for test in leakage.tests)
    dropped = {s.name: s.scored_texts_left_out for s in report.sources}
    before = {s.name: s.rows_in for s in plain_report.sources}
    assert dropped["fiqa"] >= 12 + 30 and dropped["fpb"] >= 1  # FiQA: 12 validation + most of 36 test texts
    assert all(s.rows_in == before[s.name] - dropped[s.name] for s in report.sources)
    assert any("rows left out: a test or validation text" in line for line in report.summary_lines())
