"""The GGUF header reader: the same facts as the gguf package's full reader, and no crash on a broken file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hubpub.resources.gguf_header import GgufHeaderError, read_gguf_header


def _write_gguf(path: Path) -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_uint32("llama.block_count", 2)
    writer.add_uint64("llama.context_length", 4096)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_bool("general.flag", True)
    writer.add_string("general.name", "tiny ✓")
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "a", "bc", ""])
    writer.add_array("tokenizer.ggml.scores", [0.0, 1.5, -2.0, 3.0])
    writer.add_array("general.nested", [[1, 2], [3]])
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_the_header_agrees_with_the_gguf_package(tmp_path: Path) -> None:
    from gguf import GGUFReader

    path = tmp_path / "tiny.gguf"
    _write_gguf(path)
    header = read_gguf_header(path)
    reference = GGUFReader(path)
    assert header.tensors == {tensor.name: [int(size) for size in tensor.shape] for tensor in reference.tensors}
    assert header.tensors["token_embd.weight"] == [8, 4]
    assert header.fields["llama.block_count"] == 2
    assert header.fields["llama.context_length"] == 4096
    assert header.fields["general.flag"] is True
    assert header.fields["general.name"] == "tiny ✓"
    assert header.fields["tokenizer.ggml.tokens"] is None
    assert header.fields["general.architecture"] == "llama"


@pytest.mark.parametrize("cut", [3, 10, 30, 200])
def test_a_cut_header_is_refused(tmp_path: Path, cut: int) -> None:
    whole = tmp_path / "whole.gguf"
    _write_gguf(whole)
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole.read_bytes()[:cut])
    with pytest.raises(GgufHeaderError):
        read_gguf_header(path)


def test_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(GgufHeaderError, match="not a GGUF file"):
        read_gguf_header(path)
