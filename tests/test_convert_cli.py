"""`fingpt-hf model convert`: the engine's checks, output layout, provenance and fault behaviour.

Family-specific equality with the original code lives in tests/test_convert_<family>.py; this
file uses a tiny Baichuan2 checkpoint in its original layout (tests/reference_baichuan2.py) as the
source, since the engine is the same for every family.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reference_baichuan2 import write_tiny_original

from fingpt_hf.conversion.convert import CONVERSION_FILE, convert_checkpoint
from fingpt_hf.conversion.spec import SOURCE_KEY, ConversionError
from fingpt_hf.errors import FinGPTError
from fingpt_hf.io import sha256_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("baichuan2-src")
    return write_tiny_original(tmp / "ckpt", tmp / "code", seed=1, fmt="bin-sharded")


@pytest.fixture(scope="module")
def source_st(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("baichuan2-st")
    return write_tiny_original(tmp / "ckpt", tmp / "code", seed=1, fmt="safetensors")


def copy_source(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "model", "convert", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def test_cli_converts_and_records_provenance(source, tmp_path):
    out = tmp_path / "native"
    proc = run_cli(str(source), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert config[SOURCE_KEY] == {"family": "baichuan2", "source": str(source.resolve()), "revision": None}
    assert "auto_map" not in config  # nothing points at remote code
    record = json.loads((out / CONVERSION_FILE).read_text())
    shards = sorted(p.name for p in source.glob("*.bin"))
    assert set(shards) <= set(record["source_files_sha256"]) and "tokenizer.model" in record["source_files_sha256"]
    for name, digest in record["source_files_sha256"].items():
        assert digest == sha256_file(source / name), name
    readme = (out / "README.md").read_text()
    assert str(source.resolve()) in readme and record["source_files_sha256"]["tokenizer.model"] in readme
    assert not list(out.glob("*.py")) and not list(out.glob("*.bin"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no build directory left


def test_streamed_shards_load_and_match_one_file(source, source_st, tmp_path):
    """Small output shards (streaming) and a safetensors source give the same weights."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    sharded = convert_checkpoint(str(source), tmp_path / "sharded", max_shard_bytes=4 * 1024**2)
    whole = convert_checkpoint(str(source_st), tmp_path / "whole")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 2 and files == sorted(p.name for p in sharded.glob("model-*.safetensors"))
    single = load_file(whole / "model.safetensors")
    merged = {k: v for f in files for k, v in load_file(sharded / f).items()}
    assert merged.keys() == single.keys()
    for name, tensor in single.items():
        assert torch.equal(merged[name], tensor), name
    model = AutoModelForCausalLM.from_pretrained(sharded)
    assert type(model).__name__ == "LlamaForCausalLM"


def test_dtype_option(source, tmp_path):
    from safetensors import safe_open

    out = convert_checkpoint(str(source), tmp_path / "fp16", dtype="float16")
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"


# --- bad input: a clear error naming the file, before anything is written --------------------------

def _refused(src: str, out: Path, match: str, **kwargs) -> None:
    with pytest.raises(ConversionError, match=match):
        convert_checkpoint(src, out, **kwargs)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_other_architecture(source, tmp_path):
    src = copy_source(source, tmp_path / "llama")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    _refused(str(src), tmp_path / "out", r"config\.json: model_type 'llama'.*Baichuan2-7B.*ChatGLM2-6B.*Qwen")


def test_missing_shard(source, tmp_path):
    src = copy_source(source, tmp_path / "src")
    victim = sorted(src.glob("pytorch_model-*.bin"))[-1]
    victim.unlink()
    _refused(str(src), tmp_path / "out", f"missing: {victim.name}")


def test_truncated_shards(source, source_st, tmp_path):
    src = copy_source(source, tmp_path / "bin")
    victim = sorted(src.glob("pytorch_model-*.bin"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    _refused(str(src), tmp_path / "out-bin", f"{victim.name}: not a readable PyTorch weights file")
    src = copy_source(source_st, tmp_path / "st")
    victim = src / "model.safetensors"
    victim.write_bytes(victim.read_bytes()[:-1000])
    _refused(str(src), tmp_path / "out-st", "model.safetensors: truncated")


def test_weights_of_another_shape(source, tmp_path):
    src = copy_source(source, tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "hidden_size": config["hidden_size"] * 2}))
    _refused(str(src), tmp_path / "out", "config.json\\s+implies|of shape")


def test_missing_tokenizer_file(source, tmp_path):
    src = copy_source(source, tmp_path / "src")
    (src / "tokenizer.model").unlink()
    _refused(str(src), tmp_path / "out", "missing tokenizer file.*tokenizer.model")


def test_existing_output_needs_overwrite(source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FinGPTError, match="exists and is not empty; pass --overwrite"):
        convert_checkpoint(str(source), out)
    assert (out / "keep.txt").read_text() == "mine"
    convert_checkpoint(str(source), out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_hub_id_while_offline_and_bad_names(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    _refused("baichuan-inc/Baichuan2-7B-Base", tmp_path / "out", "HF_HUB_OFFLINE=1")
    _refused("./no/such/dir", tmp_path / "out", "no such directory")
    _refused("a/../b", tmp_path / "out", "no such directory")


def test_cli_errors_without_traceback(tmp_path):
    proc = run_cli(str(tmp_path / "nothing-here"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stderr.startswith("fingpt-hf: error: ") and "Traceback" not in proc.stderr
    proc = run_cli(str(tmp_path), "--output", str(tmp_path / "out"), "--dtype", "int8")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_killed_conversion_leaves_no_output(source, tmp_path):
    """kill -9 in the middle of writing shards: the output never appears half-written, and the
    next run removes the dead build directory and finishes."""
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "fingpt_hf.cli", "model", "convert", str(source), "--output",
                             str(out), "--max-shard-size", "0.0005"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while not list(tmp_path.glob(".out.convert.*/.shard-00001.safetensors")):
            assert proc.poll() is None, "the conversion ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert list(tmp_path.glob(".out.convert.*"))  # the dead run's build directory, nothing else
    convert_checkpoint(str(source), out)
    assert (out / "model.safetensors").is_file() and not list(tmp_path.glob(".out.convert.*"))


UPLOAD = """
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo(sys.argv[2], private=True)
print(api.upload_folder(folder_path=sys.argv[1], repo_id=sys.argv[2]).oid)
"""


def test_hub_id_at_a_revision(source, tmp_path):
    """A Hub id is downloaded at the asked revision and the commit sha is recorded (loopback Hub)."""
    from hub_server import LoopbackHub
    from test_hub_push import hub_env

    with LoopbackHub(tmp_path / "hub") as hub:
        env = hub_env(hub, tmp_path / "home")
        upload = subprocess.run([sys.executable, "-c", UPLOAD, str(source), "tester/tiny-baichuan2"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert upload.returncode == 0, upload.stderr[-3000:]
        commit = upload.stdout.strip().splitlines()[-1]
        out = tmp_path / "native"
        proc = subprocess.run([sys.executable, "-m", "fingpt_hf.cli", "model", "convert", "tester/tiny-baichuan2",
                               "--revision", "main", "--output", str(out)], env=env, capture_output=True, text=True,
                              timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config[SOURCE_KEY] == {"family": "baichuan2", "source": "tester/tiny-baichuan2", "revision": commit}
    record = json.loads((out / CONVERSION_FILE).read_text())
    for name, digest in record["source_files_sha256"].items():
        assert digest == sha256_file(source / name), name
    assert f"revision `{commit}`" in (out / "README.md").read_text()
