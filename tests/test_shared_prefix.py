"""Shared-prefix batching: the grouping, and the same loss and LoRA gradients as the full batch."""

from __future__ import annotations

import math

import pytest
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer

import fingpt_hf.training.answer_logits as answer_logits
from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.prompts import format_prompt
from fingpt_hf.errors import FinGPTError
from fingpt_hf.families import family_by_name
from fingpt_hf.training.answer_logits import add_answer_only_lm_head, find_backbone_and_head
from fingpt_hf.families.tokenization import tokenize_prompt_completion
from fingpt_hf.training.collator import AnswerOnlyCollator
from fingpt_hf.training.recipe import ScriptArguments
from fingpt_hf.training.shared_prefix import _best_groups, plan_shared_prefixes, supports_shared_prefix

X = -100


@pytest.fixture(scope="module")
def tokenizer(default_model_path):
    return AutoTokenizer.from_pretrained(default_model_path)


@pytest.fixture(scope="module")
def mixed_batch(tokenizer, data_dir):
    """Right-padded FinGPT rows with both instructions (FPB news, TFNS tweets), one row twice."""
    rows = [*load_benchmark("fpb", "train", data_dir=data_dir).select(range(3)),
            *load_benchmark("tfns", "train", data_dir=data_dir).select(range(4))]
    rows.append(rows[4])  # a duplicate shares its whole prompt with its twin
    family = family_by_name("llama")
    features = [tokenize_prompt_completion({"prompt": format_prompt(r), "completion": r["output"]}, tokenizer, family)
                for r in rows]
    return AnswerOnlyCollator(pad_token_id=tokenizer.pad_token_id)(features)


