"""One validation layer: every bad value is refused at parse time, named by its file/flag, value and
allowed range, with nothing written; a run that fails before its first step does not block the
corrected command."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fingpt_hf.errors import FinGPTError
from fingpt_hf.training.recipe import parse_sft_args
from fingpt_hf.training.run_info import read_run_info
from tiny_models import save_tiny_llama, tiny_sft_recipe

REPO = Path(__file__).resolve().parent.parent


def load_recipe_main():
    spec = importlib.util.spec_from_file_location("sft_recipe_script", REPO / "recipes" / "sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", default_model_path, tie_word_embeddings=True)


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


# (recipe overrides, the text that must follow "FILE: ", what the error must say is allowed)
BAD_VALUES = [
    ({"per_device_train_batch_size": -1}, "per_device_train_batch_size: -1", "an integer >= 1"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps: 0", "an integer >= 1"),
    ({"max_steps": 0}, "max_steps: 0", "-1 (train for num_train_epochs) or an integer >= 1"),
    ({"max_steps": -1, "num_train_epochs": 0}, "num_train_epochs: 0", "a number > 0"),
    ({"learning_rate": -1.0e-3}, "learning_rate: -0.001", "a number > 0"),
    ({"warmup_steps": -5}, "warmup_steps: -5", "0, a fraction of the run in (0, 1)"),
    ({"weight_decay": -0.1}, "weight_decay: -0.1", "a number >= 0"),
    ({"label_smoothing_factor": 1.0}, "label_smoothing_factor: 1.0", "a number in [0, 1)"),
    ({"lora_r": 0}, "lora_r: 0", "an integer >= 1"),
    ({"lora_alpha": 0}, "lora_alpha: 0", "a number > 0"),
    ({"lora_dropout": 2.0}, "lora_dropout: 2.0", "a number in [0, 1)"),
    ({"save_strategy": "steps", "save_steps": 0}, "save_steps: 0", "a whole number of steps >= 1"),
    ({"save_strategy": "steps", "save_steps": -10}, "save_steps: -10", "a whole number of steps >= 1"),
    ({"logging_steps": 0}, "logging_steps: 0", "a whole number of steps >= 1"),
    ({"max_length": 1}, "max_length: 1", "an integer >= 2"),
    ({"eval_holdout": 2.5}, "eval_holdout: 2.5", "a fraction in (0, 1) or a whole number of rows"),
    ({"lora_top_layers": -2}, "lora_top_layers: -2", "0 (all layers) or a layer count"),
    ({"dtype": "float17"}, "dtype: 'float17'", "auto, float16, bfloat16, float32"),
    ({"lr_scheduler_type": "fastest"}, "lr_scheduler_type: 'fastest'", "linear, cosine"),
    ({"save_strategy": "sometimes"}, "save_strategy: 'sometimes'", "no, steps, epoch, best"),
    ({"prompt_style": "poem"}, "prompt_style: 'poem'", "fingpt, chat"),
    ({"learning_rate": "fast"}, "learning_rate: 'fast' is not a number", "a number > 0"),
    ({"lora_r": 2.5}, "lora_r: 2.5 is not an integer", "an integer >= 1"),
    ({"use_peft": "maybe"}, "use_peft: 'maybe' is not a boolean", "true or false"),
]


@pytest.mark.parametrize("overrides,named,allowed", BAD_VALUES, ids=[next(iter(b[0])) + "=" + str(b[0])
                                                                       for b in BAD_VALUES])
def test_bad_recipe_value_is_refused_before_any_work(tmp_path, tiny_model, overrides, named, allowed):
    config = write_recipe(tmp_path / "bad.yaml", tiny_sft_recipe(tiny_model, **overrides))
    out = tmp_path / "out"
    with pytest.raises(FinGPTError) as caught:
        parse_sft_args(["--config", str(config), "--output_dir", str(out)])
    message = str(caught.value)
    assert f"{config}: {named}" in message, message
    assert allowed in message, message
    assert not out.exists()


def test_recipe_script_reports_the_file_not_the_usage(tmp_path, tiny_model):
    """A wrong type in the file used to print argparse's whole usage text, naming no file."""
    config = write_recipe(tmp_path / "typed.yaml", tiny_sft_recipe(tiny_model, learning_rate="fast"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "sft.py"), "--config", str(config),
                           "--output_dir", str(out)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert f"error: {config}: learning_rate: 'fast' is not a number" in proc.stderr
    assert "usage:" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("flags,expected", [
    (["--lora_r", "0"], "--lora_r: 0 is out of range (allowed: an integer >= 1)"),
    (["--learning_rate", "fast"], "--learning_rate: invalid float value: 'fast'"),
    (["--dtype", "float17"], "--dtype: invalid choice: 'float17'"),
    (["--save_steps", "0"], "--save_steps: 0.0 is out of range with save_strategy: steps"),
    (["--per_device_train_batch_size", "-4"], "--per_device_train_batch_size: -4 is out of range"),
])
def test_bad_command_line_value_names_the_flag(tmp_path, tiny_model, capsys, flags, expected):
    config = write_recipe(tmp_path / "ok.yaml", tiny_sft_recipe(tiny_model, save_strategy="steps", save_steps=2))
    out = tmp_path / "out"
    assert load_recipe_main()(["--config", str(config), "--output_dir", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and "usage:" not in err, err
    assert not out.exists()


def test_every_problem_is_listed_at_once(tmp_path, tiny_model):
    config = write_recipe(tmp_path / "many.yaml", tiny_sft_recipe(tiny_model, lora_r=0, lora_dropout=1.0))
    with pytest.raises(FinGPTError, match="the recipe has 3 invalid values") as caught:
        parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "out"), "--learning_rate", "-1"])
    message = str(caught.value)
    assert f"{config}: lora_r: 0" in message and f"{config}: lora_dropout: 1.0" in message
    assert "--learning_rate: -1.0 is out of range" in message


