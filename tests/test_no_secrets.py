"""No secret reaches the disk: a token given as --hub_token and HF_TOKEN is in no file a run leaves.

A real short training (tiny random Llama, checkpoints every 2 steps) runs through recipes/sft.py
in a subprocess and pushes to the loopback Hub (tests/hub_server.py); then every file under the
output directory (pickled ``training_args.bin`` included), the run's stdout/stderr and every file
the Hub stored are searched, byte for byte, for both tokens.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from hub_server import LoopbackHub
from test_hub_push import hub_env
from tiny_models import save_tiny_llama, tiny_sft_recipe

REPO = Path(__file__).resolve().parent.parent
FLAG_TOKEN = "hf_FlagPlantedSecretXq7Zt1Vb9Lm3Kp5Wd"
ENV_TOKEN = "hf_EnvPlantedSecretRr2Yh8Nc4Gs6Jf0Ua"
REPO_ID = "tester/no-secrets-lora"


def files_holding(root: Path, secrets: tuple[str, ...]) -> list[str]:
    """Every file under ``root`` whose bytes contain one of ``secrets`` (as UTF-8, as pickles store str)."""
    needles = [s.encode("utf-8") for s in secrets]
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles))


def test_the_search_sees_a_token_in_a_pickle(tmp_path):
    """The byte search is able to fail: a pickled TrainingArguments with a token is found."""
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "x"), hub_token=FLAG_TOKEN, report_to="none")
    (tmp_path / "training_args.bin").write_bytes(pickle.dumps(args))
    assert files_holding(tmp_path, (FLAG_TOKEN,)) == [str(tmp_path / "training_args.bin")]


def test_secret_fields_cover_what_transformers_masks():
    """Every TrainingArguments field that transformers masks as a token (``*_token``) is one we keep off disk."""
    from transformers import TrainingArguments

    from fingpt_hf.training.run_info import SECRET_KEYS

    assert {f.name for f in fields(TrainingArguments) if f.name.endswith("_token")} <= SECRET_KEYS


def test_hub_token_is_never_written(tmp_path, default_model_path):
    import torch

    model = save_tiny_llama(tmp_path / "tiny", default_model_path, tie_word_embeddings=True)
    recipe = tiny_sft_recipe(model, save_strategy="steps", save_steps=2, push_to_hub=True, hub_model_id=REPO_ID)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = tmp_path / "out"
    with LoopbackHub(tmp_path / "hub-storage") as hub:
        env = dict(hub_env(hub, tmp_path / "hf-home"), HF_TOKEN=ENV_TOKEN)
        proc = subprocess.run(
            [sys.executable, str(REPO / "recipes" / "sft.py"), "--config", str(config), "--output_dir", str(out),
             "--hub_token", FLAG_TOKEN],
            capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        # The flag's token reached the push (it wins over HF_TOKEN), and the push happened.
        api_auth = {auth for (_, path), auth in zip(hub.state.requests, hub.state.auth_headers)
                    if path.startswith("/api/")}
        assert api_auth == {f"Bearer {FLAG_TOKEN}"}
        repo = hub.state.repos[REPO_ID]
        pushed = repo.commits[repo.branches["main"]].files
        assert {"adapter_model.safetensors", "README.md", "fingpt_run.json"} <= set(pushed)

    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2", "checkpoint-4"], checkpoints
    bins = sorted(out.rglob("training_args.bin"))
    assert len(bins) >= 3, bins  # the run's own and each checkpoint's
    for path in bins:
        assert torch.load(path, weights_only=False).hub_token is None
    for secret in (FLAG_TOKEN, ENV_TOKEN):
        assert secret not in proc.stdout and secret not in proc.stderr
    assert files_holding(out, (FLAG_TOKEN, ENV_TOKEN)) == []
    assert files_holding(tmp_path / "hub-storage", (FLAG_TOKEN, ENV_TOKEN)) == []
    assert "hub_token" not in yaml.safe_load((out / "recipe.yaml").read_text(encoding="utf-8"))
