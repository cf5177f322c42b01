from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from hubpub.checkpoint import linear_layers, read_header, read_tensors
from hubpub.errors import StageError


def write_safetensors_header(path: Path, tensors: dict[str, list[int]]) -> None:
    header = {name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]} for name, shape in tensors.items()}
    header["__metadata__"] = {"format": "pt"}  # type: ignore[assignment]
    payload = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(payload)) + payload)


def test_header_gives_names_and_shapes_without_weights(tmp_path: Path) -> None:
    write_safetensors_header(tmp_path / "model.safetensors", {"a.weight": [4, 8], "norm.weight": [8]})
    tensors = read_header(tmp_path / "model.safetensors")
    assert set(tensors) == {"a.weight", "norm.weight"}
    assert tensors["a.weight"].shape == (4, 8) and tensors["a.weight"].numel == 32


def test_sharded_checkpoints_are_read_through_the_index(tmp_path: Path) -> None:
    write_safetensors_header(tmp_path / "model-00001-of-00002.safetensors", {"a.weight": [2, 2]})
    write_safetensors_header(tmp_path / "model-00002-of-00002.safetensors", {"b.weight": [2, 4]})
    index = {
        "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert set(read_tensors(tmp_path)) == {"a.weight", "b.weight"}


def test_truncated_file_is_a_stage_error(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x01")
    with pytest.raises(StageError, match="too short"):
        read_header(tmp_path / "model.safetensors")


def test_tied_lm_head_appears_as_a_linear_layer(tmp_path: Path) -> None:
    write_safetensors_header(
        tmp_path / "model.safetensors",
        {
            "model.embed_tokens.weight": [100, 16],
            "model.layers.0.mlp.down_proj.weight": [16, 48],
            "model.norm.weight": [16],
        },
    )
    layers = linear_layers(read_tensors(tmp_path), {"tie_word_embeddings": True})
    assert [(layer.name, layer.in_features) for layer in layers] == [
        ("lm_head", 16),
        ("model.layers.0.mlp.down_proj", 48),
    ]
    untied = linear_layers(read_tensors(tmp_path), {"tie_word_embeddings": False})
    assert [layer.name for layer in untied] == ["model.layers.0.mlp.down_proj"]
