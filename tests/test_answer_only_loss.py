"""The batches the trainer really trains on carry loss on the answer and EOS only.

TRL builds labels from ``completion_mask`` only for data sets it recognises as prompt-completion;
a regression here silently trains on the whole prompt, so this inspects the real dataloader.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer, TrainerCallback

from fingpt_hf.data.labels import LABELS
from fingpt_hf.training.recipe import parse_sft_args
from tiny_models import save_tiny_llama, sft_script, tiny_sft_recipe


class FirstBatches(TrainerCallback):
    """Keeps two batches of the trainer's own dataloader."""

    def __init__(self):
        self.batches = []

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        for batch in train_dataloader:
            self.batches.append(batch)
            if len(self.batches) == 2:
                break


@pytest.mark.parametrize("fast_path", [True, False])
def test_trainer_batches_carry_loss_on_answer_and_eos_only(tmp_path, default_model_path, fast_path):
    model = save_tiny_llama(tmp_path / "llama", default_model_path, tie_word_embeddings=True)
    recipe = tiny_sft_recipe(model, max_steps=1, fast_path=fast_path)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    parsed = parse_sft_args(["--config", str(config), "--output_dir", str(tmp_path / "out")])
    seen = FirstBatches()
    sft_script().train(parsed.script_args, parsed.training_args, parsed.model_args, recipe=parsed.explicit, callbacks=[seen])

    tokenizer = AutoTokenizer.from_pretrained(Path(model))
    answers = {tuple(tokenizer(label, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
               for label in LABELS}
    rows = 0
    for batch in seen.batches:
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            trained = [int(t) for t, lab in zip(ids, labels) if lab != -100]
            assert tuple(trained) in answers, tokenizer.decode(trained)
            # the answer is the last real tokens of the row; everything before it (the prompt) is -100
            last = int(mask.nonzero().max())
            assert [int(x) for x in labels[last - len(trained) + 1:last + 1]] == trained
            assert int((labels != -100).sum()) == len(trained)
            rows += 1
    assert rows == 8
