"""`fingpt-hf push` against a loopback Hub: one commit, LFS upload, load-back with peft, clean failures.

The push and the load-back run in subprocesses, so HF_ENDPOINT/HF_HOME/HF_TOKEN are set before
huggingface_hub is imported there; the loopback server runs in this process (tests/hub_server.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub_server import LoopbackHub
from tiny_models import tiny_llama

REPO_ROOT = Path(__file__).resolve().parent.parent
DUMMY_TOKEN = "hf_loopbackDummyTokenForTests0123456789"
REPO_ID = "tester/tiny-fingpt-lora"
WORDS = ["operating", "profit", "rose", "fell", "to", "eur", "mn", "from", "the", "sales", "net", "loss",
         "instruction", "input", "answer", ":", "what", "is", "sentiment", "of", "this", "news", "?",
         "negative", "neutral", "positive", "please", "choose", "an", "from", "{", "}", "/"]


def hub_env(hub: LoopbackHub, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
        "HF_TOKEN": DUMMY_TOKEN, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fingpt_hf.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180, cwd=REPO_ROOT)


def snapshot(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def one_result(name: str, dataset_id: str, config: str | None, num_rows: int, accuracy: float) -> dict:
    return {
        "schema_version": 1,
        "model": {"name_or_path": "tiny-llama", "revision": None, "hash": None},
        "adapter": {"name_or_path": "out", "revision": None, "hash": None},
        "dataset": name, "dataset_id": dataset_id, "dataset_config": config, "split": "test",
        "num_rows": num_rows, "mode": "score", "parser": None, "prompt_style": "fingpt",
        "metrics": {"accuracy": accuracy, "f1_macro": round(accuracy - 0.07, 4), "f1_micro": accuracy,
                    "f1_weighted": round(accuracy - 0.02, 4), "invalid_rate": 0.0,
                    "per_class": {label: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4}
                                  for label in ("negative", "neutral", "positive")},
                    "confusion_matrix": {"labels": ["negative", "neutral", "positive"],
                                         "matrix": [[2, 1, 1], [0, 3, 1], [1, 0, 3]]}},
        "examples_per_second": 50.0, "seed": 42, "versions": {"peft": "test"},
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:00:01+00:00",
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny random llama "base" and a LoRA adapter output directory as training and eval leave it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("trained")
    base_dir, out = root / "base", root / "out"
    vocab = {tok: i for i, tok in enumerate(["<unk>", "<pad>", "</s>", *dict.fromkeys(WORDS)])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="</s>")
    base = tiny_llama(len(vocab), max_position_embeddings=64, pad_token_id=1, eos_token_id=2, bos_token_id=2)
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    results = {"schema_version": 1, "run": {"model": str(base_dir), "adapter": str(out)},
               "results": {"fpb": one_result("fpb", "financial_phrasebank", "sentences_50agree", 12, 0.75),
                           "tfns": one_result("tfns", "zeroshot/twitter-financial-news-sentiment", None, 12, 0.5833)}}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text("| data set | accuracy |\n|---|---|\n| fpb | 75.0 |\n| tfns | 58.3 |\n")
    for name in results["results"]:
        (out / name).mkdir()
        (out / name / "result.json").write_text(json.dumps(results["results"][name]))
        (out / name / "predictions.jsonl").write_text('{"index": 0}\n')
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.imshow(results["results"][name]["metrics"]["confusion_matrix"]["matrix"])
        fig.savefig(out / name / "confusion_matrix.png")
        plt.close(fig)
    (out / "fingpt_run.json").write_text(json.dumps({
        "base_model": str(base_dir), "recipe": {"learning_rate": 2e-4, "lora": {"r": 4}},
        "mixture": {"fpb": {"rows": 3634, "weight": 6}, "tfns": {"rows": 9543, "weight": 2}},
        "versions": {"peft": "test"}}))
    (out / "checkpoint-1").mkdir()
    (out / "checkpoint-1" / "optimizer.pt").write_bytes(b"not pushed")
    (out / "training_args.bin").write_bytes(b"not pushed either")
    return {"base": base_dir, "out": out}


@pytest.fixture()
def hub(tmp_path):
    with LoopbackHub(tmp_path / "hub-storage") as server:
        yield server


LOAD_BACK = textwrap.dedent(r"""
    import json, sys
    import torch
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir, out, repo_id = sys.argv[1:4]
    ids = torch.tensor([[3, 4, 5, 9, 10, 6, 7, 11, 12]])
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
    local = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out).eval()
    remote = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), repo_id).eval()
    with torch.no_grad():
        local_logits, remote_logits = local(ids).logits, remote(ids).logits
    text = "operating profit rose to eur mn"
    tokenizer = AutoTokenizer.from_pretrained(repo_id)
    local_tokenizer = AutoTokenizer.from_pretrained(out)
    card = ModelCard.load(repo_id)
    name, eval_results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    snippet = card.text.split("```python\n", 1)[1].split("```", 1)[0]  # the card's "How to use", run as is
    exec(snippet, {})
    print(json.dumps({
        "hub_equals_local": torch.allclose(local_logits, remote_logits, atol=1e-6),
        "max_diff_hub_local": (local_logits - remote_logits).abs().max().item(),
        "max_diff_hub_base": (base_logits - remote_logits).abs().max().item(),
        "tokens_equal": tokenizer(text)["input_ids"] == local_tokenizer(text)["input_ids"],
        "card_library": card.data.library_name,
        "snippet_loads": f'PeftModel.from_pretrained(base, "{repo_id}")' in snippet,
        "card_metrics": [[r.dataset_type, r.metric_name, r.metric_value] for r in eval_results],
    }))
