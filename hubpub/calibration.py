"""Calibration samples: read, shuffle with the spec's seed, take `num_samples`, tokenize and truncate."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hubpub.errors import StageError
from hubpub.spec import Calibration


def read_rows(calibration: Calibration) -> list[dict[str, Any]]:
    """All rows of the calibration source, as dictionaries."""
    if calibration.is_local:
        return _local_rows(Path(calibration.dataset))
    from datasets import load_dataset

    try:
        dataset = load_dataset(calibration.dataset, split=calibration.split)
    except Exception as exc:
        raise StageError(
            f"could not load calibration dataset {calibration.dataset} [{calibration.split}]: {exc}"
        ) from exc
    return [dict(row) for row in dataset]


def _local_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return [{"text": block.strip()} for block in text.split("\n\n") if block.strip()]
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise StageError(f"{path}:{number}: not a JSON object: {exc.msg}") from None
        return rows
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("data"), list):
        loaded = loaded["data"]
    if not isinstance(loaded, list):
        raise StageError(f"{path}: expected a JSON list of objects (or {{'data': [...]}})")
    return loaded


def sample_texts(calibration: Calibration, rows: list[dict[str, Any]], chat_template: Any) -> list[str]:
    """Shuffle with the seed, take num_samples, and turn each row into text (chats through the template)."""
    order = list(range(len(rows)))
    random.Random(calibration.seed).shuffle(order)
    chosen = [rows[index] for index in order[: calibration.num_samples]]
    texts = []
    for position, row in enumerate(chosen):
        if not isinstance(row, dict) or calibration.column not in row:
            raise StageError(f"calibration row {order[position]} has no column '{calibration.column}'")
        value = row[calibration.column]
        texts.append(chat_template(value) if calibration.is_chat else str(value))
    return texts


def build_dataset(calibration: Calibration, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    """The tokenized calibration dataset for llm-compressor, and the facts the manifest records."""
    from datasets import Dataset

    rows = read_rows(calibration)
    if not rows:
        raise StageError(f"calibration dataset {calibration.dataset} is empty")

    def render(messages: Any) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False))

    texts = sample_texts(calibration, rows, render)
    encoded = tokenizer(texts, truncation=True, max_length=calibration.max_seq_length)
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})
    details = {
        "dataset": calibration.dataset if not calibration.is_local else Path(calibration.dataset).name,
        "split": calibration.split if not calibration.is_local else None,
        "column": calibration.column,
        "chat_template": calibration.is_chat,
        "rows_available": len(rows),
        "samples": len(texts),
        "max_seq_length": calibration.max_seq_length,
        "seed": calibration.seed,
        "tokens": sum(len(ids) for ids in encoded["input_ids"]),
    }
    return dataset, details