def test_save_steps_zero_is_fine_when_saving_is_off(tmp_path, tiny_model):
    config = write_recipe(tmp_path / "nosave.yaml", tiny_sft_recipe(tiny_model, save_strategy="no", save_steps=0))
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "out")])
    assert parsed.training_args.save_strategy.value == "no"


def test_paths_have_the_right_kind(tmp_path, tiny_model):
    config = write_recipe(tmp_path / "paths.yaml", tiny_sft_recipe(tiny_model))
    base = ["--config", str(config), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(FinGPTError, match=r"--data_dir: '.*missing' is not a directory \(allowed: a readable directory"):
        parse_sft_args([*base, "--data_dir", str(tmp_path / "missing")])
    (tmp_path / "ds.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(FinGPTError, match=r"--deepspeed: '.*ds.json' is not valid JSON"):
        parse_sft_args([*base, "--deepspeed", str(tmp_path / "ds.json")])
    with pytest.raises(FinGPTError, match=r"--deepspeed: '.*nope.json' is not a file \(allowed: a readable DeepSpeed"):
        parse_sft_args([*base, "--deepspeed", str(tmp_path / "nope.json")])
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(FinGPTError, match=r"--output_dir: '.*a-file/run' cannot be created: .*a-file is not a directory"):
        parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "a-file" / "run")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "ds.json", "paths.yaml"]  # no probe left


def test_output_dir_that_cannot_be_written(tmp_path, tiny_model):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        config = write_recipe(tmp_path / "r.yaml", tiny_sft_recipe(tiny_model))
        with pytest.raises(FinGPTError, match=r"--output_dir: '.*locked/run' is not writable"):
            parse_sft_args(["--config", str(config), "--output_dir", str(locked / "run")])
    finally:
        locked.chmod(0o700)


def test_run_that_fails_before_its_first_step_does_not_block_the_corrected_one(tmp_path, tiny_model):
    """A failure after fingpt_run.json says "running" but before any checkpoint (here: raised at the
    start of training) leaves a directory that the corrected command, another recipe, trains in."""
    from transformers import TrainerCallback

    class FailAtTrainBegin(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            raise RuntimeError("simulated failure before the first step")

    main = load_recipe_main()
    out = tmp_path / "out"
    first = write_recipe(tmp_path / "first.yaml", tiny_sft_recipe(tiny_model, lora_r=8))
    with pytest.raises(RuntimeError, match="simulated failure"):
        main(["--config", str(first), "--output_dir", str(out)], callbacks=[FailAtTrainBegin()])
    failed = read_run_info(out)
    assert failed["status"] == "running" and not list(out.glob("checkpoint-*"))

    corrected = write_recipe(tmp_path / "corrected.yaml", tiny_sft_recipe(tiny_model, lora_r=4))
    assert main(["--config", str(corrected), "--output_dir", str(out)]) == 0
    info = read_run_info(out)
    assert info["status"] == "completed" and info["recipe_hash"] != failed["recipe_hash"]
    assert info["resumed_from"] is None
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert yaml.safe_load((out / "recipe.yaml").read_text())["lora_r"] == 4
