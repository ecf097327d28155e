"""recipes/sft.py and fingpt_hf.training: recipe parsing, pre-flight errors, output directory.

Training runs use a tiny random Llama built from a config (with the default model's tokenizer)
and a 32-64 row slice of the real FPB mirror, so each takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fingpt_hf.errors import FinGPTError
from fingpt_hf.training.checks import check_device_requests, resume_point, last_complete_checkpoint
from fingpt_hf.training.recipe import parse_sft_args, read_recipe_file
from fingpt_hf.training.run_info import RECIPE_FILE, RUN_INFO_FILE, read_run_info, recipe_hash, write_run_info
from tiny_models import save_tiny_llama, sft_script, tiny_sft_recipe

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").glob("*/sft_*.yaml"))  # training recipes (eval configs live beside them)
GPU_RECIPES = [p for p in RECIPES if p.parent.name != "smollm2-135m"]


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", default_model_path, tie_word_embeddings=True)


def parse(recipe: dict, tmp_path: Path, *extra: str):
    config = write_yaml(tmp_path / "recipe.yaml", recipe)
    return parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "out"), *extra])


def train(recipe: dict, tmp_path: Path, *extra: str) -> Path:
    parsed = parse(recipe, tmp_path, *extra)
    return sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit)


# -- the shipped recipes -------------------------------------------------------------------------

def test_every_shipped_recipe_parses():
    names = {p.relative_to(REPO / "recipes").as_posix() for p in RECIPES}
    assert {"baichuan2-7b/sft_lora.yaml", "chatglm2-6b/sft_lora.yaml", "chatglm2-6b/sft_qlora.yaml",
            "qwen-14b/sft_lora.yaml", "llama2-13b/sft_lora.yaml", "smollm2-135m/sft_lora.yaml"} <= names
    for path in RECIPES:
        parsed = parse_sft_args(["--config", str(path)])
        assert parsed.model_args.use_peft, path
        assert parsed.script_args.mixture_config().sources, path
        text = path.read_text()
        assert "accelerate launch" in text or "python recipes/sft.py" in text, f"{path}: no launch line"


@pytest.mark.parametrize("name", ["baichuan2-7b", "chatglm2-6b", "qwen-14b"])
def test_seed_hyperparameters(name):
    """The seed's setting: batch 4/device, 8 epochs, lr 2e-4, linear, fp16, save every 10%, keep 1."""
    parsed = parse_sft_args(["--config", str(REPO / "recipes" / name / "sft_lora.yaml")])
    args = parsed.training_args
    assert (args.per_device_train_batch_size, args.num_train_epochs, args.learning_rate) == (4, 8, 2e-4)
    assert args.lr_scheduler_type.value == "linear" and args.fp16 and not args.bf16
    assert (args.save_steps, args.save_total_limit) == (0.1, 1)


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.parent.name + "/" + p.name)
def test_gpu_recipes_are_refused_on_cpu(path):
    parsed = parse_sft_args(["--config", str(path)])
    with pytest.raises(FinGPTError, match="CUDA GPU"):
        check_device_requests(parsed.training_args, parsed.model_args, has_cuda=False)
    check_device_requests(parsed.training_args, parsed.model_args, has_cuda=True)


# -- bad input: clear errors before training ------------------------------------------------------

def test_unknown_recipe_key_names_the_key(tmp_path, tiny_model):
    config = write_yaml(tmp_path / "typo.yaml", tiny_sft_recipe(tiny_model, lerning_rate=1e-3))
    with pytest.raises(FinGPTError, match=r"typo.yaml: unknown recipe key 'lerning_rate' \(did you mean 'learning_rate'"):
        read_recipe_file(config)
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "sft.py"), "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown recipe key 'lerning_rate'" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_command_line_option(tmp_path, tiny_model):
    with pytest.raises(FinGPTError, match=r"unknown option --lora_rank \(did you mean 'lora_r'"):
        parse(tiny_sft_recipe(tiny_model), tmp_path, "--lora_rank", "4")


def test_command_line_overrides_the_recipe(tmp_path, tiny_model):
    parsed = parse(tiny_sft_recipe(tiny_model), tmp_path, "--learning_rate", "1e-4", "--lora_target_modules", "q_proj")
    assert parsed.training_args.learning_rate == 1e-4
    assert parsed.explicit["learning_rate"] == 1e-4 and parsed.explicit["max_steps"] == 4


