"""Broken copies of the real mirror files: each stops with the file and the line/row at fault."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.errors import FinGPTError

FPB = ("financial_phrasebank", "Sentences_50Agree.txt")
TFNS = "twitter-financial-news-sentiment"
FIQA = "fiqa-2018"
NWGI = ("news_with_gpt_instructions", "test.jsonl")


def head_lines(path: Path, n: int, encoding: str) -> list[str]:
    with open(path, encoding=encoding, newline="") as handle:
        return [next(handle) for _ in range(n)]


def mirror_with(tmp_path: Path, folder: str, files: dict[str, bytes]) -> Path:
    """A small mirror folder with the given files (the rest of the mirror is absent)."""
    root = tmp_path / "mirror"
    (root / folder).mkdir(parents=True)
    for name, data in files.items():
        (root / folder / name).write_bytes(data)
    return root


def assert_names(err: pytest.ExceptionInfo, path: Path, where: str) -> None:
    assert isinstance(err.value, FinGPTError)
    message = str(err.value)
    assert str(path) in message, message
    assert re.search(rf"\b{where}\b", message), message


def fpb_mirror(tmp_path, data_dir, edit) -> tuple[Path, Path]:
    lines = head_lines(data_dir.joinpath(*FPB), 6, "iso-8859-1")
    edit(lines)
    root = mirror_with(tmp_path, FPB[0], {FPB[1]: "".join(lines).encode("iso-8859-1")})
    return root, root.joinpath(*FPB)


def test_fpb_line_without_separator(tmp_path, data_dir):
    def edit(lines):
        lines[2] = lines[2].replace("@", " ")

    root, path = fpb_mirror(tmp_path, data_dir, edit)
    with pytest.raises(DataFormatError, match="no '@' separator") as err:
        load_benchmark("fpb", "test", root)
    assert_names(err, path, "line 3")


def test_fpb_unknown_label(tmp_path, data_dir):
    def edit(lines):
        sentence, _ = lines[3].rsplit("@", 1)
        lines[3] = f"{sentence}@bullish\n"

    root, path = fpb_mirror(tmp_path, data_dir, edit)
    with pytest.raises(DataFormatError, match="unknown label 'bullish'") as err:
        load_benchmark("fpb", "train", root)
    assert_names(err, path, "line 4")


def tfns_mirror(tmp_path, data_dir, train: bytes) -> tuple[Path, Path]:
    valid = "".join(head_lines(data_dir / TFNS / "sent_valid.csv", 5, "utf-8")).encode("utf-8")
    root = mirror_with(tmp_path, TFNS, {"sent_train.csv": train, "sent_valid.csv": valid})
    return root, root / TFNS / "sent_train.csv"


def test_csv_with_a_missing_column(tmp_path, data_dir):
    lines = head_lines(data_dir / TFNS / "sent_train.csv", 5, "utf-8")
    lines[0] = lines[0].replace("label", "sentiment")
    root, path = tfns_mirror(tmp_path, data_dir, "".join(lines).encode("utf-8"))
    with pytest.raises(DataFormatError, match="missing column\\(s\\) label; found text, sentiment") as err:
        load_benchmark("tfns", "train", root)
    assert_names(err, path, "header")


def test_empty_file(tmp_path, data_dir):
    root, path = tfns_mirror(tmp_path, data_dir, b"")
    with pytest.raises(DataFormatError, match="file is empty") as err:
        load_benchmark("tfns", "train", root)
    assert str(path) in str(err.value)


def test_undecodable_bytes(tmp_path, data_dir):
    lines = [line.encode("utf-8") for line in head_lines(data_dir / TFNS / "sent_train.csv", 6, "utf-8")]
    lines[4] = lines[4][:10] + b"\xff" + lines[4][10:]
    root, path = tfns_mirror(tmp_path, data_dir, b"".join(lines))
    with pytest.raises(DataFormatError, match="not valid utf-8") as err:
        load_benchmark("tfns", "train", root)
    assert_names(err, path, "line 5")


def test_csv_row_with_an_unknown_label_and_a_row_too_wide(tmp_path, data_dir):
    lines = head_lines(data_dir / TFNS / "sent_train.csv", 6, "utf-8")
    bad_label = lines[:3] + [lines[3].rstrip("\r\n").rsplit(",", 1)[0] + ",7\r\n"] + lines[4:]
    root, path = tfns_mirror(tmp_path, data_dir, "".join(bad_label).encode("utf-8"))
    with pytest.raises(DataFormatError, match=r"label='7'; expected one of \[0, 1, 2\]") as err:
        load_benchmark("tfns", "train", root)
    assert_names(err, path, "row 3")

    wide = lines[:2] + [lines[2].rstrip("\r\n") + ",extra\r\n"] + lines[3:]
    root2 = tmp_path / "wide"
    root2.mkdir()
    root2, path2 = tfns_mirror(root2, data_dir, "".join(wide).encode("utf-8"))
    with pytest.raises(DataFormatError, match="expected 2 fields") as err:
        load_benchmark("tfns", "train", root2)
    assert_names(err, path2, "row 2")


def test_fiqa_score_that_is_not_a_number(tmp_path, data_dir):
    files = {}
    for split in ("train", "validation", "test"):
        files[f"{split}.csv"] = "".join(head_lines(data_dir / FIQA / f"{split}.csv", 4, "utf-8")).encode("utf-8")
    rows = list(csv.reader(io.StringIO(files["validation.csv"].decode("utf-8"))))
    score_at = rows[0].index("sentiment_score")
    rows[2][score_at] = "very good"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    files["validation.csv"] = out.getvalue().encode("utf-8")
    root = mirror_with(tmp_path, FIQA, files)
    with pytest.raises(DataFormatError, match="sentiment_score='very good' is not a number") as err:
        load_benchmark("fiqa", "test", root)
    assert_names(err, root / FIQA / "validation.csv", "row 2")


def test_malformed_jsonl_line(tmp_path, data_dir):
    lines = head_lines(data_dir.joinpath(*NWGI), 5, "utf-8")
    lines[3] = lines[3][: len(lines[3]) // 2] + "\n"
    root = mirror_with(tmp_path, NWGI[0], {NWGI[1]: "".join(lines).encode("utf-8")})
    with pytest.raises(DataFormatError, match="invalid JSON") as err:
        load_benchmark("nwgi", "test", root)
    assert_names(err, root.joinpath(*NWGI), "line 4")


def test_jsonl_line_without_the_label_key(tmp_path, data_dir):
    lines = head_lines(data_dir.joinpath(*NWGI), 5, "utf-8")
    lines[1] = lines[1].replace('"label"', '"labels"')
    root = mirror_with(tmp_path, NWGI[0], {NWGI[1]: "".join(lines).encode("utf-8")})
    with pytest.raises(DataFormatError, match="expected an object with keys news, label") as err:
        load_benchmark("nwgi", "test", root)
    assert_names(err, root.joinpath(*NWGI), "line 2")


def test_missing_file_in_the_mirror(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataFormatError, match="file not found in the data mirror") as err:
        load_benchmark("fpb", "test", tmp_path / "mirror")
    assert "Sentences_50Agree.txt" in str(err.value)


def test_data_dir_that_is_not_a_directory(tmp_path):
    with pytest.raises(FinGPTError, match="--data-dir points to .*nowhere, which is not a directory"):
        load_benchmark("fpb", "test", tmp_path / "nowhere")
