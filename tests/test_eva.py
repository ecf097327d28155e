"""``lora_init: eva`` (fingpt_hf/training/eva.py): LoRA's A from the principal directions of each adapted
layer's inputs, computed on the base model before the trainer wraps it, loaded into the trainer's PeftModel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fingpt_hf.errors import FinGPTError
from tiny_models import save_tiny_llama, sft_script, tiny_sft_recipe
from test_sft_recipe import parse, train

MLP = ["gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_path) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", default_model_path, tie_word_embeddings=True)


def test_eva_directions_are_the_principal_directions_of_the_layer_inputs(default_model_path, data_dir):
    """On the embedded SmolLM2-135M and one batch of 16 real FPB sentences (EVA cycles the loader, so it sees that
    batch until its directions stop moving), A's first rows are the leading right-singular vectors of the centred
    inputs of the layer over the batch's non-pad tokens: computed here by torch.linalg.svd from inputs a hook of
    the test collects, in float64."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fingpt_hf.data.benchmarks import load_benchmark
    from fingpt_hf.training.collator import AnswerOnlyCollator
    from fingpt_hf.training.eva import compute_eva, eva_config

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    model = AutoModelForCausalLM.from_pretrained(default_model_path, dtype=torch.float32).eval()
    texts = load_benchmark("fpb", "train", data_dir=data_dir)["input"][:16]
    rows = [{"input_ids": ids, "labels": ids} for ids in tokenizer(texts).input_ids]
    collator = AnswerOnlyCollator(pad_token_id=tokenizer.pad_token_id, padding_side="right")
    config = LoraConfig(r=8, target_modules=["gate_proj", "down_proj"], init_lora_weights="eva",
                        eva_config=eva_config())
    result = compute_eva(model, config, rows, collator, batch_size=16)
    assert len(result.state_dict) == 2 * model.config.num_hidden_layers and result.batches >= 2
    assert result.summary()["lora_init"] == "eva" and result.seconds > 0

    batch = collator(rows)
    real = batch["attention_mask"].bool()
    assert not real.all()  # the batch has padding, which EVA must leave out
    names = ["model.layers.0.mlp.gate_proj", "model.layers.15.mlp.down_proj", "model.layers.29.mlp.gate_proj"]
    inputs: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda module, args, out, name=name: inputs.__setitem__(name, args[0][real])) for name in names]
    with torch.no_grad():
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    for hook in hooks:
        hook.remove()
    for name in names:
        x = inputs[name].double()
        _, _, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
        a = result.state_dict[name].double()
        assert a.shape == (8, x.shape[1])
        cosines = (a[:4] * vh[:4]).sum(1).abs()
        assert (cosines > 0.999).all(), (name, cosines)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-trainer", "trl-sfttrainer"])
def test_a_trained_adapter_starts_from_eva(tmp_path, tiny_model, fast_path):
    """Through recipes/sft.py: A gets no gradient at the first step (B is 0), so a 1-step run saves A as it
    started. With ``lora_init: eva`` those rows are orthonormal (principal directions); with the default init they
    are Kaiming-uniform draws (row norms near sqrt(1/3) for these 32 inputs). The run records what EVA cost, its
    adapter config says how A started, and PeftModel.from_pretrained loads it."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    def a_matrices(**extra) -> tuple[Path, list[torch.Tensor]]:
        out = tmp_path / f"run-{len(extra)}"
        recipe = tiny_sft_recipe(tiny_model, use_dora=True, lora_target_modules=MLP, max_steps=1,
                                 loraplus_lr_ratio=16.0, fast_path=fast_path, **extra)
        adapter = train(recipe, tmp_path, "--output_dir", str(out))
        weights = load_file(adapter / "adapter_model.safetensors")
        return adapter, [w for name, w in weights.items() if "lora_A" in name]

    eva_dir, eva = a_matrices(lora_init="eva")
    _, default = a_matrices()
    assert len(eva) == len(default) == 3 * 2  # three projections in each of the tiny model's 2 layers
    for a in eva:
        assert torch.allclose(a @ a.T, torch.eye(a.shape[0]), atol=1e-4)
    for a in default:
        assert not torch.allclose(a @ a.T, torch.eye(a.shape[0]), atol=0.1)
    info = json.loads((eva_dir / "fingpt_run.json").read_text())
    assert info["lora_init"] == "eva" and info["eva_seconds"] > 0 and info["eva_batches"] >= 2
    assert json.loads((eva_dir / "adapter_config.json").read_text())["init_lora_weights"] == "eva"
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), eva_dir)
    saved = load_file(eva_dir / "adapter_model.safetensors")
    for name, weight in saved.items():
        if "lora_A" in name:
            assert torch.equal(loaded.get_parameter(name.replace(".weight", ".default.weight")), weight)


def test_default_init_leaves_the_lora_config_as_it_was_and_bad_values_are_refused(tmp_path, tiny_model):
    """``lora_init`` unset (the shipped recipe) builds the LoraConfig of the runs before it existed: peft's default
    init, no EVA config; an unknown value is refused at parsing, naming the option and the choices."""
    from transformers import AutoTokenizer

    from fingpt_hf.training.sft import load_training_model, prepare_run

    parsed = parse(tiny_sft_recipe(tiny_model, use_dora=True, lora_target_modules=MLP), tmp_path)
    assert parsed.script_args.lora_init == "default"
    plan = prepare_run(parsed.script_args, parsed.training_args, parsed.model_args, parsed.explicit)
    _, config = load_training_model(plan, AutoTokenizer.from_pretrained(tiny_model))
    assert config.init_lora_weights is True and config.eva_config is None
    with pytest.raises(FinGPTError, match="lora_init: 'pissa' is not one of: default, eva"):
        parse(tiny_sft_recipe(tiny_model, lora_init="pissa"), tmp_path)


def test_eva_layers_must_be_the_trainers_lora_layers(tiny_model):
    """EVA computed for other layers than the trainer's LoRA layers is refused: peft would give the layers it
    lacks the default init without an error."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fingpt_hf.training.eva import EvaResult, eva_config, load_eva

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    hidden = model.config.hidden_size
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["gate_proj", "up_proj"],
                                                  init_lora_weights="eva", eva_config=eva_config()))
    only_gate = EvaResult({f"model.layers.{i}.mlp.gate_proj": torch.eye(4, hidden) for i in range(2)}, 1.0, 2)
    with pytest.raises(FinGPTError, match="2 LoRA layers not computed"):
        load_eva(peft_model, only_gate)


def test_a_resumed_run_does_not_compute_eva_again(tmp_path, tiny_model):
    """A run killed after a checkpoint resumes from it: the checkpoint holds the trained A, so EVA is skipped."""
    from transformers import AutoTokenizer

    from fingpt_hf.training.sft import compute_lora_init, load_training_model, prepare_run

    parsed = parse(tiny_sft_recipe(tiny_model, lora_init="eva", lora_target_modules=MLP), tmp_path)
    plan = prepare_run(parsed.script_args, parsed.training_args, parsed.model_args, parsed.explicit)
    model, config = load_training_model(plan, AutoTokenizer.from_pretrained(tiny_model))
    assert config.init_lora_weights == "eva"
    plan.resume = str(tmp_path / "out" / "checkpoint-2")
    assert compute_lora_init(plan, model, config, [], None) is None and plan.lora_init == {}