def test_unknown_model_path(tmp_path, tiny_model):
    with pytest.raises(FinGPTError, match="model_name_or_path: .*does not exist"):
        train(tiny_sft_recipe(tiny_model, model_name_or_path=str(tmp_path / "nope")), tmp_path)
    with pytest.raises(FinGPTError, match="cannot load 'no-such-org/no-such-model'"):
        train(tiny_sft_recipe(tiny_model, model_name_or_path="no-such-org/no-such-model"), tmp_path)
    assert not (tmp_path / "out").exists()


def test_lora_targets_that_match_nothing(tmp_path, tiny_model):
    with pytest.raises(FinGPTError, match=r"\['query_key_value'\] match no module"):
        train(tiny_sft_recipe(tiny_model, lora_target_modules=["q_proj", "query_key_value"]), tmp_path)
    assert not (tmp_path / "out").exists()


def test_cuda_requests_on_cpu(tmp_path, tiny_model):
    with pytest.raises(FinGPTError, match="fp16: true"):
        train(tiny_sft_recipe(tiny_model, fp16=True), tmp_path)
    with pytest.raises(FinGPTError, match="bf16 mixed precision on a GPU"):
        parse(tiny_sft_recipe(tiny_model, bf16=True, use_cpu=False), tmp_path)
    parsed = parse(tiny_sft_recipe(tiny_model, load_in_4bit=True), tmp_path)
    with pytest.raises(FinGPTError, match="load_in_4bit"):
        check_device_requests(parsed.training_args, parsed.model_args, has_cuda=False)
    assert not (tmp_path / "out").exists()


def test_output_dir_of_another_run_or_foreign_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FinGPTError, match="not a fingpt-hf run"):
        resume_point(out, "sha256:a")
    assert resume_point(out, "sha256:a", overwrite=True) is None
    (out / "notes.txt").unlink()
    write_run_info(out, recipe={"lora_r": 8}, status="running", started_at="t", model={})
    # A run that saved nothing (it failed before its first checkpoint) does not block another recipe.
    assert resume_point(out, recipe_hash({"lora_r": 16})) is None
    same = recipe_hash({"lora_r": 8, "output_dir": "elsewhere"})  # run-control keys do not count
    assert resume_point(out, same) is None
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    with pytest.raises(FinGPTError, match="holds a different run"):
        resume_point(out, recipe_hash({"lora_r": 16}))
    (out / "checkpoint-4").mkdir()  # cut off by a kill: no trainer_state.json
    assert resume_point(out, same) == str(out / "checkpoint-2") == last_complete_checkpoint(out)
    with pytest.raises(FinGPTError, match="not a Trainer checkpoint"):
        resume_point(out, same, resume_from_checkpoint=str(out / "checkpoint-4"))
    write_run_info(out, recipe={"lora_r": 8}, status="completed", started_at="t", model={})
    with pytest.raises(FinGPTError, match="already holds this finished run"):
        resume_point(out, same)


# -- a real run -----------------------------------------------------------------------------------

