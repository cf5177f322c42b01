from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from hubpub.calibration import build_dataset, read_rows, sample_indices, sample_texts
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


def test_the_rows_picked_are_those_picked_before_indices_were_drawn_alone(tmp_path: Path) -> None:
    # What sample_texts did when it shuffled the rows themselves: the demo's quantized weights depend on it.
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": f"sample {index}"}) + "\n" for index in range(50)))
    spec = calibration(data, num_samples=7, seed=42)
    order = list(range(50))
    random.Random(42).shuffle(order)
    assert sample_indices(spec, 50) == order[:7]
    assert sample_texts(spec, read_rows(spec), str) == [f"sample {index}" for index in order[:7]]


def test_a_hub_split_converts_only_the_rows_it_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = [{"text": f"sample {index}"} for index in range(5000)]
    corpus = datasets.Dataset.from_list(rows)
    read: list[int] = []
    real_iter, real_getitem = datasets.Dataset.__iter__, datasets.Dataset.__getitem__

    def counting_iter(self: datasets.Dataset) -> Any:
        for row in real_iter(self):
            read.append(1)
            yield row

    def counting_getitem(self: datasets.Dataset, key: Any) -> Any:
        read.append(1)
        return real_getitem(self, key)

    monkeypatch.setattr(datasets, "load_dataset", lambda name, split, token: corpus)
    monkeypatch.setattr(datasets.Dataset, "__iter__", counting_iter)
    monkeypatch.setattr(datasets.Dataset, "__getitem__", counting_getitem)
    spec = Calibration.model_validate({"dataset": "org/big-corpus", "num_samples": 16, "seed": 7})
    texts = sample_texts(spec, read_rows(spec), str)
    assert len(read) == 16
    local = tmp_path / "same.jsonl"
    local.write_text("".join(json.dumps(row) + "\n" for row in rows))
    from_file = calibration(local, num_samples=16, seed=7)
    assert texts == sample_texts(from_file, read_rows(from_file), str)


def test_a_hub_split_without_the_column_is_refused_before_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", lambda name, split, token: datasets.Dataset.from_list([{"body": "x"}])
    )
    with pytest.raises(StageError, match=r"org/corpus \[train\] has no column 'text' \(columns: body\)"):
        read_rows(Calibration.model_validate({"dataset": "org/corpus"}))


def bos_tokenizer() -> Any:
    """A word-level tokenizer that adds <s> to plain text, and a chat template that writes <s> itself."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "user", "hello", "there", "plain", "text"]
    backend = Tokenizer(models.WordLevel(vocab={word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(["<s>", "</s>"])
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = (
        "{{ bos_token }}{% for message in messages %}{{ message['role'] }} {{ message['content'] }} {% endfor %}"
    )
    return tokenizer


def test_every_sample_starts_with_one_bos_whether_chat_or_plain(tmp_path: Path) -> None:
    tokenizer = bos_tokenizer()
    chats, plain = tmp_path / "chats.jsonl", tmp_path / "plain.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "hello there"}]}) + "\n")
    plain.write_text(json.dumps({"text": "plain text"}) + "\n")
    (chat_ids,) = build_dataset(calibration(chats, messages_column="messages"), tokenizer)[0]["input_ids"]
    (plain_ids,) = build_dataset(calibration(plain), tokenizer)[0]["input_ids"]
    assert tokenizer.convert_ids_to_tokens(chat_ids) == ["<s>", "user", "hello", "there"]
    assert tokenizer.convert_ids_to_tokens(plain_ids) == ["<s>", "plain", "text"]
