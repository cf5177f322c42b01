"""Host RAM on a CPU runner: what the plan counts once per run, and the card's snippets step by step."""

from __future__ import annotations

from pathlib import Path

from hubpub.resources import Machine, ResourcePlan, plan_resources, shape_from_config
from hubpub.resources.plan import HEAP_RETURN_BYTES
from hubpub.spec import ReleaseSpec
from tests.resources.shapes import SMOLLM2_1_7B

CPU_RUNNER = Machine((), 64 * 10**9, 500 * 10**9)
SMALL = {
    **SMOLLM2_1_7B,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
}


def _plan(config: dict[str, object], *, first_of_base: bool, **extra: object) -> ResourcePlan:
    release = ReleaseSpec.model_validate(
        {"base_model": "org/base", "repo_id": "org/base-w4a16", "scheme": "W4A16", "group_size": 64, **extra}
    )
    return plan_resources(release, shape_from_config(config), CPU_RUNNER, first_of_base=first_of_base)


def _ram(plan: ResourcePlan, stage: str) -> int:
    return next(item.ram_bytes for item in plan.stages if item.stage == stage)


def test_a_later_variant_of_the_same_base_skips_the_base_perplexity() -> None:
    for config in (SMALL, SMOLLM2_1_7B):
        first, later = _plan(config, first_of_base=True), _plan(config, first_of_base=False)
        assert _ram(later, "verify") <= _ram(first, "verify")
        assert _ram(later, "quantize") == _ram(first, "quantize")
    # A small model's tensors stay in the heap after the base is freed, so the base adds to the quantized load;
    # a large one's go back to the system, and the quantized load (decompressed beside its file) is the larger.
    assert _ram(_plan(SMALL, first_of_base=False), "verify") < _ram(_plan(SMALL, first_of_base=True), "verify")


def test_models_with_large_tensors_reuse_the_memory_of_the_one_loaded_before() -> None:
    shape = shape_from_config(SMOLLM2_1_7B)
    assert max(linear.out_features * linear.in_features for linear in shape.layer_linears(0)) * 4 >= HEAP_RETURN_BYTES
    plan = _plan(SMOLLM2_1_7B, first_of_base=True)
    base_in_float32 = shape.base_bytes * 2
    # Base then quantized in one process: the peak is one float32 model and its file, not two.
    assert _ram(plan, "verify") < 2 * base_in_float32


def test_the_card_needs_the_larger_of_its_two_snippets() -> None:
    plan = _plan(SMALL, first_of_base=True)
    card = next(item for item in plan.stages if item.stage == "card")
    assert set(card.ram_parts) == {"transformers snippet", "vllm snippet"}
    assert card.ram_bytes == max(card.ram_parts.values())
    without_vllm = _plan(SMALL, first_of_base=True, verify={"vllm": "off"})
    card = next(item for item in without_vllm.stages if item.stage == "card")
    assert set(card.ram_parts) == {"transformers snippet"}


def test_a_gguf_is_converted_by_the_first_variant_only(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"")  # the plan is given the shape; it reads no file
    source = {"source": {"path": str(tmp_path), "gguf_file": "model.gguf"}}
    first = _plan(SMALL, first_of_base=True, **source)
    later = _plan(SMALL, first_of_base=False, **source)
    assert _ram(first, "resolve") > _ram(later, "resolve") == _ram(later, "preflight")
    local = _plan(SMALL, first_of_base=True, source={"path": str(tmp_path)})
    assert _ram(local, "resolve") < _ram(later, "resolve")  # no child yet: hubpub alone


def test_a_cpu_verify_holds_the_weights_at_the_checkpoint_dtype_not_a_float32_copy() -> None:
    shape = shape_from_config(SMOLLM2_1_7B)
    plan = _plan(SMOLLM2_1_7B, first_of_base=True)
    base_in_float32 = shape.base_bytes * 2
    assert _ram(plan, "verify") < base_in_float32
    assert "float32 arithmetic" in next(item.note for item in plan.stages if item.stage == "verify")