def test_run_writes_loadable_adapter_and_metadata(tmp_path, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recipe = tiny_sft_recipe(tiny_model, eval_holdout=8)
    out = train(recipe, tmp_path)
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    info = read_run_info(out)
    assert info["status"] == "completed" and info["model"]["family"] == "llama"
    assert info["mixture"]["total_rows"] == 32 and info["eval_rows"] == 8
    assert info["mixture"]["content_hash"].startswith("sha256:")
    assert info["versions"]["trl"] and info["versions"]["peft"]
    # The CPU that ran it (its bf16 kernels decide the rounding), as /proc/cpuinfo and torch see it.
    assert info["cpu"]["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu"]["cores"] >= 1 and isinstance(info["cpu"]["amx"], bool)
    losses = [e["loss"] for e in info["log_history"] if "loss" in e]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert any("eval_loss" in e for e in info["log_history"])
    assert yaml.safe_load((out / RECIPE_FILE).read_text())["lora_r"] == 8
    # The adapter loads as it is, and it changed the model.
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([[1, 200, 300, 400]])
    before = base(ids).logits
    tuned = PeftModel.from_pretrained(base, out)
    assert not torch.allclose(tuned(ids).logits, before)
    # The same command again: the finished run is protected, --overwrite_output_dir retrains.
    with pytest.raises(FinGPTError, match="already holds this finished run"):
        train(recipe, tmp_path)
    train(recipe, tmp_path, "--overwrite_output_dir", "true")
    assert read_run_info(out)["status"] == "completed"


@pytest.mark.slow
def test_default_recipe_two_steps_offline(tmp_path, default_model_path):
    """The done-means check: the CPU recipe, two steps, offline; a loadable adapter results."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "smoke"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "sft.py"), "--config",
         str(REPO / "recipes" / "smollm2-135m" / "sft_lora.yaml"), "--max_steps", "2",
         "--output_dir", str(out), "--disable_tqdm", "true"],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / RUN_INFO_FILE).read_text())["global_step"] == 2
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(default_model_path), out)
    assert model(torch.tensor([[1, 2, 3]])).logits.shape[-1] == model.config.vocab_size


def test_accelerate_launch_with_one_process(tmp_path, tiny_model):
    """`accelerate launch recipes/sft.py ...` (one CPU process) trains and saves like `python recipes/sft.py`."""
    from peft import PeftConfig

    config = write_yaml(tmp_path / "recipe.yaml", tiny_sft_recipe(tiny_model))
    out = tmp_path / "launched"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
         str(REPO / "recipes" / "sft.py"), "--config", str(config), "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = read_run_info(out)
    assert info["status"] == "completed" and info["world_size"] == 1
    assert PeftConfig.from_pretrained(out).base_model_name_or_path == str(tiny_model)


def test_lora_top_layers_adapts_only_the_last_layers(tmp_path, tiny_model):
    from safetensors.torch import load_file

    out = train(tiny_sft_recipe(tiny_model, lora_top_layers=1), tmp_path)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [1]  # the tiny model has layers 0 and 1
    names = list(load_file(out / "adapter_model.safetensors"))
    assert names and all(".layers.1." in n for n in names), names
    with pytest.raises(FinGPTError, match="lora_top_layers: 3 is more than the model's 2 layers"):
        train(tiny_sft_recipe(tiny_model, lora_top_layers=3), tmp_path, "--overwrite_output_dir", "true")
    with pytest.raises(FinGPTError, match="lora_top_layers: -1"):
        parse(tiny_sft_recipe(tiny_model, lora_top_layers=-1), tmp_path)


def test_loraplus_gives_b_and_dora_magnitudes_ratio_times_the_rate(tmp_path, tiny_model):
    """LoRA+ moves B (and DoRA's magnitudes) at ``loraplus_lr_ratio`` times A's rate, as the trainer runs it.

    Adam's first update of an element is its rate times the sign of its gradient (m/sqrt(v) = g/|g|), so after one
    step of a constant schedule the largest change of B and of the magnitudes is the rate they got. B starts at zero
    and the magnitudes at the base weight's row norms (read from the tiny model itself); A gets no gradient at step 1
    (B is zero), so a 1-step run holds A's start, and its largest change by step 2 stays below its own rate."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    lr, ratio = 1.0e-3, 16.0
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()

    def run(steps: int, **extra) -> dict[str, torch.Tensor]:
        out = tmp_path / f"steps{steps}-{len(extra)}"
        recipe = tiny_sft_recipe(tiny_model, use_dora=True, learning_rate=lr, max_steps=steps,
                                 lora_target_modules=["gate_proj", "up_proj", "down_proj"], **extra)
        return load_file(train(recipe, tmp_path, "--output_dir", str(out)) / "adapter_model.safetensors")

    def largest_change(adapter: dict[str, torch.Tensor], part: str, start) -> float:
        return max((tensor - start(name)).abs().max().item() for name, tensor in adapter.items() if part in name)

    def row_norms(name: str) -> torch.Tensor:  # ...layers.0.mlp.gate_proj.lora_magnitude_vector -> that weight's
        key = name.removeprefix("base_model.model.").split(".lora_magnitude_vector")[0] + ".weight"
        return torch.linalg.norm(base[key], dim=1)

    zero = lambda name: 0.0  # noqa: E731 (B's start)
    plus, plain = run(1, loraplus_lr_ratio=ratio), run(1)
    assert any("lora_magnitude_vector" in name for name in plus)
    assert largest_change(plain, "lora_B", zero) == pytest.approx(lr, rel=1e-3)
    assert largest_change(plus, "lora_B", zero) == pytest.approx(ratio * lr, rel=1e-3)
    assert largest_change(plain, "lora_magnitude_vector", row_norms) == pytest.approx(lr, rel=1e-3)
    assert largest_change(plus, "lora_magnitude_vector", row_norms) == pytest.approx(ratio * lr, rel=1e-3)
    a_start = {name: t for name, t in plus.items() if "lora_A" in name}
    assert a_start and all(torch.equal(t, plain[name]) for name, t in a_start.items())  # same seed, A unmoved
    a_moved = largest_change(run(2, loraplus_lr_ratio=ratio), "lora_A", a_start.__getitem__)
    assert 0 < a_moved < lr  # A's own rate: at B's it would be up to 16 times this
    with pytest.raises(FinGPTError, match="loraplus_lr_ratio: 0.5 is out of range"):
        parse(tiny_sft_recipe(tiny_model, loraplus_lr_ratio=0.5), tmp_path)
    with pytest.raises(FinGPTError, match="loraplus_lr_ratio: optim 'lomo' cannot be set up here"):
        train(tiny_sft_recipe(tiny_model, loraplus_lr_ratio=ratio, optim="lomo"), tmp_path,
              "--output_dir", str(tmp_path / "lomo"))  # lomo_optim is not installed
    assert not (tmp_path / "lomo").exists()  # refused before the run began


def test_loraplus_refuses_an_optimizer_that_builds_its_own_groups(tmp_path, tiny_model, monkeypatch):
    """LOMO, GaLore and the layer-wise optimizers hand transformers their own groups (``model``, ``params``,
    ``optimizer_dict``), which would drop LoRA+'s; their packages are not installed here, so transformers'
    answer for one is stood in for."""
    import torch
    from transformers import Trainer

    parsed = parse(tiny_sft_recipe(tiny_model, loraplus_lr_ratio=16.0), tmp_path)
    monkeypatch.setattr(Trainer, "get_optimizer_cls_and_kwargs",
                        staticmethod(lambda args, model=None: (torch.optim.SGD, {"lr": 1e-3, "model": model})))
    with pytest.raises(FinGPTError, match="builds its own parameter groups"):
        sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-trainer", "trl-sfttrainer"])
def test_ema_decay_saves_the_average_of_the_weights_after_each_step(tmp_path, tiny_model, fast_path):
    """With ``ema_decay`` the saved adapter is the average of the weights after each optimizer step (the first
    step's weights, then ``d * average + (1 - d) * weights``), computed here from the weights a callback of the
    test copies after every step; DoRA's magnitudes are averaged like A and B. Without it, the last step's. With
    FastSFTTrainer and with TRL's own SFTTrainer (``fast_path: false``)."""
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    decay, steps = 0.6, 5

    class CopyWeights(TrainerCallback):
        def __init__(self):
            self.after_step: list[dict[str, torch.Tensor]] = []

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.after_step.append({name.replace(".default", ""): p.detach().clone()
                                    for name, p in model.named_parameters() if p.requires_grad})

    def run(**extra):
        copies = CopyWeights()
        recipe = tiny_sft_recipe(tiny_model, use_dora=True, max_steps=steps, learning_rate=1e-2,
                                 lr_scheduler_type="constant", lora_target_modules=["gate_proj", "down_proj"],
                                 fast_path=fast_path, **extra)
        parsed = parse(recipe, tmp_path, "--output_dir", str(tmp_path / f"ema{len(extra)}"))
        out = sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args,
                                 recipe=parsed.explicit, callbacks=[copies])
        return load_file(out / "adapter_model.safetensors"), copies.after_step

    def saved_name(name: str) -> str:  # peft saves a magnitude vector's weight under the module's name
        return name.removesuffix(".weight") if "lora_magnitude_vector" in name else name

    averaged, after_step = run(ema_decay=decay)
    assert len(after_step) == steps
    expected = dict(after_step[0])
    for weights in after_step[1:]:
        expected = {name: decay * expected[name] + (1 - decay) * w for name, w in weights.items()}
    assert {saved_name(n) for n in expected} == set(averaged) and any("magnitude" in n for n in averaged)
    for name, value in expected.items():
        torch.testing.assert_close(averaged[saved_name(name)], value, rtol=1e-5, atol=1e-7)
    last = {saved_name(n): w for n, w in after_step[-1].items()}
    assert max((averaged[n] - w).abs().max().item() for n, w in last.items()) > 1e-3  # not the last step's
    plain, plain_steps = run()
    for name, value in plain_steps[-1].items():
        torch.testing.assert_close(plain[saved_name(name)], value, rtol=0, atol=0)
    with pytest.raises(FinGPTError, match="ema_decay: 1.0 is out of range"):
        parse(tiny_sft_recipe(tiny_model, ema_decay=1.0), tmp_path)
    with pytest.raises(FinGPTError, match="ema_decay cannot be used with load_best_model_at_end"):
        parse(tiny_sft_recipe(tiny_model, ema_decay=0.9, load_best_model_at_end=True, eval_holdout=8,
                              eval_strategy="steps", save_strategy="steps"), tmp_path)
    with pytest.raises(FinGPTError, match="ema_decay cannot be used with deepspeed"):
        parse(tiny_sft_recipe(tiny_model, ema_decay=0.9, deepspeed=str(REPO / "ds_configs" / "zero2.json")), tmp_path)


def test_ema_decay_refuses_an_adapter_that_is_not_float32():
    """A bfloat16 average would round away steps of ``1 - decay``: refused when training starts, naming the option."""
    import torch

    from fingpt_hf.training.ema import AdapterEMACallback

    weights = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    with pytest.raises(FinGPTError, match="ema_decay: the trained weights are torch.bfloat16"):
        AdapterEMACallback(0.9).on_train_begin(None, None, None, optimizer=torch.optim.SGD([weights], lr=0.1))
    AdapterEMACallback(0.9).on_train_begin(None, None, None, optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(4))], lr=0.1))