def _batch(rows: list[list[int]], answer: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids / mask / labels; the last ``answer`` tokens of each row carry loss."""
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, X)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        labels[i, len(row) - answer : len(row)] = torch.tensor(row[-answer:])
    return ids, mask, labels


# --- grouping -----------------------------------------------------------------------------------

def test_rows_group_by_instruction(mixed_batch, tokenizer):
    plan = plan_shared_prefixes(mixed_batch["input_ids"], mixed_batch["attention_mask"], mixed_batch["labels"])
    groups = {}
    for row, group in enumerate(plan.group_of_row):
        groups.setdefault(group, []).append(row)
    by_rows = {tuple(rows): plan.prefix_lengths[g] for g, rows in groups.items()}
    # news and tweets; the twins stay with the tweets (4 x 25 shared beats 2 x 25 plus the twins' ~40)
    assert set(by_rows) == {(0, 1, 2), (3, 4, 5, 6, 7)}
    for rows, length in by_rows.items():
        text = tokenizer.decode(mixed_batch["input_ids"][rows[0], :length])
        kind = "news" if rows[0] == 0 else "tweet"
        assert text.startswith(f"Instruction: What is the sentiment of this {kind}?") and "\nInput:" in text, text
    assert plan.shared_tokens == sum((len(rows) - 1) * p for rows, p in by_rows.items())


def test_grouping_is_the_best_split_not_the_first_fit():
    # Greedy first-fit puts rows 0 and 1 together (2 shared tokens) and is stuck there; the best
    # split pairs 0 with 2 (5 shared) and 1 with 3 (4 shared).
    rows = [[1, 2, 3, 4, 5, 6], [1, 2, 9, 9, 9], [1, 2, 3, 4, 5, 7], [1, 2, 9, 9, 8]]
    group_of_row, lengths = _best_groups(rows)
    assert group_of_row[0] == group_of_row[2] != group_of_row[1] == group_of_row[3]
    assert sorted(lengths) == [4, 5]  # [1, 2, 9, 9] and [1, 2, 3, 4, 5]


def test_nothing_to_share_or_not_right_padded_gives_no_plan():
    ids, mask, labels = _batch([[5, 6, 7, 1, 2], [8, 9, 1, 2]])
    assert plan_shared_prefixes(ids, mask, labels) is None  # no common leading token
    ids, mask, labels = _batch([[5, 6, 7, 1, 2], [5, 6, 1, 2]])
    assert plan_shared_prefixes(ids, mask, labels) is not None
    assert plan_shared_prefixes(ids.flip(-1), mask.flip(-1), labels.flip(-1)) is None  # left padding
    assert plan_shared_prefixes(ids[:1], mask[:1], labels[:1]) is None  # one row


def test_prefix_stops_before_any_scored_position():
    # identical rows: the prefix must leave the position that predicts the first answer token
    ids, mask, labels = _batch([[5, 6, 7, 8, 1, 2]] * 3)
    plan = plan_shared_prefixes(ids, mask, labels)
    assert plan.prefix_lengths == [3]  # position 3 predicts the answer at 4


# --- same loss and gradients --------------------------------------------------------------------

def _tiny(kind: str, vocab: int, dropout: float = 0.0):
    if kind == "qwen2":  # GQA with 2 query heads per KV head, biases on q/k/v
        config = transformers.Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2)
    else:
        config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2)
    if kind == "llama-eager":
        config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", init_lora_weights=False,
                      task_type="CAUSAL_LM")
    torch.manual_seed(1)
    return get_peft_model(model, lora)


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch, fused_lm_head=True).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", ["llama", "llama-eager", "qwen2"])
def test_same_loss_and_lora_gradients_as_the_full_batch(kind, tokenizer, mixed_batch, monkeypatch):
    calls = []
    real = answer_logits.forward_with_shared_prefix
    monkeypatch.setattr(answer_logits, "forward_with_shared_prefix",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    results = {}
    for shared in (False, True):
        model = _tiny(kind, len(tokenizer))
        assert add_answer_only_lm_head(model.get_base_model(), shared_prefix=shared)
        model.train()
        results[shared] = _loss_and_grads(model, dict(mixed_batch))
        base = find_backbone_and_head(model.get_base_model())[0].config._attn_implementation
        assert base == ("eager" if kind == "llama-eager" else "sdpa")  # put back after the packed forward
    assert calls == [1]  # the shared path ran, once
    assert math.isclose(results[True][0], results[False][0], rel_tol=1e-5)
    for name, grad in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _draws(model, batch, seeds: range) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and flattened LoRA gradients for one dropout draw per seed: ``(n, 1)`` and ``(n, params)``."""
    losses, grads = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        loss, named = _loss_and_grads(model, batch)
        losses.append([loss])
        grads.append(torch.cat([g.flatten() for g in named.values()]))
    return torch.tensor(losses, dtype=torch.float64), torch.stack(grads).double()


def _z(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two-sample z of the means of independent draws, per column."""
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    return (a.mean(0) - b.mean(0)) / se.clamp_min(1e-12)


def test_lora_dropout_gives_the_full_batch_loss_and_gradients_in_expectation(tokenizer, mixed_batch, monkeypatch):
    """A group's rows share one dropout mask on their prefix: the mean over draws must still be the plain batch's.

    Each path's loss and every LoRA gradient element are averaged over independent draws and compared by
    their two-sample z; the same statistic must flag the plain batch without dropout, or it could not fail.
    """
    calls = []
    real = answer_logits.forward_with_shared_prefix
    monkeypatch.setattr(answer_logits, "forward_with_shared_prefix",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    draws = 150
    runs = {}
    for name, shared, dropout, seeds in [("plain", False, 0.5, range(draws)), ("shared", True, 0.5, range(draws, 2 * draws)),
                                         ("no-dropout", True, 0.0, range(2 * draws, 3 * draws))]:
        model = _tiny("llama", len(tokenizer), dropout)
        assert add_answer_only_lm_head(model.get_base_model(), shared_prefix=shared)
        model.train()
        runs[name] = _draws(model, dict(mixed_batch), seeds)
    assert len(calls) == 2 * draws  # the shared path ran for every draw of both shared runs
    (plain_loss, plain_grads), (shared_loss, shared_grads) = runs["plain"], runs["shared"]
    assert shared_grads.var(0).max() > 0  # dropout drew different masks
    assert abs(_z(shared_loss, plain_loss).item()) < 4
    z = _z(shared_grads, plain_grads)
    assert z.pow(2).mean() < 1.5 and z.abs().max() < 6, (z.pow(2).mean(), z.abs().max())
    # the statistic has power: the same model without dropout is another expectation
    off = _z(runs["no-dropout"][1], plain_grads)
    assert abs(_z(runs["no-dropout"][0], plain_loss).item()) > 4 or off.pow(2).mean() > 3


def test_models_without_position_ids_train_without_it(mixed_batch):
    bloom = transformers.BloomForCausalLM(transformers.BloomConfig(vocab_size=49152, hidden_size=32, n_layer=2, n_head=4))
    assert not supports_shared_prefix(bloom.transformer)  # ALiBi: positions come from the mask
    assert add_answer_only_lm_head(bloom, shared_prefix=True)
    batch = {k: v for k, v in mixed_batch.items() if k != "position_ids"}
    assert torch.isfinite(bloom(**batch, fused_lm_head=True).loss)


def test_recipe_option_needs_the_fast_path():
    with pytest.raises(FinGPTError, match="shared_prefix needs fast_path: true"):
        ScriptArguments(shared_prefix=True, fast_path=False)


def test_neftune_noise_is_sized_for_the_ordinary_batch(tokenizer, mixed_batch):
    """transformers' NEFTune hook draws U(-m, m) with m = alpha / sqrt(L x d), L the sequence it sees: the shared
    path must give each token the magnitude of the ordinary batch's width, not of the several times longer packed
    sequence."""
    from transformers.integrations.neftune import activate_neftune

    alpha, width = 5.0, mixed_batch["input_ids"].shape[1]
    noise = {}
    for shared in (False, True):
        model = _tiny("llama", len(tokenizer))
        assert add_answer_only_lm_head(model.get_base_model(), shared_prefix=shared)
        model.train()
        embeddings = model.get_input_embeddings()
        activate_neftune(model, alpha)
        seen = []
        embeddings.register_forward_hook(lambda module, args, out: seen.append((out - module.weight[args[0]]).detach()))
        model(**dict(mixed_batch), fused_lm_head=True).loss.backward()
        assert embeddings.neftune_noise_alpha == alpha  # put back after the packed forward
        (noise[shared],) = seen
    bound = alpha / math.sqrt(width * 32)
    assert noise[False].shape[:2] == mixed_batch["input_ids"].shape
    assert noise[True].shape[1] > 5 * width  # the packed sequence, so an unscaled hook would draw 2x+ smaller noise
    for drawn in noise.values():
        # uniform on (-bound, bound): thousands of draws reach within 2% of the bound and never past it
        assert 0.98 * bound < drawn.abs().max() <= bound * (1 + 1e-5)
        assert abs(drawn.abs().mean() / bound - 0.5) < 0.02


def test_row_mask_hook_draws_transformers_noise_on_flagged_rows_only():
    """``neftune_hook_with_row_mask`` is transformers' NEFTune hook (the same draw from the same generator state)
    where no mask is set, and on a masked batch the flagged rows get exactly that noise and the others none."""
    from transformers.integrations.neftune import neftune_post_forward_hook

    from fingpt_hf.training.neftune import neftune_hook_with_row_mask, rows_to_noise

    embeddings = torch.nn.Embedding(50, 16).train()
    embeddings.neftune_noise_alpha = 5.0
    clean = torch.randn(3, 7, 16)

    def drawn(hook):
        torch.manual_seed(3)
        return hook(embeddings, (), clean)

    reference = drawn(neftune_post_forward_hook)
    assert not torch.equal(reference, clean)
    torch.testing.assert_close(drawn(neftune_hook_with_row_mask), reference, rtol=0, atol=1e-6)
    with rows_to_noise(embeddings, torch.tensor([1.0, 0.0, 1.0])):
        masked = drawn(neftune_hook_with_row_mask)
    assert embeddings.neftune_mask is None  # cleared after the batch
    torch.testing.assert_close(masked[[0, 2]], reference[[0, 2]], rtol=0, atol=1e-6)
    assert torch.equal(masked[1], clean[1])
    embeddings.eval()
    assert torch.equal(drawn(neftune_hook_with_row_mask), clean)  # evaluation: no noise


def test_rows_of_different_keys_never_share_a_prefix(mixed_batch):
    """With NEFTune on some rows only, a shared prefix holding one noise draw must not span a noised and a clean
    row: rows keyed apart are grouped apart (the same batch without keys groups them together)."""
    args = mixed_batch["input_ids"], mixed_batch["attention_mask"], mixed_batch["labels"]
    keys = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    unkeyed = plan_shared_prefixes(*args)
    assert any(keys[a] != keys[b] and unkeyed.group_of_row[a] == unkeyed.group_of_row[b]
               for a in range(8) for b in range(8))
    plan = plan_shared_prefixes(*args, row_keys=keys)
    for group, length in enumerate(plan.prefix_lengths):
        members = [r for r, g in enumerate(plan.group_of_row) if g == group]
        assert len({keys[r] for r in members}) == 1 or length == 0, (members, length)
    assert plan.shared_tokens > 0  # news and tweets still share their instructions within each key


@pytest.mark.parametrize("shared", [False, True])
def test_noise_on_flagged_rows_leaves_the_other_rows_answers_as_without_noise(shared, tokenizer, mixed_batch):
    """The answers' log-probabilities of rows without the flag are those of a run without any noise (every
    token they see, their group's prefix included, is clean), and those of flagged rows are not, on the plain
    and on the shared-prefix path. Each row's answer tokens follow in row order on both paths."""
    from fingpt_hf.training.neftune import neftune_hook_with_row_mask, rows_to_noise

    flags = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    model = _tiny("llama", len(tokenizer))
    assert add_answer_only_lm_head(model.get_base_model(), shared_prefix=shared)
    model.train()
    embeddings = model.get_input_embeddings()
    answers_per_row = (mixed_batch["labels"] != X).sum(-1).tolist()

    def answer_log_probs():
        out = model(**dict(mixed_batch), fused_lm_head=True)
        return out.log_probs[out.label_mask].detach().split(answers_per_row)

    clean = answer_log_probs()
    embeddings.neftune_noise_alpha = 5.0
    handle = embeddings.register_forward_hook(neftune_hook_with_row_mask)
    torch.manual_seed(0)
    with rows_to_noise(embeddings, flags):
        noised = answer_log_probs()
    handle.remove()
    for row, flag in enumerate(flags.tolist()):
        if flag:
            assert (noised[row] - clean[row]).abs().max() > 1e-4, row
        else:
            torch.testing.assert_close(noised[row], clean[row], rtol=0, atol=2e-5, msg=f"row {row}")
