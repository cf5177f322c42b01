"""The prediction checked against a real load: platform matching and what counts as a disagreement.

The observations here are written by hand in the shape the vLLM child reports them; tests/vllm_smoke has the
real loads.
"""

from __future__ import annotations

from typing import Any

from hubpub.vllm import predict
from hubpub.vllm.agreement import PredictionCheck, check_prediction, verdict_for
from tests.vllm.test_static_preflight import load_fixture

W4A16 = predict(*load_fixture("smollm2-135m-w4a16"))
W8A8 = predict(*load_fixture("smollm2-135m-w8a8"))
AVX2_CPU = {"kind": "cpu", "arch": "x86_64", "name": "AMD EPYC 7763", "isa": "AVX2", "features": ["avx2"]}
AVX512_CPU = {
    "kind": "cpu",
    "arch": "x86_64",
    "name": "Intel Xeon",
    "isa": "AVX512",
    "features": ["avx2", "avx512", "avx512_bf16", "vnni"],
}
MISSING_OP = "load: AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"


def gpu(major: int, minor: int) -> dict[str, Any]:
    return {"kind": "gpu", "name": "NVIDIA test GPU", "capability": [major, minor]}


def test_platforms_match_the_verdict_that_covers_them() -> None:
    assert verdict_for(W8A8, gpu(9, 0)).generation == "Hopper"  # type: ignore[union-attr]
    assert verdict_for(W8A8, gpu(8, 6)).generation == "Ampere"  # type: ignore[union-attr]
    assert verdict_for(W8A8, gpu(12, 0)).generation == "Blackwell"  # type: ignore[union-attr]
    assert verdict_for(W8A8, gpu(7, 0)) is None
    assert verdict_for(W8A8, AVX2_CPU).generation == "x86-64 AVX2 CPU"  # type: ignore[union-attr]
    assert verdict_for(W8A8, AVX512_CPU).generation == "x86-64 AVX-512 CPU"  # type: ignore[union-attr]
    assert verdict_for(W8A8, {**AVX512_CPU, "zen": True}) is None
    assert verdict_for(W8A8, {"kind": "cpu", "arch": "aarch64", "features": []}) is None
    assert verdict_for(W8A8, None) is None


def test_a_load_with_the_predicted_scheme_and_kernel_agrees() -> None:
    check = check_prediction(
        W8A8,
        platform=AVX2_CPU,
        observed_on="CPU AMD EPYC 7763 (x86_64, AVX2)",
        loaded=True,
        schemes=["CompressedTensorsW8A8Int8"],
        kernels=["CPUInt8ScaledMMLinearKernel"],
        failure=None,
    )

    assert check == PredictionCheck("x86-64 AVX2 CPU", "CPU AMD EPYC 7763 (x86_64, AVX2)", True, ())
    assert PredictionCheck.from_dict(check.as_dict()) == check


def test_another_kernel_than_predicted_is_a_difference() -> None:
    check = check_prediction(
        W8A8,
        platform=AVX2_CPU,
        observed_on=None,
        loaded=True,
        schemes=["CompressedTensorsW8A8Int8"],
        kernels=["ZentorchInt8ScaledMMLinearKernel"],
        failure=None,
    )

    assert check.agrees is False
    assert check.differences == (
        "kernels: predicted CPUInt8ScaledMMLinearKernel on x86-64 AVX2 CPU, vLLM used ZentorchInt8ScaledMMLinearKernel",
    )


def test_the_predicted_avx2_failure_agrees_when_vllm_fails_the_same_way() -> None:
    check = check_prediction(
        W4A16,
        platform=AVX2_CPU,
        observed_on=None,
        loaded=False,
        schemes=["CompressedTensorsWNA16"],
        kernels=["CPUWNA16LinearKernel"],
        failure=MISSING_OP,
    )

    assert check.agrees is True


def test_a_failure_where_a_load_was_predicted_is_a_difference() -> None:
    check = check_prediction(
        W4A16, platform=AVX512_CPU, observed_on=None, loaded=False, schemes=[], kernels=[], failure=MISSING_OP
    )

    assert check.agrees is False
    assert check.differences[0].startswith("predicted to load on x86-64 AVX-512 CPU, but vLLM failed: load:")


def test_a_load_where_a_refusal_was_predicted_is_a_difference() -> None:
    check = check_prediction(
        W4A16,
        platform=AVX2_CPU,
        observed_on=None,
        loaded=True,
        schemes=["CompressedTensorsWNA16"],
        kernels=["CPUWNA16LinearKernel"],
        failure=None,
    )

    assert check.agrees is False
    assert "predicted to be refused on x86-64 AVX2 CPU" in check.differences[0]


def test_a_refusal_for_another_reason_is_a_difference() -> None:
    failure = "load: ValueError: Failed to find a kernel that can implement the WNA16 linear layer. Reasons: ..."
    check = check_prediction(
        W4A16, platform=AVX2_CPU, observed_on=None, loaded=False, schemes=[], kernels=[], failure=failure
    )

    assert check.agrees is False
    assert "as predicted, but for another reason" in check.differences[0]


def test_no_verdict_for_the_platform_means_nothing_to_compare() -> None:
    check = check_prediction(W8A8, platform=None, observed_on=None, loaded=True, schemes=[], kernels=[], failure=None)

    assert check.agrees is None and check.platform is None
