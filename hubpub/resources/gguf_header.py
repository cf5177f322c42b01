"""The metadata and tensor shapes of a GGUF file, read from its header alone.

`gguf.GGUFReader` builds a numpy view of every field, the tokenizer's tens of thousands of strings
included, which takes seconds; the plan needs a dozen numbers and the tensor names.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_HEADER_ITEMS = 10_000_000


class GgufHeaderError(ValueError):
    pass


@dataclass(frozen=True)
class GgufHeader:
    fields: dict[str, Any]
    """Scalar and string metadata; arrays are skipped (recorded as None)."""
    tensors: dict[str, list[int]]
    """Tensor name -> its dimensions in GGUF order (innermost first)."""


def read_gguf_header(path: Path) -> GgufHeader:
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader = _Reader(data)
        if data[:4] != b"GGUF":
            raise GgufHeaderError(f"{path} is not a GGUF file")
        reader.offset = 4
        version = reader.unpack("<I")
        if version < 2:
            raise GgufHeaderError(f"{path}: GGUF version {version} is not supported")
        tensor_count, field_count = reader.unpack("<Q"), reader.unpack("<Q")
        if tensor_count > _MAX_HEADER_ITEMS or field_count > _MAX_HEADER_ITEMS:
            raise GgufHeaderError(f"{path}: implausible GGUF header")
        fields = {reader.string(): reader.value(reader.unpack("<I")) for _ in range(field_count)}
        tensors: dict[str, list[int]] = {}
        for _ in range(tensor_count):
            name = reader.string()
            tensors[name] = [reader.unpack("<Q") for _ in range(reader.unpack("<I"))]
            reader.offset += 12  # the tensor's type (u32) and data offset (u64)
    return GgufHeader(fields, tensors)


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.offset = 0

    def unpack(self, layout: str) -> Any:
        try:
            (value,) = struct.unpack_from(layout, self.data, self.offset)
        except struct.error:
            raise GgufHeaderError("the GGUF header ends early") from None
        self.offset += struct.calcsize(layout)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        if self.offset + length > len(self.data):
            raise GgufHeaderError("the GGUF header ends early")
        text = self.data[self.offset : self.offset + length].decode("utf-8", errors="replace")
        self.offset += length
        return text

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise GgufHeaderError(f"unknown GGUF value type {kind}")
        item_kind, count = self.unpack("<I"), self.unpack("<Q")
        if item_kind in _SCALARS:
            self.offset += struct.calcsize(_SCALARS[item_kind]) * count
        elif item_kind == _STRING:
            for _ in range(count):
                length = self.unpack("<Q")
                self.offset += length
        else:
            for _ in range(count):
                self.value(item_kind)
        return None
