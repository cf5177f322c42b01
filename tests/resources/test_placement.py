"""Placement on simulated GPUs: which GPUs, how much of each, vLLM's tensor parallel size, refusals."""

from __future__ import annotations

import pytest

from hubpub.placement import CPU
from hubpub.resources import Machine, ResourcePlan, plan_resources, shape_from_config
from hubpub.resources.runner import GB, Gpu
from hubpub.spec import ReleaseSpec
from tests.resources.shapes import LLAMA_3_1_70B, SMOLLM2_1_7B


def _release(**extra: object) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {"base_model": "meta/llama", "repo_id": "test/llama-w4a16", "scheme": "W4A16", **extra}
    )


def _plan(gpus: int, gb: float, config: dict[str, object] = LLAMA_3_1_70B, **runner: object) -> ResourcePlan:
    machine = Machine(tuple(Gpu(index, "sim", int(gb * GB)) for index in range(gpus)), None, None, **runner)  # type: ignore[arg-type]
    return plan_resources(_release(), shape_from_config(config), machine)


def _stage(plan: ResourcePlan, name: str):  # type: ignore[no-untyped-def]
    return next(stage for stage in plan.stages if stage.stage == name)


def test_small_model_takes_one_gpu_everywhere() -> None:
    plan = _plan(1, 24, SMOLLM2_1_7B)
    assert plan.refusals == []
    for stage in ("quantize", "verify", "vllm", "card", "publish"):
        assert list(plan.placement(stage).gpu_budgets) == [0], stage
    assert plan.placement("vllm").tensor_parallel_size == 1
    assert plan.placement("resolve") == CPU


def test_70b_on_one_24gb_gpu_quantizes_layer_by_layer_but_cannot_verify() -> None:
    plan = _plan(1, 24)
    assert _stage(plan, "quantize").refusal is None
    assert plan.placement("quantize").gpu_budgets == {0: pytest.approx(24 * GB * 0.9, rel=0.05)}
    verify = _stage(plan, "verify")
    assert verify.refusal is not None
    assert "stage verify needs 14" in verify.refusal and "1 × 24.0 GB GPU" in verify.refusal
    assert "cpu_offload" in verify.refusal


def test_70b_with_cpu_offload_spills_to_host_ram() -> None:
    plan = _plan(1, 24, cpu_offload=True)
    verify = _stage(plan, "verify")
    assert verify.refusal is None
    assert verify.placement.cpu_offload_bytes > 100 * GB
    assert verify.ram_bytes > verify.placement.cpu_offload_bytes


@pytest.mark.parametrize(
    ("gpus", "gb", "verify_gpus", "tensor_parallel"),
    [(2, 80, 2, 1), (4, 48, 4, 2), (8, 24, 7, 4), (4, 80, 2, 1)],
)
def test_70b_spreads_over_the_fewest_gpus_that_hold_it(
    gpus: int, gb: float, verify_gpus: int, tensor_parallel: int
) -> None:
    plan = _plan(gpus, gb)
    assert plan.refusals == []
    assert len(plan.placement("verify").gpu_budgets) == verify_gpus
    assert plan.placement("vllm").tensor_parallel_size == tensor_parallel
    assert len(plan.placement("vllm").gpu_budgets) == tensor_parallel


def test_tensor_parallel_must_divide_the_heads() -> None:
    # 9 heads, 3 KV heads (SmolLM2-135M): no power of two above 1 divides them, so vLLM stays on one GPU.
    config = {**SMOLLM2_1_7B, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576 * 32}
    plan = _plan(4, 24, config)
    vllm = _stage(plan, "vllm")
    assert vllm.placement.tensor_parallel_size == 1 or vllm.refusal is not None


def test_70b_on_two_24gb_gpus_is_refused_with_what_would_fit() -> None:
    plan = _plan(2, 24)
    refused = {stage.stage for stage in plan.stages if stage.refusal}
    assert {"verify", "vllm", "evaluate", "card", "publish"} - {"evaluate"} <= refused
    vllm = _stage(plan, "vllm")
    assert vllm.refusal is not None and "power of two" in vllm.refusal
