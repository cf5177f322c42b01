"""Calibration samples: read, shuffle with the spec's seed, take `num_samples`, tokenize and truncate."""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubpub.errors import StageError
from hubpub.spec import Calibration


def read_rows(calibration: Calibration) -> Sequence[Any]:
    """The rows of the calibration source: a local file's as dictionaries, a Hub dataset's split as loaded.

    A Hub split can hold millions of rows: `sample_texts` reads only the ones it picks.
    """
    if calibration.is_local:
        return _local_rows(Path(calibration.dataset))
    from datasets import load_dataset

    from hubpub.hubclient import source_hub

    try:
        dataset = load_dataset(calibration.dataset, split=calibration.split, token=source_hub().token)
    except Exception as exc:
        raise StageError(
            f"could not load calibration dataset {calibration.dataset} [{calibration.split}]: {exc}"
        ) from exc
    if calibration.column not in dataset.column_names:
        raise StageError(
            f"calibration dataset {calibration.dataset} [{calibration.split}] has no column '{calibration.column}'"
            f" (columns: {', '.join(dataset.column_names)})"
        )
    return dataset  # type: ignore[no-any-return]


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


def sample_indices(calibration: Calibration, count: int) -> list[int]:
    """The rows to calibrate on: `count` indices shuffled with the seed, the first num_samples of them."""
    order = array("q", range(count))  # 8 bytes a row, not a Python int each
    random.Random(calibration.seed).shuffle(order)
    return order[: calibration.num_samples].tolist()


def sample_texts(calibration: Calibration, rows: Sequence[Any], chat_template: Any) -> list[str]:
    """Shuffle with the seed, take num_samples, and turn each row into text (chats through the template)."""
    indices = sample_indices(calibration, len(rows))
    chosen = [rows[index] for index in indices] if isinstance(rows, list) else rows.select(indices)  # type: ignore[attr-defined]
    texts = []
    for position, row in enumerate(chosen):
        if not isinstance(row, dict) or calibration.column not in row:
            raise StageError(f"calibration row {indices[position]} has no column '{calibration.column}'")
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
    # A chat template writes the BOS token itself when the model has one: adding another would double it.
    encoded = tokenizer(
        texts, truncation=True, max_length=calibration.max_seq_length, add_special_tokens=not calibration.is_chat
    )
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
