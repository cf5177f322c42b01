from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubpub.calibration import read_rows, sample_texts
from hubpub.errors import StageError
from hubpub.spec import Calibration


def calibration(path: Path, **extra: object) -> Calibration:
    return Calibration.model_validate({"dataset": str(path), **extra})


def test_jsonl_rows_are_shuffled_with_the_seed_and_truncated_to_num_samples(tmp_path: Path) -> None:
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": f"sample {index}"}) + "\n" for index in range(20)))
    spec = calibration(data, num_samples=5, seed=3)
    rows = read_rows(spec)
    first = sample_texts(spec, rows, str)
    assert len(first) == 5 and len(set(first)) == 5
    assert first == sample_texts(spec, rows, str)
    assert first != sample_texts(calibration(data, num_samples=5, seed=4), rows, str)
    assert first != [f"sample {index}" for index in range(5)]


def test_chat_rows_go_through_the_template(tmp_path: Path) -> None:
    data = tmp_path / "c.json"
    data.write_text(json.dumps([{"messages": [{"role": "user", "content": "hi"}]}]))
    spec = calibration(data, messages_column="messages")
    texts = sample_texts(spec, read_rows(spec), lambda messages: f"<chat {messages[0]['content']}>")
    assert texts == ["<chat hi>"]


def test_txt_files_split_on_blank_lines(tmp_path: Path) -> None:
    data = tmp_path / "c.txt"
    data.write_text("first paragraph\nstill first\n\nsecond\n\n\n")
    assert read_rows(calibration(data)) == [{"text": "first paragraph\nstill first"}, {"text": "second"}]


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    data = tmp_path / "c.jsonl"
    data.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(StageError, match=r"c.jsonl:2: not a JSON object"):
        read_rows(calibration(data))


def test_missing_column_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"body": "x"}) + "\n")
    spec = calibration(data)
    with pytest.raises(StageError, match="has no column 'text'"):
        sample_texts(spec, read_rows(spec), str)
