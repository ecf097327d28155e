"""User data sets: CSV/JSONL/JSON built from real benchmark rows, good and broken."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fingpt_hf.data.benchmarks import load_benchmark
from fingpt_hf.data.custom import load_custom_dataset
from fingpt_hf.data.errors import DataFormatError
from fingpt_hf.data.prompts import NEWS_INSTRUCTION, TWEET_INSTRUCTION
from fingpt_hf.errors import FinGPTError

# Raw TFNS-style ids, as a user export might have them.
TO_ID = {"negative": 0, "positive": 1, "neutral": 2}
ID_MAP = {0: "negative", 1: "positive", 2: "neutral"}


@pytest.fixture(scope="module")
def real_rows(data_dir) -> list[dict]:
    ds = load_benchmark("tfns", "test", data_dir).select(range(30))
    return [{"tweet": r["input"], "sentiment": TO_ID[r["output"]], "gold": r["output"]} for r in ds]


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"tweet": r["tweet"], "sentiment": r["sentiment"]}) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_csv_with_int_label_map(tmp_path, real_rows):
    path = write_csv(tmp_path / "my tweets.csv", real_rows, ["tweet", "sentiment"])
    ds = load_custom_dataset(path, "tweet", "sentiment", ID_MAP, instruction=TWEET_INSTRUCTION)
    assert ds.column_names == ["instruction", "input", "output", "dataset"]
    assert ds["input"] == [r["tweet"] for r in real_rows]
    assert ds["output"] == [r["gold"] for r in real_rows]  # CSV gives "0", the map has 0: same key
    assert set(ds["dataset"]) == {"my tweets"} and set(ds["instruction"]) == {TWEET_INSTRUCTION}


def test_jsonl_and_json_array(tmp_path, real_rows):
    jsonl = write_jsonl(tmp_path / "a.jsonl", real_rows)
    string_keys = {str(k): v for k, v in ID_MAP.items()}
    ds = load_custom_dataset(jsonl, "tweet", "sentiment", string_keys, name="mine")
    assert ds["output"] == [r["gold"] for r in real_rows]  # JSON ints against "0" keys
    assert set(ds["dataset"]) == {"mine"} and set(ds["instruction"]) == {NEWS_INSTRUCTION}

    array = tmp_path / "b.json"
    array.write_text(json.dumps([{"text": r["tweet"], "label": r["gold"]} for r in real_rows]), encoding="utf-8")
    ds2 = load_custom_dataset(array)  # default columns; labels already in LABELS
    assert ds2["input"] == ds["input"] and ds2["output"] == ds["output"]


def test_label_outside_the_map_names_file_and_row(tmp_path, real_rows):
    rows = [dict(r) for r in real_rows]
    rows[6]["sentiment"] = 3
    path = write_csv(tmp_path / "d.csv", rows, ["tweet", "sentiment"])
    with pytest.raises(DataFormatError) as err:
        load_custom_dataset(path, "tweet", "sentiment", ID_MAP)
    message = str(err.value)
    assert str(path) in message and "row 7" in message and "sentiment='3'" in message
    assert "expected one of '0', '1', '2'" in message

    jsonl = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataFormatError, match=r"line 7: sentiment=3 is not in the label map"):
        load_custom_dataset(jsonl, "tweet", "sentiment", ID_MAP)


def test_without_a_map_labels_must_be_label_words(tmp_path, real_rows):
    path = write_csv(tmp_path / "ids.csv", real_rows, ["tweet", "sentiment"])
    with pytest.raises(DataFormatError, match=r"row 1: sentiment='\d' is not in the label map"):
        load_custom_dataset(path, "tweet", "sentiment")


def test_csv_missing_column(tmp_path, real_rows):
    path = write_csv(tmp_path / "m.csv", real_rows, ["tweet"])
    with pytest.raises(DataFormatError, match=r"m\.csv, header: missing column\(s\) sentiment; found tweet"):
        load_custom_dataset(path, "tweet", "sentiment", ID_MAP)


def test_empty_file_undecodable_bytes_and_bad_json(tmp_path, real_rows):
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="e.csv: file is empty"):
        load_custom_dataset(empty, "tweet", "sentiment", ID_MAP)

    good = write_csv(tmp_path / "g.csv", real_rows, ["tweet", "sentiment"]).read_bytes().split(b"\n")
    good[3] = good[3][:5] + b"\xff" + good[3][5:]
    broken = tmp_path / "x.csv"
    broken.write_bytes(b"\n".join(good))
    # CSV errors name the record (row 3 is on line 4 here), as rows spanning lines need.
    with pytest.raises(DataFormatError, match=r"x\.csv, row 3: bytes that are not valid UTF-8"):
        load_custom_dataset(broken, "tweet", "sentiment", ID_MAP)

    lines = write_jsonl(tmp_path / "j.jsonl", real_rows).read_text(encoding="utf-8").splitlines()
    lines[8] = lines[8][:-3]
    (tmp_path / "j.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"j\.jsonl, line 9: not valid JSON"):
        load_custom_dataset(tmp_path / "j.jsonl", "tweet", "sentiment", ID_MAP)

    array = tmp_path / "a.json"
    array.write_text("[\n" + ",\n".join(json.dumps({"text": r["tweet"]}) for r in real_rows[:3]) + ",\n]\n")
    with pytest.raises(DataFormatError, match=r"a\.json, line 5: invalid JSON"):
        load_custom_dataset(array)


def test_empty_text_and_unsupported_suffix(tmp_path, real_rows):
    rows = [dict(r) for r in real_rows]
    rows[1]["tweet"] = "   "
    path = write_csv(tmp_path / "t.csv", rows, ["tweet", "sentiment"])
    with pytest.raises(DataFormatError, match="row 2: tweet='   '; expected non-empty text"):
        load_custom_dataset(path, "tweet", "sentiment", ID_MAP)
    other = tmp_path / "t.tsv"
    other.write_text("tweet\tsentiment\n")
    with pytest.raises(DataFormatError, match="unsupported file type '.tsv'"):
        load_custom_dataset(other, "tweet", "sentiment", ID_MAP)


def test_label_map_must_map_to_labels():
    with pytest.raises(FinGPTError, match="'Bullish' maps to 'up'"):
        load_custom_dataset("unused.csv", label_map={"Bullish": "up"})
