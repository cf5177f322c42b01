"""Read a checkpoint's config and tensor shapes without loading any weights.

Safetensors files start with an 8-byte little-endian header length and a JSON header that
names every tensor with its dtype and shape; that is all preflight checks need.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpub.errors import StageError

MAX_HEADER_BYTES = 100 * 1024 * 1024

# Files a user's tokenizer and generation depend on: a release carries the base's copies byte for byte.
BASE_ARTIFACTS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path | None = field(default=None, compare=False)
    data_start: int = field(default=0, compare=False)
    """Where the tensor's bytes start in `file`, for reading a few small values without loading the rest."""
    data_length: int = field(default=0, compare=False)

    def read_bytes(self) -> bytes:
        if self.file is None:
            raise StageError(f"{self.name}: no file to read its values from")
        with self.file.open("rb") as handle:
            handle.seek(self.data_start)
            return handle.read(self.data_length)

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{folder} has no config.json: it is not a transformers checkpoint") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path} is not valid JSON: {exc}") from None
    return config


def safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [folder / name for name in sorted(set(weight_map.values()))]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise StageError(f"{folder} has no .safetensors files")
    return files


def read_header(path: Path) -> dict[str, TensorInfo]:
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise StageError(f"{path} is too short to be a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise StageError(f"{path}: safetensors header of {length} bytes is implausible")
        header = json.loads(handle.read(length))
    return {
        name: TensorInfo(
            name=name,
            dtype=entry["dtype"],
            shape=tuple(entry["shape"]),
            file=path,
            data_start=8 + length + entry["data_offsets"][0],
            data_length=entry["data_offsets"][1] - entry["data_offsets"][0],
        )
        for name, entry in header.items()
        if name != "__metadata__"
    }


def read_tensors(folder: Path) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    for path in safetensors_files(folder):
        tensors.update(read_header(path))
    return tensors


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    nested = config.get("text_config")
    return nested if isinstance(nested, dict) else config


def ties_embeddings(config: dict[str, Any]) -> bool:
    return bool(config.get("tie_word_embeddings", text_config(config).get("tie_word_embeddings", False)))


_EMBEDDING_NAMES = ("embed_tokens", "wte", "wpe", "word_embeddings", "embed_positions", "position_embeddings")


@dataclass(frozen=True)
class LinearLayer:
    name: str
    out_features: int
    in_features: int


def linear_layers(tensors: dict[str, TensorInfo], config: dict[str, Any]) -> list[LinearLayer]:
    """Every 2-D `.weight` that is not an embedding, plus lm_head when it is tied to the embeddings."""
    layers = [
        LinearLayer(name.removesuffix(".weight"), tensor.shape[0], tensor.shape[1])
        for name, tensor in tensors.items()
        if name.endswith(".weight") and len(tensor.shape) == 2 and not _is_embedding(name)
    ]
    if ties_embeddings(config) and not any(layer.name.endswith("lm_head") for layer in layers):
        embedding = next((tensor for name, tensor in tensors.items() if name.endswith("embed_tokens.weight")), None)
        if embedding is not None:
            layers.append(LinearLayer("lm_head", embedding.shape[0], embedding.shape[1]))
    return sorted(layers, key=lambda layer: layer.name)


def _is_embedding(name: str) -> bool:
    return any(part in _EMBEDDING_NAMES for part in name.split("."))


def matches_layer(name: str, pattern: str) -> bool:
    """compressed-tensors matching: `re:` regexes match from the start; other names match exactly."""
    if pattern.startswith("re:"):
        return re.match(pattern.removeprefix("re:"), name) is not None
    return name == pattern


def selected_for_quantization(name: str, targets: tuple[str, ...], ignore: tuple[str, ...]) -> bool:
    """Whether the recipe's `targets` and `ignore` quantize the Linear layer `name`."""
    targeted = any(target == "Linear" or matches_layer(name, target) for target in targets)
    return targeted and not any(matches_layer(name, entry) for entry in ignore)
