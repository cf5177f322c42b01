"""The plan's sizes for known shapes, against real checkpoints where we have them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub.resources import UnknownShape, shape_from_config
from hubpub.resources.shape import config_from_gguf
from hubpub.resources.size import checkpoint_size
from hubpub.schemes import SCHEMES
from tests.resources.shapes import LLAMA_3_1_70B, SMOLLM2_1_7B

# model.safetensors of the demo releases (SmolLM2-135M from its GGUF), as `make demo` wrote them.
DEMO_MEASURED_BYTES = {"W4A16": 113_175_416, "W8A8": 163_226_688}


def _size(config: dict[str, object], scheme: str, group_size: int | None = None) -> int:
    info = SCHEMES[scheme]
    shape = shape_from_config(config)
    return checkpoint_size(
        shape, info, group_size=group_size or info.default_group_size, targets=("Linear",), ignore=("lm_head",)
    ).total


def test_llama_70b_base_and_w4a16_g128() -> None:
    shape = shape_from_config(LLAMA_3_1_70B)
    assert shape.parameters == pytest.approx(70.55e9, rel=0.001)
    assert shape.base_bytes == pytest.approx(141e9, rel=0.005)
    assert _size(LLAMA_3_1_70B, "W4A16") == pytest.approx(39.5e9, rel=0.005)


def test_schemes_order_by_bits_and_zero_points() -> None:
    sizes = {scheme: _size(LLAMA_3_1_70B, scheme) for scheme in SCHEMES}
    assert sizes["W4A16"] < sizes["W4A16_ASYM"] < sizes["W8A8"] < sizes["W8A16"]
    assert sizes["FP8_DYNAMIC"] == sizes["W8A8"]


def test_smollm2_1_7b_shape_matches_the_bench_checkpoint() -> None:
    shape = shape_from_config(SMOLLM2_1_7B)
    assert shape.parameters == pytest.approx(1.71e9, rel=0.01)
    # docs/benchmarks.md: the W4A16 checkpoint of this shape measured 1.04 GB.
    assert _size(SMOLLM2_1_7B, "W4A16") == pytest.approx(1.04e9, rel=0.02)


@pytest.fixture(scope="module")
def demo_config(demo_model: Path) -> dict[str, object]:
    return config_from_gguf(demo_model)  # about 5 s: the reader parses the whole tokenizer vocabulary


@pytest.mark.parametrize("scheme", sorted(DEMO_MEASURED_BYTES))
def test_demo_model_from_its_gguf_header_matches_the_real_checkpoint(
    scheme: str, demo_config: dict[str, object]
) -> None:
    config = demo_config
    shape = shape_from_config(config)
    assert (shape.num_layers, shape.hidden_size, shape.num_kv_heads, shape.tied_embeddings) == (30, 576, 3, True)
    assert shape.parameters == 134_515_008  # what preflight counted in the converted checkpoint
    assert _size(config, scheme, 64 if scheme == "W4A16" else None) == pytest.approx(
        DEMO_MEASURED_BYTES[scheme], rel=0.002
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"num_local_experts": 8}, "mixture of experts"),
        ({"architectures": ["GPT2LMHeadModel"]}, "not one the resource plan knows"),
        ({"hidden_size": None}, "lacks hidden_size"),
    ],
)
def test_unknown_shapes_are_refused_not_guessed(change: dict[str, object], reason: str) -> None:
    with pytest.raises(UnknownShape, match=reason):
        shape_from_config({**LLAMA_3_1_70B, **change})
