"""Answer-only tokenization and collation, token by token, with real (tiny) tokenizers."""

from __future__ import annotations

import pytest
import torch
import transformers
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from fingpt_hf.errors import FinGPTError
from fingpt_hf.families import family_by_name, prepare_tokenizer, special_prefix_length
from fingpt_hf.families.tokenization import tokenize_prompt_completion
from fingpt_hf.training.collator import AnswerOnlyCollator, model_uses_position_ids
from tiny_models import tiny_llama_config

WORDS = [
    "<unk>", "<s>", "</s>", "[gMASK]", "sop", "Instruction", ":", "Input", "Answer", "news",
    "good", "bad", "rates", "rise", "positive", "negative", "neutral", "<pad>",
]
ID = {w: i for i, w in enumerate(WORDS)}
X = -100
PROMPT = "Instruction: news\nInput: rates rise\nAnswer: "
BODY = [ID[w] for w in ["Instruction", ":", "news", "Input", ":", "rates", "rise", "Answer", ":"]]


def make_tokenizer(prefix: tuple[str, ...] = ("<s>",), pad: bool = False, vocab=WORDS) -> PreTrainedTokenizerFast:
    """WordLevel tokenizer; ``prefix`` special tokens are added by its post-processor."""
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if prefix:
        backend.post_processor = processors.TemplateProcessing(
            single=" ".join(prefix) + " $A", special_tokens=[(t, vocab.index(t)) for t in prefix]
        )
    special = dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    if pad:
        special["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def row(prompt: str, completion: str, tok, family="llama", max_length=None):
    return tokenize_prompt_completion({"prompt": prompt, "completion": completion}, tok, family_by_name(family), max_length)


# --- tokenize_prompt_completion ------------------------------------------------------------------

def test_bos_prompt_answer_eos():
    out = row(PROMPT, "positive", make_tokenizer())
    assert out["input_ids"] == [ID["<s>"], *BODY, ID["positive"], ID["</s>"]]
    assert out["completion_mask"] == [0] * 10 + [1, 1]


def test_existing_eos_is_not_doubled():
    out = row(PROMPT, "positive</s>", make_tokenizer())
    assert out["input_ids"][-3:] == [ID[":"], ID["positive"], ID["</s>"]]
    assert out["completion_mask"][-3:] == [0, 1, 1]


def test_chatglm_prefix_tokens_from_tokenizer_or_added():
    expected = [ID["[gMASK]"], ID["sop"], *BODY, ID["negative"], ID["</s>"]]
    from_tokenizer = row(PROMPT, "negative", make_tokenizer(prefix=("[gMASK]", "sop")), family="chatglm")
    added = row(PROMPT, "negative", make_tokenizer(prefix=()), family="chatglm")
    assert from_tokenizer["input_ids"] == added["input_ids"] == expected
    assert from_tokenizer["completion_mask"] == [0] * 11 + [1, 1]
    assert special_prefix_length(make_tokenizer(prefix=("[gMASK]", "sop"))) == 2


def test_chatglm_family_needs_its_prefix_tokens():
    vocab = [w for w in WORDS if w not in ("[gMASK]", "sop")]
    with pytest.raises(FinGPTError, match=r"prefix tokens \['\[gMASK\]', 'sop'\]"):
        row(PROMPT, "negative", make_tokenizer(prefix=(), vocab=vocab), family="chatglm")


def test_truncation_drops_prompt_from_the_left_after_prefix_tokens():
    out = row(PROMPT, "neutral", make_tokenizer(prefix=("[gMASK]", "sop")), family="chatglm", max_length=7)
    assert out["input_ids"] == [ID["[gMASK]"], ID["sop"], ID["rise"], ID["Answer"], ID[":"], ID["neutral"], ID["</s>"]]
    assert out["completion_mask"] == [0, 0, 0, 0, 0, 1, 1]
    with pytest.raises(FinGPTError, match="max_length 3 cannot hold the 2 answer tokens"):
        row(PROMPT, "neutral", make_tokenizer(prefix=("[gMASK]", "sop")), family="chatglm", max_length=3)


@pytest.mark.parametrize("spare", [0, 1, 5, 40])
def test_rows_within_max_length_are_not_cut(spare):
    """A row that fits is kept whole, however much room is left (a row longer than half of
    max_length once lost its first tokens here: the cut was computed from the room left, not
    from how far the row went over)."""
    whole = row(PROMPT, "neutral", make_tokenizer())
    out = row(PROMPT, "neutral", make_tokenizer(), max_length=len(whole["input_ids"]) + spare)
    assert out == whole


# --- AnswerOnlyCollator ------------------------------------------------------------------------

def two_rows(tok):
    a = row("Input: rates rise\nAnswer: ", "positive", tok, family="falcon")
    b = row("Input: bad\nAnswer: ", "negative", tok, family="falcon")
    return a, b


def test_pad_equal_to_eos_keeps_the_answer_eos_label_right_padding():
    tok = make_tokenizer()  # no pad token: falcon's strategy falls back to EOS
    prepare_tokenizer(tok, family_by_name("falcon"))
    assert tok.pad_token_id == tok.eos_token_id == ID["</s>"]
    batch = AnswerOnlyCollator(pad_token_id=tok.pad_token_id)(list(two_rows(tok)))
    s, e = ID["<s>"], ID["</s>"]
    assert batch["input_ids"].tolist() == [
        [s, ID["Input"], ID[":"], ID["rates"], ID["rise"], ID["Answer"], ID[":"], ID["positive"], e],
        [s, ID["Input"], ID[":"], ID["bad"], ID["Answer"], ID[":"], ID["negative"], e, e],
    ]
    assert batch["attention_mask"].tolist() == [[1] * 9, [1] * 8 + [0]]
    assert batch["labels"].tolist() == [
        [X] * 7 + [ID["positive"], e],
        [X] * 6 + [ID["negative"], e, X],  # the answer's EOS trains; the identical pad id does not
    ]
    assert "position_ids" not in batch


def test_left_padding_with_position_ids():
    tok = make_tokenizer(pad=True)
    batch = AnswerOnlyCollator(pad_token_id=tok.pad_token_id, padding_side="left")(list(two_rows(tok)))
    p, s, e = ID["<pad>"], ID["<s>"], ID["</s>"]
    assert batch["input_ids"][1].tolist() == [p, s, ID["Input"], ID[":"], ID["bad"], ID["Answer"], ID[":"], ID["negative"], e]
    assert batch["attention_mask"].tolist() == [[1] * 9, [0] + [1] * 8]
    assert batch["labels"].tolist() == [[X] * 7 + [ID["positive"], e], [X] * 7 + [ID["negative"], e]]
    assert batch["position_ids"].tolist() == [list(range(9)), [0] + list(range(8))]


def test_pad_to_multiple_of():
    tok = make_tokenizer(pad=True)
    batch = AnswerOnlyCollator(pad_token_id=tok.pad_token_id, pad_to_multiple_of=4)(list(two_rows(tok)))
    assert batch["input_ids"].shape == (2, 12)
    assert batch["attention_mask"].sum(1).tolist() == [9, 8]
    assert (batch["labels"] != X).sum(1).tolist() == [2, 2]


def test_trl_style_labels_and_completion_mask_agree():
    tok = make_tokenizer(pad=True)
    a, b = two_rows(tok)
    with_labels = [
        {"input_ids": r["input_ids"], "labels": [t if m else X for t, m in zip(r["input_ids"], r["completion_mask"])]}
        for r in (a, b)
    ]
    collate = AnswerOnlyCollator(pad_token_id=tok.pad_token_id, padding_side="left")
    expected = collate([a, b])
    got = collate(with_labels)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # with both, a token needs both to carry loss
    both = dict(a, labels=[X] * (len(a["input_ids"]) - 1) + [a["input_ids"][-1]])
    assert collate([both])["labels"][0].tolist() == [X] * 8 + [ID["</s>"]]


def test_collator_truncates_prompt_not_answer():
    tok = make_tokenizer(pad=True)
    a, _ = two_rows(tok)
    collate = AnswerOnlyCollator(pad_token_id=tok.pad_token_id, max_length=6, keep_prefix_tokens=1)
    batch = collate([a])
    assert batch["input_ids"].tolist() == [[ID["<s>"], ID["rise"], ID["Answer"], ID[":"], ID["positive"], ID["</s>"]]]
    assert batch["labels"].tolist() == [[X, X, X, X, ID["positive"], ID["</s>"]]]
    with pytest.raises(FinGPTError, match="max_length 2 cannot hold its 2 answer tokens"):
        AnswerOnlyCollator(pad_token_id=0, max_length=2, keep_prefix_tokens=1)([a])


def test_collator_rejects_bad_features_and_options():
    collate = AnswerOnlyCollator(pad_token_id=0)
    with pytest.raises(FinGPTError, match="neither 'completion_mask' nor 'labels'"):
        collate([{"input_ids": [1, 2]}])
    with pytest.raises(FinGPTError, match="'completion_mask' has 1 entries for 2 input_ids"):
        collate([{"input_ids": [1, 2], "completion_mask": [1]}])
    with pytest.raises(FinGPTError, match="no answer tokens"):
        collate([{"input_ids": [1, 2], "completion_mask": [0, 0]}])
    with pytest.raises(FinGPTError, match="padding_side"):
        AnswerOnlyCollator(pad_token_id=0, padding_side="middle")


# --- left padding gives the same model outputs as no padding -------------------------------------

def _tiny_model(kind: str):
    torch.manual_seed(0)
    if kind == "llama":
        config = tiny_llama_config(len(WORDS), pad_token_id=ID["<pad>"])
    elif kind == "bloom":
        config = transformers.BloomConfig(vocab_size=len(WORDS), hidden_size=32, n_layer=2, n_head=4)
    else:  # absolute position embeddings: left padding is wrong without position_ids
        config = transformers.GPT2Config(
            vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=1, eos_token_id=2
        )
    return transformers.AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("kind", ["llama", "bloom", "gpt2"])
def test_left_padded_batch_matches_unpadded_rows(kind):
    model = _tiny_model(kind)
    tok = make_tokenizer(pad=True)
    rows = list(two_rows(tok))
    uses_positions = model_uses_position_ids(model)
    assert uses_positions == (kind != "bloom")
    left = AnswerOnlyCollator(tok.pad_token_id, padding_side="left", return_position_ids=uses_positions)(rows)
    right = AnswerOnlyCollator(tok.pad_token_id, padding_side="right")(rows)
    with torch.no_grad():
        out_left = model(**left)
        out_right = model(**right)
        short = torch.tensor([rows[1]["input_ids"]])
        alone = model(input_ids=short).logits[0]
    n = short.shape[1]
    torch.testing.assert_close(out_left.logits[1, -n:], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_right.logits[1, :n], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_left.loss, out_right.loss, atol=1e-5, rtol=1e-4)


def test_absolute_position_models_need_left_padding_position_ids():
    model = _tiny_model("gpt2")
    rows = list(two_rows(make_tokenizer(pad=True)))
    batch = AnswerOnlyCollator(ID["<pad>"], padding_side="left", return_position_ids=False)(rows)
    with torch.no_grad():
        shifted = model(**batch).logits[1, -8:]
        alone = model(input_ids=torch.tensor([rows[1]["input_ids"]])).logits[0]
    assert (shifted - alone).abs().max() > 1e-2


# --- as SFTTrainer's data_collator ----------------------------------------------------------------

def test_collator_plugs_into_trl_sft_trainer(tmp_path):
    from trl import SFTConfig, SFTTrainer

    tok = make_tokenizer(pad=True)
    model = _tiny_model("llama")
    data = Dataset.from_list(
        [
            {"prompt": "Input: rates rise\nAnswer: ", "completion": "positive"},
            {"prompt": "Input: bad\nAnswer: ", "completion": "negative"},
        ]
    )
    seen: list[list[dict]] = []
    collate = AnswerOnlyCollator(tok.pad_token_id, padding_side="left")

    def recording(features):
        seen.append(features)
        return collate(features)

    args = SFTConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True,
        save_strategy="no", logging_strategy="no", dataloader_num_workers=0, seed=0, shuffle_dataset=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, data_collator=recording)
    trainer.train()
    assert len(seen) == 1
    ours = {tuple(r["input_ids"]): r for r in two_rows(tok)}
    for feature in seen[0]:
        mine = ours[tuple(feature["input_ids"])]  # TRL tokenizes exactly like tokenize_prompt_completion
        assert [int(l != X) for l in feature["labels"]] == mine["completion_mask"]