""")


def test_push_round_trip(trained, hub, tmp_path):
    out = trained["out"]
    before = snapshot(out)
    env = hub_env(hub, tmp_path / "hf-home")
    proc = run_cli(["push", str(out), "--repo-id", REPO_ID, "--commit-message", "tiny adapter"], env)
    assert proc.returncode == 0, proc.stderr
    assert DUMMY_TOKEN not in proc.stdout + proc.stderr
    assert snapshot(out) == before  # the card was generated in memory, nothing local changed

    state = hub.state
    repo = state.repos[REPO_ID]
    commit = repo.commits[repo.branches["main"]]
    assert proc.stdout.strip() == f"{hub.endpoint}/{REPO_ID}/commit/{commit.sha}"
    assert state.commit_count(REPO_ID) == 2 and commit.message == "tiny adapter"  # creation + ONE upload commit
    assert sorted(commit.files) == sorted([
        "README.md", "adapter_config.json", "adapter_model.safetensors", "fingpt_run.json", "results.json",
        "results.md", "tokenizer.json", "tokenizer_config.json", "fpb/result.json", "fpb/confusion_matrix.png",
        "tfns/result.json", "tfns/confusion_matrix.png",
    ])
    weights = (out / "adapter_model.safetensors").read_bytes()
    assert commit.files["adapter_model.safetensors"].lfs  # went through LFS batch + PUT + verify
    assert hashlib.sha256(weights).hexdigest() in state.lfs_puts
    assert commit.files["adapter_model.safetensors"].blob.read_bytes() == weights
    assert not commit.files["adapter_config.json"].lfs
    assert any(c.startswith("---\n") and "library_name: peft" in c for c in state.validated_yaml)
    api_auth = {auth for (_, path), auth in zip(state.requests, state.auth_headers) if path.startswith("/api/")}
    assert api_auth == {f"Bearer {DUMMY_TOKEN}"}  # the token came from HF_TOKEN, untouched

    load = subprocess.run([sys.executable, "-c", LOAD_BACK, str(trained["base"]), str(out), REPO_ID], env=env,
                          capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)
    assert load.returncode == 0, load.stderr
    report = json.loads(load.stdout.strip().splitlines()[-1])
    assert report["hub_equals_local"], report
    assert report["max_diff_hub_base"] > 1e-3  # the adapter really changes the outputs
    assert report["tokens_equal"]
    assert report["card_library"] == "peft" and report["snippet_loads"]
    results = json.loads((out / "results.json").read_text())["results"]
    card_metrics = {(t, n): v for t, n, v in report["card_metrics"]}
    assert len(card_metrics) == 5 * len(results)
    for result in results.values():
        assert card_metrics[(result["dataset_id"], "Accuracy")] == result["metrics"]["accuracy"]
        assert card_metrics[(result["dataset_id"], "F1 (weighted)")] == result["metrics"]["f1_weighted"]


def test_push_to_branch_keeps_main(trained, hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf-home")
    proc = run_cli(["push", str(trained["out"]), "--repo-id", REPO_ID, "--revision", "experiment", "--private"], env)
    assert proc.returncode == 0, proc.stderr
    repo = hub.state.repos[REPO_ID]
    assert repo.private
    assert repo.commits[repo.branches["main"]].files == {}
    assert "adapter_model.safetensors" in repo.commits[repo.branches["experiment"]].files


def test_malformed_repo_id_is_a_clean_error(trained, hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf-home")
    for bad in ("no-namespace", "a/b/c", "user/bad name", "user/--x"):
        proc = run_cli(["push", str(trained["out"]), "--repo-id", bad], env)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "--repo-id" in proc.stderr and bad in proc.stderr
    assert hub.state.requests == []  # rejected before any network call


def test_failed_commit_leaves_files_and_says_how_to_retry(trained, hub, tmp_path):
    out = trained["out"]
    before = snapshot(out)
    hub.state.fail_commit_status = 500
    env = hub_env(hub, tmp_path / "hf-home")
    proc = run_cli(["push", str(out), "--repo-id", REPO_ID, "--commit-message", "try it"], env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and DUMMY_TOKEN not in proc.stderr
    assert f"retry with: fingpt-hf push {out} --repo-id {REPO_ID} --commit-message 'try it'" in proc.stderr
    assert "500" in proc.stderr
    assert snapshot(out) == before
    assert hub.state.commit_count(REPO_ID) == 1  # only the repository's creation

    hub.state.fail_commit_status = None  # the printed command works once the Hub is back
    retry = shlex.split(proc.stderr.split("retry with: ", 1)[1].strip())
    assert retry[:2] == ["fingpt-hf", "push"]
    proc = run_cli(retry[1:], env)
    assert proc.returncode == 0, proc.stderr
    assert hub.state.commit_count(REPO_ID) == 2


def test_failed_lfs_upload_is_a_clean_error(trained, hub, tmp_path):
    hub.state.fail_lfs_status = 503
    proc = run_cli(["push", str(trained["out"]), "--repo-id", REPO_ID], hub_env(hub, tmp_path / "hf-home"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and DUMMY_TOKEN not in proc.stderr
    assert "503" in proc.stderr and f"retry with: fingpt-hf push {trained['out']} --repo-id {REPO_ID}" in proc.stderr
    assert hub.state.commit_count(REPO_ID) == 1  # the repository was created, nothing was committed


def test_push_killed_mid_upload_then_completes(trained, hub, tmp_path):
    """SIGKILL while the adapter's LFS upload is in flight: nothing is committed, no local file
    changes, and the same push run again completes with the local files."""
    import signal
    import threading

    out = trained["out"]
    before = snapshot(out)
    env = hub_env(hub, tmp_path / "hf-home")
    hub.state.lfs_hold = threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "fingpt_hf.cli", "push", str(out), "--repo-id", REPO_ID],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert hub.state.lfs_started.wait(timeout=180), "the push never reached its LFS upload"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        hub.state.lfs_hold.set()
        hub.state.lfs_hold = None
    assert proc.returncode == -signal.SIGKILL
    assert hub.state.commit_count(REPO_ID) == 1  # the repository was created, nothing was committed
    assert snapshot(out) == before
    again = run_cli(["push", str(out), "--repo-id", REPO_ID], env)
    assert again.returncode == 0, again.stderr
    repo = hub.state.repos[REPO_ID]
    commit = repo.commits[repo.branches["main"]]
    assert hub.state.commit_count(REPO_ID) == 2
    assert commit.files["adapter_model.safetensors"].blob.read_bytes() == (out / "adapter_model.safetensors").read_bytes()
    assert snapshot(out) == before


def test_push_requires_an_adapter_directory(tmp_path, hub):
    (tmp_path / "empty").mkdir()
    proc = run_cli(["push", str(tmp_path / "empty"), "--repo-id", REPO_ID], hub_env(hub, tmp_path / "hf-home"))
    assert proc.returncode == 2 and "adapter_config.json" in proc.stderr and "Traceback" not in proc.stderr


def test_files_to_push_skips_checkpoints_and_predictions(trained):
    from fingpt_hf.hub.push import files_to_push

    files = files_to_push(trained["out"])
    assert "adapter_model.safetensors" in files and "fpb/confusion_matrix.png" in files
    assert not [f for f in files if f.startswith("checkpoint-") or f.endswith((".jsonl", ".bin"))]


@pytest.mark.hub
@pytest.mark.skipif(not (os.environ.get("HF_TOKEN") and os.environ.get("FINGPT_HUB_SMOKE") == "1"),
                    reason="real Hub smoke test: set HF_TOKEN and FINGPT_HUB_SMOKE=1")
def test_real_hub_smoke(trained, tmp_path):
    """Push to a private repo on the real Hub, read the card back, delete the repo."""
    env = dict(os.environ, HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0",
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("HF_ENDPOINT", None)
    script = textwrap.dedent("""
        import sys, uuid
        from huggingface_hub import HfApi, ModelCard
        from fingpt_hf.hub import push_to_hub
        api = HfApi()
        repo_id = f"{api.whoami()['name']}/fingpt-hf-smoke-{uuid.uuid4().hex[:8]}"
        try:
            push_to_hub(sys.argv[1], repo_id, private=True, commit_message="fingpt-hf smoke test")
            files = set(api.list_repo_files(repo_id))
            assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= files, files
            assert ModelCard.load(repo_id).data.library_name == "peft"
        finally:
            api.delete_repo(repo_id, missing_ok=True)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(trained["out"])], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