def test_backward_stops_below_the_lowest_adapted_layer(tiny_model):
    """With LoRA on the top layer only and no activation checkpointing, nothing below it joins the
    autograd graph: that is where lora_top_layers' speed comes from."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from fingpt_hf.families.lora import build_lora_config, top_layers

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model = get_peft_model(model, build_lora_config(model, r=4, layers_to_transform=top_layers(model, 1)))
    seen = {}
    for i, layer in enumerate(model.get_base_model().model.layers):
        layer.register_forward_hook(lambda mod, args, out, i=i: seen.__setitem__(
            i, (out[0] if isinstance(out, tuple) else out).requires_grad))
    model(torch.tensor([[1, 200, 300, 400]])).logits.sum().backward()
    assert seen == {0: False, 1: True}


def test_neftune_sources_noise_only_the_named_sources_rows(tmp_path, tiny_model, data_dir):
    """``neftune_sources: [fpb]`` on a mixture of FPB and FiQA-SA rows: in every training batch, seen by a hook
    after the noise, exactly the rows whose input text is an FPB train text (told from the data files, not from
    the flags) carry noise, within NEFTune's bound alpha / sqrt(L x d); the others are their plain embeddings.
    Bad settings are refused before anything loads, naming the option."""
    import math

    import torch
    from transformers import AutoTokenizer, TrainerCallback

    from fingpt_hf.data.benchmarks import load_benchmark

    fpb_texts = set(load_benchmark("fpb", "train", data_dir=data_dir)["input"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    alpha, seen = 5.0, []

    class SeeEmbeddings(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            embeddings = model.get_input_embeddings()

            def look(module, inputs, out):
                if module.training:
                    seen.append((inputs[0].detach(), (out - module.weight[inputs[0]]).detach()))

            self.handle = embeddings.register_forward_hook(look)

        def on_train_end(self, args, state, control, **kwargs):
            self.handle.remove()

    mixture = {"datasets": [{"name": "fpb", "weight": 1}, {"name": "fiqa", "weight": 1}], "max_samples": 48}
    recipe = tiny_sft_recipe(tiny_model, dataset_mixture=mixture, neftune_noise_alpha=alpha,
                             neftune_sources=["fpb"], max_steps=3, per_device_train_batch_size=8)
    parsed = parse(recipe, tmp_path)
    sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit,
                       callbacks=[SeeEmbeddings()])
    assert len(seen) == 3
    kinds = []
    for ids, noise in seen:
        bound = alpha / math.sqrt(ids.shape[1] * noise.shape[-1])
        for row in range(ids.shape[0]):
            text = tokenizer.decode(ids[row], skip_special_tokens=True).split("Input: ", 1)[1].split("\nAnswer:")[0]
            is_fpb = text in fpb_texts
            kinds.append(is_fpb)
            drawn = noise[row].abs().max().item()
            assert (0 < drawn <= bound * (1 + 1e-5)) if is_fpb else drawn == 0, (row, text[:40], drawn, bound)
    assert any(kinds) and not all(kinds)
    for bad, message in (({"neftune_noise_alpha": None}, "neftune_sources needs neftune_noise_alpha"),
                         ({"neftune_sources": ["fpb", "tfns"]}, "'tfns' is not a source of dataset_mixture"),
                         ({"fast_path": False}, "neftune_sources needs fast_path: true"),
                         ({"padding_free": True}, "neftune_sources cannot be used with padding_free")):
        with pytest.raises(FinGPTError, match=message):
            parse({**recipe, **bad}, tmp_path)
