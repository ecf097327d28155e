"""Model cards: YAML front matter parsed back by huggingface_hub, body content, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from fingpt_hf.data.benchmarks import dataset_reference
from fingpt_hf.data.prompts import FINGPT_TEMPLATE
from fingpt_hf.errors import FinGPTError
from fingpt_hf.hub.card import METRICS, is_generated_card, render_model_card, write_model_card

METRIC_KEYS = ("accuracy", "f1_macro", "f1_micro", "f1_weighted", "invalid_rate")


def result(name: str, values: tuple[float, ...], num_rows: int) -> dict:
    ref = dataset_reference(name)
    metrics = dict(zip(METRIC_KEYS, values))
    metrics["per_class"] = {label: {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 5}
                            for label in ("negative", "neutral", "positive")}
    metrics["confusion_matrix"] = {"labels": ["negative", "neutral", "positive"], "matrix": [[1, 0, 0]] * 3}
    return {"schema_version": 1, "model": {"name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": None,
                                           "hash": None},
            "adapter": None, "dataset": name, "dataset_id": ref["dataset_id"], "dataset_config": ref["dataset_config"],
            "split": "test", "num_rows": num_rows, "mode": "generate", "parser": "fingpt", "prompt_style": "fingpt",
            "metrics": metrics, "examples_per_second": 3.5, "seed": 42, "versions": {"transformers": "5.0"},
            "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:10:00+00:00"}


@pytest.fixture()
def results() -> dict:
    return {"schema_version": 1, "run": {"model": "HuggingFaceTB/SmolLM2-135M-Instruct"},
            "results": {"fpb": result("fpb", (0.8614, 0.8421, 0.8614, 0.8597, 0.0017), 1212),
                        "fiqa": result("fiqa", (0.7818, 0.6902, 0.7818, 0.7733, 0.0), 275),
                        "tfns": result("tfns", (0.8827, 0.8512, 0.8827, 0.8809, 0.0042), 2388),
                        "nwgi": result("nwgi", (0.6123, 0.6011, 0.6123, 0.6188, 0.0101), 4047)}}


TRAINING = {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "recipe": {"learning_rate": 1e-4, "num_train_epochs": 1, "lora": {"r": 8, "target_modules": ["q_proj"]}},
            "mixture": {"fpb": {"rows": 3634, "weight": 6}, "fiqa": {"rows": 938, "weight": 21},
                        "tfns": {"rows": 9543, "weight": 2}},
            "versions": {"peft": "0.21.2", "trl": "1.16.0"}}
PUBLISHED = [{"name": "FinGPT v3.3 (Llama2-13B, LoRA)", "source": "FinGPT README",
              "metrics": {"fpb": {"f1_weighted": 0.882}, "fiqa": {"f1_weighted": 0.874},
                          "tfns": {"f1_weighted": 0.903}, "nwgi": {"f1_weighted": 0.643}}}]


def test_model_index_carries_every_metric(results, tmp_path):
    card = render_model_card(results=results, training_info=TRAINING, published=PUBLISHED, repo_id="me/fingpt-smollm2")
    path = tmp_path / "README.md"
    card.save(path)
    metadata = metadata_load(path)
    assert metadata["library_name"] == "peft"
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert metadata["license"] == "cc-by-nc-sa-3.0"  # FPB is in the training mixture
    assert {"peft", "lora", "fingpt"} <= set(metadata["tags"])
    assert metadata["datasets"] == [dataset_reference(n)["dataset_id"] for n in ("fpb", "fiqa", "tfns")]

    name, eval_results = model_index_to_eval_results(metadata["model-index"])
    assert name == "fingpt-smollm2"
    assert len(eval_results) == len(METRICS) * len(results["results"])
    by_key = {(r.dataset_type, r.dataset_config, r.metric_name): r for r in eval_results}
    names = {"accuracy": "Accuracy", "f1_macro": "F1 (macro)", "f1_micro": "F1 (micro)",
             "f1_weighted": "F1 (weighted)", "invalid_rate": "Invalid answer rate"}
    for dataset in results["results"].values():
        for key in METRIC_KEYS:
            found = by_key[(dataset["dataset_id"], dataset["dataset_config"], names[key])]
            assert found.metric_value == dataset["metrics"][key]
            assert found.task_type == "text-classification" and found.dataset_split == "test"
            if key.startswith("f1_"):
                assert found.metric_type == "f1" and found.metric_args == {"average": key[3:]}

    reloaded = ModelCard.load(path)  # the same card through huggingface_hub's own loader
    assert reloaded.data.eval_results == card.data.eval_results


def test_body_has_results_beside_published_and_how_to_load(results):
    text = render_model_card(results=results, training_info=TRAINING, published=PUBLISHED,
                             repo_id="me/fingpt-smollm2").text
    assert "| FPB | 1212 | generate | 86.1 | 84.2 | 86.1 | 86.0 | 0.2 |" in text
    assert "| model | FPB | FiQA-SA | TFNS | NWGI |" in text
    assert "| **fingpt-smollm2** (this adapter) | 86.0 | 77.3 | 88.1 | 61.9 |" in text
    assert "| FinGPT v3.3 (Llama2-13B, LoRA) | 88.2 | 87.4 | 90.3 | 64.3 |" in text
    assert "| fpb | 3634 | 6 |" in text and "14115 training rows in all" in text
    assert "| learning_rate | 0.0001 |" in text and "| lora.target_modules | q_proj |" in text
    assert 'PeftModel.from_pretrained(base, "me/fingpt-smollm2")' in text
    assert FINGPT_TEMPLATE.encode("unicode_escape").decode() in text  # the exact FinGPT prompt
    assert "CC BY-NC-SA 3.0" in text and "no commercial use" in text
    assert "- peft 0.21.2" in text


def test_shipped_published_rows_are_the_default(results):
    from fingpt_hf.evaluation.published import load_published

    shipped = load_published()
    text = render_model_card(results=results, repo_id="me/x").text
    seed = next(row for row in shipped if "Baichuan2-7B" in row.name)
    cells = " | ".join(f"{100 * seed.scores[n]['f1_weighted']:.1f}" for n in ("fpb", "fiqa", "tfns", "nwgi"))
    assert f"| {seed.name} | {cells} |" in text  # the seed's Baichuan2-7B row, beside ours
    assert "### F1 (weighted) beside published results" in text
    assert "beside published" not in render_model_card(results=results, published=[]).text


def test_defaults_without_training_or_results(tmp_path):
    card = render_model_card(results=None, training_info={"base_model": str(tmp_path)})
    assert card.data.base_model is None  # a local path is not a Hub id
    assert card.data.license == "apache-2.0" and card.data.eval_results is None
    assert "not been evaluated yet" in card.text and "did not record its data mixture" in card.text
    assert "No training metadata" in render_model_card(results=None).text
    assert render_model_card(results=None, license="mit").data.license == "mit"


def test_evaluated_on_fpb_only_mentions_the_licence(results):
    card = render_model_card(results=results, training_info={"mixture": {"tfns": {"rows": 9543, "weight": 1}}})
    assert card.data.license == "apache-2.0"
    assert "CC BY-NC-SA 3.0 (non-commercial use only)" in card.text


def test_write_model_card_reads_the_output_dir(results, tmp_path):
    out = tmp_path / "run"
    (out / "eval" / "fpb").mkdir(parents=True)
    (out / "eval" / "results.json").write_text(json.dumps(results))
    (out / "eval" / "fpb" / "confusion_matrix.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (out / "fingpt_run.json").write_text(json.dumps(TRAINING))
    (out / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["v_proj", "q_proj"],
         "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}))
    path = write_model_card(out, repo_id="me/run")
    assert path == out / "README.md"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    text = path.read_text()
    assert is_generated_card(text)
    assert "rank 8, alpha 16, dropout 0.05; target modules: q_proj, v_proj" in text
    assert "[FPB](eval/fpb/confusion_matrix.png)" in text
    assert len(ModelCard.load(path).data.eval_results) == len(METRICS) * 4


def test_hand_written_card_is_not_generated():
    assert not is_generated_card("---\nlicense: mit\n---\n# My adapter\n")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(schema_version=2), "schema version 2 is newer"),
    (lambda r: r["results"]["fiqa"]["metrics"].update(f1_macro=86.1), "'fiqa' metric 'f1_macro'"),
    (lambda r: r["results"]["tfns"].pop("metrics"), "(results.tfns): result is missing key(s) metrics"),
    (lambda r: r["results"]["nwgi"].update(dataset_id=r["results"]["fpb"]["dataset_id"],
                                           dataset_config="sentences_50agree"), "'fpb' and 'nwgi'"),
])
def test_bad_results_are_clear_errors(results, mutate, message):
    mutate(results)
    with pytest.raises(FinGPTError, match=re.escape(message)):
        render_model_card(results=results)


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(FinGPTError, match=r"results\.json: not valid JSON \(.*line 1 column 2"):
        render_model_card(tmp_path)
    with pytest.raises(FinGPTError, match="--repo-id"):
        render_model_card(results=None, repo_id="not a repo")
    with pytest.raises(FinGPTError, match="does not exist"):
        render_model_card(tmp_path / "missing")


def test_template_is_packaged():
    from fingpt_hf.hub.card import TEMPLATE_PATH

    assert TEMPLATE_PATH.is_file() and TEMPLATE_PATH.suffix == ".j2"
    assert TEMPLATE_PATH.is_relative_to(Path(__file__).resolve().parent.parent / "fingpt_hf")


def test_adapter_on_a_converted_base_names_the_original(results):
    """An adapter trained on a `fingpt-hf model convert` checkpoint: the card's base_model is the
    original Hub id, and it says how to make the same conversion (with the pinned revision)."""
    info = {"model": {"name_or_path": "models/qwen-14b", "family": "qwen-native",
                      "converted_from": {"family": "qwen", "source": "Qwen/Qwen-14B", "revision": "c4051215"}},
            "base_model": "models/qwen-14b"}
    card = render_model_card(results=results, training_info=info)
    assert card.data.base_model == "Qwen/Qwen-14B"
    assert "Qwen/Qwen-14B (revision c4051215), converted to a native transformers checkpoint" in card.text
    assert "fingpt-hf model convert Qwen/Qwen-14B --revision c4051215 --output CONVERTED_DIR" in card.text
    assert 'AutoModelForCausalLM.from_pretrained("CONVERTED_DIR")' in card.text