LOAD_MERGED = textwrap.dedent(r"""
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM

    local, repo_id = sys.argv[1:3]
    ids = torch.tensor([[3, 4, 5, 9, 10, 6, 7, 11, 12]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(local).eval()(ids).logits
        b = AutoModelForCausalLM.from_pretrained(repo_id).eval()(ids).logits
    print(json.dumps({"max_diff": (a - b).abs().max().item()}))
""")


def test_push_merged_export_through_the_same_code(trained, hub, tmp_path):
    """`fingpt-hf export` output goes up with `fingpt-hf push` (one commit, LFS for the weights, the
    export's own card and record, no peft files) and loads back from the Hub with transformers alone."""
    from fingpt_hf.export.merge import export_model

    import shutil

    adapter = tmp_path / "adapter"  # the fixture's adapter, with the base it was made from recorded
    shutil.copytree(trained["out"], adapter, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(trained["base"])}))
    merged = tmp_path / "merged"
    export_model(str(trained["base"]), str(adapter), merged, echo=lambda line: None)
    before = snapshot(merged)
    env = hub_env(hub, tmp_path / "hf-home")
    proc = run_cli(["push", str(merged), "--repo-id", "tester/tiny-fingpt-merged"], env)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(merged) == before
    repo = hub.state.repos["tester/tiny-fingpt-merged"]
    commit = repo.commits[repo.branches["main"]]
    assert sorted(commit.files) == sorted(before)  # everything export wrote, nothing else
    assert {"config.json", "model.safetensors", "README.md", "fingpt_export.json"} <= set(commit.files)
    assert commit.files["model.safetensors"].lfs and commit.message.startswith("Upload fingpt-hf merged model")
    assert commit.files["README.md"].blob.read_bytes() == (merged / "README.md").read_bytes()
    load = subprocess.run([sys.executable, "-c", LOAD_MERGED, str(merged), "tester/tiny-fingpt-merged"], env=env,
                          capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)
    assert load.returncode == 0, load.stderr
    assert json.loads(load.stdout.strip().splitlines()[-1])["max_diff"] == 0.0
