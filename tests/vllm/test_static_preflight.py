"""The static vLLM preflight: hubpub.vllm.rules applied by the hubpub.vllm predictor, with no GPU and no vLLM.

Crafted configs cover every rule the rules module encodes; the demo fixtures are the real SmolLM2-135M
releases (config.json and the safetensors header, no weights).
"""

from __future__ import annotations

import ast
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hubpub.checkpoint import TensorInfo
from hubpub.errors import UsageError
from hubpub.vllm import (
    GenerationVerdict,
    KernelRequest,
    VllmPrediction,
    choose_mixed_precision_kernel,
    predict,
    predict_folder,
    rules,
)
from hubpub.vllm.config import _QuantizationArgs

FIXTURES = Path(__file__).parent / "fixtures"
GENERATIONS = ("Turing", "Ampere", "Ada", "Hopper", "Blackwell")
CAPABILITIES = {"Turing": 75, "Ampere": 80, "Ada": 89, "Hopper": 90, "Blackwell": 100}

# --- builders -----------------------------------------------------------------------------------------------------


def qargs(
    num_bits: int = 4,
    type: str = "int",
    strategy: str | None = "group",
    group_size: int | None = 128,
    symmetric: bool = True,
    dynamic: bool | str = False,
    **extra: Any,
) -> dict[str, Any]:
    """Quantization arguments as compressed-tensors writes them (every field spelled out)."""
    return {
        "actorder": None,
        "block_structure": None,
        "dynamic": dynamic,
        "group_size": group_size,
        "num_bits": num_bits,
        "observer": None,
        "observer_kwargs": {},
        "scale_dtype": None,
        "strategy": strategy,
        "symmetric": symmetric,
        "type": type,
        "zp_dtype": None,
        **extra,
    }


W4_G128 = qargs()
W8_CHANNEL = qargs(num_bits=8, strategy="channel", group_size=None)
INT8_TOKEN = qargs(num_bits=8, strategy="token", group_size=None, dynamic=True)
INT8_TENSOR_STATIC = qargs(num_bits=8, strategy="tensor", group_size=None)
FP8_CHANNEL = qargs(num_bits=8, type="float", strategy="channel", group_size=None)
FP8_TOKEN = qargs(num_bits=8, type="float", strategy="token", group_size=None, dynamic=True)
NVFP4 = qargs(num_bits=4, type="float", strategy="tensor_group", group_size=16)
NVFP4_INPUT = qargs(num_bits=4, type="float", strategy="tensor_group", group_size=16, dynamic="local")
MXFP4 = qargs(num_bits=4, type="float", strategy="group", group_size=32)


def group(
    weights: dict[str, Any],
    input_activations: dict[str, Any] | None = None,
    *,
    targets: tuple[str, ...] = ("Linear",),
    output_activations: dict[str, Any] | None = None,
    fmt: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "targets": list(targets),
        "weights": weights,
        "input_activations": input_activations,
        "output_activations": output_activations,
    }
    if fmt is not None:
        entry["format"] = fmt
    return entry


def config(
    *groups: dict[str, Any],
    fmt: str | None = "pack-quantized",
    ignore: tuple[str, ...] = ("lm_head",),
    tied: bool = False,
    dtype: str = "bfloat16",
    **quantization: Any,
) -> dict[str, Any]:
    """A Llama config.json with a compressed-tensors quantization_config."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "dtype": dtype,
        "tie_word_embeddings": tied,
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "format": fmt,
            "config_groups": {f"group_{index}": entry for index, entry in enumerate(groups)},
            "ignore": list(ignore),
            "kv_cache_scheme": None,
            "sparsity_config": {},
            "transform_config": {},
            "quantization_status": "compressed",
            **quantization,
        },
    }


def module_tensors(
    name: str,
    n: int,
    k: int,
    layout: str,
    *,
    bits: int = 4,
    group_size: int | None = 128,
    symmetric: bool = True,
    inputs: str | None = None,
) -> dict[str, TensorInfo]:
    """The tensors compressed-tensors writes for one Linear (shapes only)."""
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
    scale_columns = math.ceil(k / group_size) if group_size else 1
    if layout == "dense":
        shapes["weight"] = ("BF16", (n, k))
    elif layout == "packed":
        shapes["weight_packed"] = ("I32", (n, math.ceil(k * bits / 32)))
        shapes["weight_scale"] = ("BF16", (n, scale_columns))
        shapes["weight_shape"] = ("I64", (2,))
        if not symmetric:
            shapes["weight_zero_point"] = ("I32", (math.ceil(n * bits / 32), scale_columns))
    elif layout in ("int8", "int4-unpacked"):
        shapes["weight"] = ("I8", (n, k))
        shapes["weight_scale"] = ("BF16", (n, scale_columns))
    elif layout in ("fp8", "fp8-block"):
        shapes["weight"] = ("F8_E4M3", (n, k))
        block_shape = (math.ceil(n / 128), math.ceil(k / 128)) if layout == "fp8-block" else (n, 1)
        shapes["weight_scale"] = ("F32", block_shape)
    elif layout == "nvfp4":
        shapes["weight_packed"] = ("U8", (n, k // 2))
        shapes["weight_scale"] = ("F8_E4M3", (n, k // 16))
        shapes["weight_global_scale"] = ("F32", (1,))
    elif layout == "mxfp4":
        shapes["weight_packed"] = ("U8", (n, k // 2))
        shapes["weight_scale"] = ("U8", (n, k // 32))
    elif layout == "mxfp8":
        shapes["weight"] = ("F8_E4M3", (n, k))
        shapes["weight_scale"] = ("U8", (n, k // 32))
    else:
        raise AssertionError(f"unknown layout {layout}")
    if inputs in ("static", "static-asymmetric"):
        shapes["input_scale"] = ("F32", (1,))
    if inputs == "static-asymmetric":
        shapes["input_zero_point"] = ("I8", (1,))
    if inputs == "nvfp4":
        shapes["input_global_scale"] = ("F32", (1,))
    return {
        f"{name}.{suffix}": TensorInfo(f"{name}.{suffix}", dtype, shape) for suffix, (dtype, shape) in shapes.items()
    }


def llama(
    layout: str,
    *,
    hidden: int = 1024,
    intermediate: int = 4096,
    kv: int = 256,
    lm_head: str | None = "dense",
    embedding: str = "dense",
    **module_options: Any,
) -> dict[str, TensorInfo]:
    """A one-layer Llama checkpoint's tensors: every Linear of the layer in `layout`."""
    linears = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (kv, hidden),
        "self_attn.v_proj": (kv, hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (intermediate, hidden),
        "mlp.up_proj": (intermediate, hidden),
        "mlp.down_proj": (hidden, intermediate),
    }
    tensors: dict[str, TensorInfo] = {}
    for short, (n, k) in linears.items():
        tensors.update(module_tensors(f"model.layers.0.{short}", n, k, layout, **module_options))
    tensors.update(module_tensors("model.embed_tokens", 32000, hidden, embedding, **module_options))
    if lm_head is not None:
        tensors.update(module_tensors("lm_head", 32000, hidden, lm_head, **module_options))
    for norm in ("model.norm", "model.layers.0.input_layernorm", "model.layers.0.post_attention_layernorm"):
        tensors[f"{norm}.weight"] = TensorInfo(f"{norm}.weight", "BF16", (hidden,))
    return tensors


def verdict(prediction: VllmPrediction, generation: str) -> GenerationVerdict:
    return next(item for item in prediction.verdicts if item.generation == generation)


def gpu_verdicts(prediction: VllmPrediction) -> list[GenerationVerdict]:
    """The GPU generations' verdicts (vLLM 0.33.0's rules); tests/vllm/test_cpu_preflight.py covers the CPUs."""
    return [item for item in prediction.verdicts if item.kind == "gpu"]


def loads_on(prediction: VllmPrediction) -> list[str]:
    return [item.generation for item in gpu_verdicts(prediction) if item.loads]


def all_reasons(prediction: VllmPrediction) -> str:
    return "\n".join(reason for item in gpu_verdicts(prediction) for reason in item.reasons)


def load_fixture(name: str) -> tuple[dict[str, Any], dict[str, TensorInfo]]:
    config_data = json.loads((FIXTURES / f"{name}.config.json").read_text(encoding="utf-8"))
    header = json.loads((FIXTURES / f"{name}.tensors.json").read_text(encoding="utf-8"))
    tensors = {key: TensorInfo(key, entry["dtype"], tuple(entry["shape"])) for key, entry in header.items()}
    return config_data, tensors


# --- the rules module ---------------------------------------------------------------------------------------------


def test_rules_name_the_five_generations_and_the_pinned_versions() -> None:
    assert [(item.name, item.capability) for item in rules.GPU_GENERATIONS] == list(CAPABILITIES.items())
    assert all(item.examples for item in rules.GPU_GENERATIONS)
    assert rules.VLLM_VERSION == "0.33.0"
    assert rules.COMPRESSED_TENSORS_VERSION == "0.17.0"


def test_the_pydantic_mirror_accepts_exactly_the_quantization_args_fields() -> None:
    # The field set was checked against the installed compressed-tensors 0.19 QuantizationArgs (the same as 0.17).
    assert set(_QuantizationArgs.model_fields) == rules.QUANTIZATION_ARGS_FIELDS
    assert set(qargs()) == rules.QUANTIZATION_ARGS_FIELDS


def test_scheme_rows_are_numbered_one_to_fourteen_in_order() -> None:
    assert [row.row for row in rules.SCHEME_ROWS] == [str(number) for number in range(1, 15)]
    assert [kernel.name for kernel in rules.MIXED_PRECISION_KERNELS] == [
        "CutlassW4A8LinearKernel",
        "MacheteLinearKernel",
        "MarlinLinearKernel",
        "ConchLinearKernel",
        "ExllamaLinearKernel",
        "TritonW4A16LinearKernel",
        "HummingLinearKernel",
    ]


def test_importing_the_checker_stays_cheap() -> None:
    code = (
        "import sys, hubpub.vllm\n"
        "heavy = {'torch', 'safetensors', 'compressed_tensors', 'transformers', 'vllm'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _imported_modules(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    return imported


def test_the_vllm_package_sits_below_the_pipeline_and_its_child_script_needs_no_hubpub() -> None:
    package = Path(rules.__file__).parent
    upper = ("hubpub.stages", "hubpub.pipeline", "hubpub.api", "hubpub.cli")
    for path in package.glob("*.py"):
        imported = _imported_modules(path)
        assert not [name for name in imported if name.startswith(upper)], path.name
    assert not [name for name in _imported_modules(package / "child.py") if name.split(".")[0] == "hubpub"]


# --- the demo releases --------------------------------------------------------------------------------------------


def test_demo_w4a16_loads_with_marlin_and_machete_takes_gate_up_on_hopper() -> None:
    config_data, tensors = load_fixture("smollm2-135m-w4a16")
    prediction = predict(config_data, tensors)

    assert prediction.quantized and prediction.problems == () and prediction.warnings == ()
    assert loads_on(prediction) == list(GENERATIONS)
    for item in gpu_verdicts(prediction):
        assert item.schemes == ("CompressedTensorsWNA16",)
        expected = (
            ("MacheteLinearKernel", "MarlinLinearKernel") if item.generation == "Hopper" else ("MarlinLinearKernel",)
        )
        assert item.kernels == expected, item.generation
    # Hopper, per fused layer (K_part % 64, N_part % 128): gate_up N=3072 fits Machete; qkv N=960, o_proj and
    # down_proj N=576 do not, so Marlin takes them.
    hopper_notes = " ".join(verdict(prediction, "Hopper").notes)
    assert "MacheteLinearKernel on 30 layer(s) (e.g. model.layers.0.mlp.gate_up_proj)" in hopper_notes
    assert "MarlinLinearKernel on 90 layer(s)" in hopper_notes
    assert "N_part 576 is not a multiple of 128" in hopper_notes
    assert any("float16" in note for note in verdict(prediction, "Turing").notes)
    assert prediction.summary().startswith(
        "loads on Turing, Ampere, Ada, Hopper, Blackwell, x86-64 AVX-512 CPU, x86-64 AMX CPU; refused on x86-64 AVX2"
        " CPU (model.layers.0"
    )
    (line,) = prediction.expected_log_lines
    assert re.search(line, "INFO 01-01 [wNa16.py:42] Using MarlinLinearKernel for CompressedTensorsWNA16")
    assert re.search(line, "Using MacheteLinearKernel for CompressedTensorsWNA16")


def test_demo_w4a16_refuses_tensor_parallel_two_on_row_parallel_layers() -> None:
    config_data, tensors = load_fixture("smollm2-135m-w4a16")
    prediction = predict(config_data, tensors, tp_sizes=(1, 2))

    assert not prediction.loads_somewhere
    assert prediction.problems == (
        # vLLM checks the heads when it reads the config, before any layer.
        "at tensor_parallel_size=2: the number of attention heads (9) must be divisible by tensor parallel size (2)"
        " in vLLM 0.33.0; plan a tensor-parallel size that divides 9",
        "at tensor_parallel_size=2: model.layers.0.self_attn.o_proj (and 29 more layers): Weight"
        " input_size_per_partition=288 is not divisible by group_size=64; add it to ignore or use a group size"
        " that divides 288",
    )
    assert prediction.expected_log_lines == ("is not divisible by group_size",)


def test_demo_w8a8_loads_with_the_int8_scheme_from_turing() -> None:
    config_data, tensors = load_fixture("smollm2-135m-w8a8")
    prediction = predict(config_data, tensors)

    assert loads_on(prediction) == list(GENERATIONS)
    assert {item.schemes for item in gpu_verdicts(prediction)} == {("CompressedTensorsW8A8Int8",)}
    assert all(item.kernels == () for item in gpu_verdicts(prediction))  # the INT8 kernel families are not predicted
    (line,) = prediction.expected_log_lines
    assert re.search(line, "Selected CutlassInt8ScaledMMLinearKernel for CompressedTensorsW8A8Int8")


# --- §2: the scheme rows ------------------------------------------------------------------------------------------

ROW_CASES = [
    pytest.param(
        config(group(NVFP4), fmt="nvfp4-pack-quantized"),
        llama("nvfp4"),
        {generation: "CompressedTensorsW4A4Fp4" for generation in GENERATIONS},
        id="row1-nvfp4a16",
    ),
    pytest.param(
        config(group(NVFP4, NVFP4_INPUT), fmt="nvfp4-pack-quantized"),
        llama("nvfp4", inputs="nvfp4"),
        {generation: "CompressedTensorsW4A4Fp4" for generation in GENERATIONS},
        id="row1-nvfp4-w4a4",
    ),
    pytest.param(
        config(group(MXFP4, FP8_TOKEN), fmt="mxfp4-pack-quantized"),
        llama("mxfp4"),
        {"Turing": None, **{generation: "CompressedTensorsW4A8Mxfp4" for generation in GENERATIONS[1:]}},
        id="row2-w4a8-mxfp4-fp8",
    ),
    pytest.param(
        config(group(MXFP4), fmt="mxfp4-pack-quantized"),
        llama("mxfp4"),
        {"Turing": None, **{generation: "CompressedTensorsW4A4Mxfp4" for generation in GENERATIONS[1:]}},
        id="row3-mxfp4",
    ),
    pytest.param(
        config(group(qargs(num_bits=8, type="float", group_size=32, scale_dtype="torch.uint8")), fmt="mxfp8-quantized"),
        llama("mxfp8"),
        {generation: "CompressedTensorsW8A8Mxfp8" for generation in GENERATIONS},
        id="row4-mxfp8",
    ),
    pytest.param(
        config(group(W4_G128, FP8_TOKEN)),
        llama("packed"),
        {"Hopper": "CompressedTensorsW4A8Fp8"},
        id="row5-w4afp8-hopper-only",
    ),
    pytest.param(
        config(group(W4_G128, INT8_TENSOR_STATIC, output_activations=INT8_TENSOR_STATIC)),
        llama("packed"),
        {generation: "CompressedTensorsWNA8O8Int" for generation in GENERATIONS},
        id="row6-wna8o8",
    ),
    pytest.param(
        config(group(W4_G128, INT8_TOKEN)),
        llama("packed"),
        {generation: "CompressedTensorsWNA8Int" for generation in GENERATIONS},
        id="row7-wna8-humming",
    ),
    pytest.param(
        config(group(W4_G128, qargs(num_bits=4, strategy="token", group_size=None, dynamic=True))),
        llama("packed"),
        {generation: "CompressedTensorsWNA4Int" for generation in GENERATIONS},
        id="row8-wna4-humming",
    ),
    pytest.param(
        config(group(W8_CHANNEL)),
        llama("packed", bits=8, group_size=None),
        {generation: "CompressedTensorsWNA16" for generation in GENERATIONS},
        id="row9-w8a16-channel",
    ),
    pytest.param(
        config(group(FP8_CHANNEL, FP8_TOKEN), fmt="float-quantized"),
        llama("fp8"),
        {
            "Turing": "CompressedTensorsW8A16Fp8",
            "Ampere": "CompressedTensorsW8A16Fp8",
            "Ada": "CompressedTensorsW8A8Fp8",
            "Hopper": "CompressedTensorsW8A8Fp8",
            "Blackwell": "CompressedTensorsW8A8Fp8",
        },
        id="row10-fp8-dynamic",
    ),
    pytest.param(
        config(
            group(
                qargs(num_bits=8, type="float", strategy="tensor", group_size=None),
                qargs(num_bits=8, type="float", strategy="tensor", group_size=None),
            ),
            fmt="float-quantized",
        ),
        llama("fp8", inputs="static"),
        {
            "Turing": "CompressedTensorsW8A16Fp8",
            "Ampere": "CompressedTensorsW8A16Fp8",
            **{generation: "CompressedTensorsW8A8Fp8" for generation in GENERATIONS[2:]},
        },
        id="row10-fp8-static-tensor",
    ),
    pytest.param(
        config(group(FP8_CHANNEL), fmt="float-quantized"),
        llama("fp8"),
        {generation: "CompressedTensorsW8A16Fp8" for generation in GENERATIONS},
        id="row11-fp8-weight-only",
    ),
    pytest.param(
        config(group(W8_CHANNEL, INT8_TENSOR_STATIC), fmt="int-quantized"),
        llama("int8", inputs="static"),
        {generation: "CompressedTensorsW8A8Int8" for generation in GENERATIONS},
        id="row12-int8-static",
    ),
    pytest.param(
        config(
            group(W8_CHANNEL, qargs(num_bits=8, strategy="tensor", group_size=None, symmetric=False)),
            fmt="int-quantized",
        ),
        llama("int8", inputs="static-asymmetric"),
        {generation: "CompressedTensorsW8A8Int8" for generation in GENERATIONS},
        id="row12-int8-static-asymmetric-input",
    ),
    pytest.param(
        config(group(W8_CHANNEL, INT8_TOKEN), fmt="int-quantized"),
        llama("int8"),
        {generation: "CompressedTensorsW8A8Int8" for generation in GENERATIONS},
        id="row13-int8-dynamic",
    ),
    pytest.param(
        config(group(W4_G128, INT8_TOKEN), fmt="int-quantized"),
        llama("int4-unpacked"),
        {generation: "CompressedTensorsW4A8Int" for generation in GENERATIONS},
        id="row14-w4a8-int",
    ),
]


@pytest.mark.parametrize(("config_data", "tensors", "expected"), ROW_CASES)
def test_scheme_rows_pick_the_expected_scheme_per_generation(
    config_data: dict[str, Any], tensors: dict[str, TensorInfo], expected: dict[str, str | None]
) -> None:
    prediction = predict(config_data, tensors)

    for item in gpu_verdicts(prediction):
        scheme = expected.get(item.generation)
        if scheme is None:
            assert not item.loads, item.generation
            assert item.reasons
        else:
            assert item.loads, (item.generation, item.reasons)
            assert item.schemes == (scheme,), item.generation


def test_row1_nvfp4_weights_with_other_input_activations_raise_value_error() -> None:
    prediction = predict(config(group(NVFP4, INT8_TOKEN), fmt="nvfp4-pack-quantized"), llama("nvfp4"))

    assert not prediction.loads_somewhere
    assert (
        "ValueError in CompressedTensorsW4A4Fp4: NVFP4 weights need NVFP4 input activations" in prediction.problems[0]
    )


def test_row1_nvfp4_notes_the_fallback_below_blackwell() -> None:
    prediction = predict(config(group(NVFP4), fmt="nvfp4-pack-quantized"), llama("nvfp4"))

    assert any("Marlin FP4" in note for note in verdict(prediction, "Ada").notes)
    assert not any("Marlin FP4" in note for note in verdict(prediction, "Blackwell").notes)
    assert re.search(prediction.expected_log_lines[0], "Using FlashInferCutlassNvFp4LinearKernel for NVFP4 GEMM")


@pytest.mark.parametrize("row_id", ["row2", "row3"])
def test_mxfp4_rows_refuse_turing_on_the_minimum_capability(row_id: str) -> None:
    inputs = FP8_TOKEN if row_id == "row2" else None
    prediction = predict(config(group(MXFP4, inputs), fmt="mxfp4-pack-quantized"), llama("mxfp4"))

    (reason,) = verdict(prediction, "Turing").reasons
    assert reason.startswith(
        "model.layers.0.mlp.down_proj (and 3 more layers): Quantization scheme is not supported for the current"
        " GPU. Min capability: 80. Current capability: 75."
    )
    assert prediction.summary().startswith("loads on Ampere, Ada, Hopper, Blackwell; refused on Turing, x86-64 AVX2")


def test_row5_w4afp8_uses_cutlass_on_hopper_and_finds_no_scheme_elsewhere() -> None:
    prediction = predict(config(group(W4_G128, FP8_TOKEN)), llama("packed"))

    assert verdict(prediction, "Hopper").kernels == ("CutlassW4A8LinearKernel",)
    reason = verdict(prediction, "Ada").reasons[0]
    assert "No compressed-tensors compatible scheme was found for layer_name=model.layers.0.mlp.down_proj" in reason
    assert "runs only on capability 90 (Hopper)" in reason
    assert prediction.expected_log_lines == ("Using CutlassW4A8LinearKernel for CompressedTensorsW4A8Fp8",)


def test_row5_w4afp8_saved_int_quantized_lacks_the_packed_weights_on_hopper() -> None:
    prediction = predict(config(group(W4_G128, FP8_TOKEN), fmt="int-quantized"), llama("int4-unpacked"))

    (reason,) = verdict(prediction, "Hopper").reasons
    assert "CompressedTensorsW4A8Fp8 loads weight_packed (I32), but the checkpoint stores weight (I8)" in reason
    assert "quantization_format='pack-quantized'" in reason


@pytest.mark.parametrize(
    "inputs", [INT8_TOKEN, qargs(num_bits=4, strategy="token", group_size=None, dynamic=True)], ids=["wna8", "wna4"]
)
def test_rows7_and_8_warn_that_only_humming_runs_them(inputs: dict[str, Any]) -> None:
    prediction = predict(config(group(W4_G128, inputs)), llama("packed"))

    assert prediction.loads_somewhere
    assert any("Humming" in warning for warning in prediction.warnings)
    assert all(any("Humming" in note for note in item.notes) for item in gpu_verdicts(prediction))


def test_row10_fp8_below_ada_runs_as_weight_only_with_a_note() -> None:
    prediction = predict(config(group(FP8_CHANNEL, FP8_TOKEN), fmt="float-quantized"), llama("fp8"))

    note = "FP8 W8A8 runs as weight-only W8A16 (CompressedTensorsW8A16Fp8) below capability 89"
    assert any(note in item for item in verdict(prediction, "Ampere").notes)
    assert not any(note in item for item in verdict(prediction, "Ada").notes)
    assert re.search(
        prediction.expected_log_lines[0], "Selected CutlassFP8ScaledMMLinearKernel for CompressedTensorsW8A8Fp8"
    )


def test_row10_static_fp8_activations_need_input_scales() -> None:
    static = qargs(num_bits=8, type="float", strategy="tensor", group_size=None)
    prediction = predict(config(group(static, static), fmt="float-quantized"), llama("fp8"))

    assert not prediction.loads_somewhere
    assert "CompressedTensorsW8A8Fp8 loads input_scale, which the checkpoint lacks" in all_reasons(prediction)


def test_row10_block_fp8_checks_each_fused_shard_against_block_n() -> None:
    block = qargs(num_bits=8, type="float", strategy="block", group_size=None, block_structure=[128, 128])
    group_128 = qargs(num_bits=8, type="float", strategy="group", group_size=128, dynamic=True)
    fits = predict(config(group(block, group_128), fmt="float-quantized"), llama("fp8-block"))
    misfits = predict(config(group(block, group_128), fmt="float-quantized"), llama("fp8-block", kv=192))

    assert loads_on(fits) == list(GENERATIONS)
    assert misfits.problems == (
        "model.layers.0.self_attn.qkv_proj: Weight output_partition_size = 192 is not divisible by weight"
        " quantization block_n = 128.",
    )


def test_row10_block_fp8_with_static_activations_fails_the_assert() -> None:
    block = qargs(num_bits=8, type="float", strategy="block", group_size=None, block_structure=[128, 128])
    static = qargs(num_bits=8, type="float", strategy="tensor", group_size=None)
    prediction = predict(config(group(block, static), fmt="float-quantized"), llama("fp8-block", inputs="static"))

    assert "block-quantized FP8 weights need dynamic input activations" in prediction.problems[0]


def test_row12_asymmetric_static_input_needs_a_zero_point() -> None:
    asymmetric = qargs(num_bits=8, strategy="tensor", group_size=None, symmetric=False)
    prediction = predict(config(group(W8_CHANNEL, asymmetric), fmt="int-quantized"), llama("int8", inputs="static"))

    assert "CompressedTensorsW8A8Int8 loads input_zero_point, which the checkpoint lacks" in prediction.problems[0]


def test_row14_w4a8_int_runs_only_on_humming() -> None:
    prediction = predict(config(group(W4_G128, INT8_TOKEN), fmt="int-quantized"), llama("int4-unpacked"))

    assert {item.kernels for item in gpu_verdicts(prediction)} == {("HummingLinearKernel",)}
    assert any("Humming" in warning for warning in prediction.warnings)
    assert prediction.expected_log_lines == ("Using HummingLinearKernel for CompressedTensorsW4A8Int",)


@pytest.mark.parametrize(
    ("config_data", "tensors", "hint"),
    [
        pytest.param(
            config(group(qargs(num_bits=8, group_size=128), INT8_TOKEN), fmt="int-quantized"),
            llama("int8"),
            "(CompressedTensorsWNA8Int) needs format 'pack-quantized'",
            id="int8-group-weights",
        ),
        pytest.param(
            config(
                group(qargs(num_bits=8, type="float", strategy="channel", group_size=None, symmetric=False), FP8_TOKEN),
                fmt="float-quantized",
            ),
            llama("fp8"),
            "re-quantize with a scheme vLLM supports",
            id="fp8-asymmetric-weights",
        ),
        pytest.param(
            config(group(qargs(num_bits=2), INT8_TOKEN), fmt="int-quantized"),
            llama("int8"),
            "needs format 'pack-quantized'",
            id="w2a8-left-int-quantized",
        ),
        pytest.param(
            config(group(W4_G128), fmt="mixed-precision"),
            llama("packed"),
            "every config group needs its own format",
            id="mixed-precision-without-group-format",
        ),
    ],
)
def test_anything_else_finds_no_scheme(config_data: dict[str, Any], tensors: dict[str, TensorInfo], hint: str) -> None:
    prediction = predict(config_data, tensors)

    assert not prediction.loads_somewhere
    (problem,) = prediction.problems
    assert "No compressed-tensors compatible scheme was found for layer_name=" in problem
    assert hint in problem
    assert "No compressed-tensors compatible scheme was found" in prediction.expected_log_lines


def test_mixed_precision_with_a_format_per_group_loads() -> None:
    attention = group(W4_G128, targets=("re:.*self_attn\\..*",), fmt="pack-quantized")
    mlp = group(W8_CHANNEL, INT8_TOKEN, targets=("re:.*mlp\\..*",), fmt="int-quantized")
    tensors = llama("packed")
    for name in ("gate_proj", "up_proj", "down_proj"):
        for key in [key for key in tensors if f".mlp.{name}." in key]:
            del tensors[key]
    tensors.update(module_tensors("model.layers.0.mlp.gate_proj", 4096, 1024, "int8"))
    tensors.update(module_tensors("model.layers.0.mlp.up_proj", 4096, 1024, "int8"))
    tensors.update(module_tensors("model.layers.0.mlp.down_proj", 1024, 4096, "int8"))
    prediction = predict(config(attention, mlp, fmt="mixed-precision"), tensors)

    assert loads_on(prediction) == list(GENERATIONS)
    assert verdict(prediction, "Ampere").schemes == ("CompressedTensorsWNA16", "CompressedTensorsW8A8Int8")


def test_int_weight_only_in_an_activation_format_fails_the_config_assert() -> None:
    prediction = predict(config(group(W4_G128), fmt="int-quantized"), llama("int4-unpacked"))

    (problem,) = prediction.problems
    assert problem.startswith("quantization_config.config_groups.group_0: int weight-only quantization saved as")
    assert "save integer weight-only checkpoints as 'pack-quantized'" in problem


# --- §3: WNA16 kernels ----------------------------------------------------------------------------------------------


def wna16_kernels(**options: Any) -> dict[str, tuple[str, ...]]:
    bits, group_size = options.pop("bits", 4), options.pop("group_size", 128)
    symmetric = options.pop("symmetric", True)
    dtype = options.pop("dtype", "bfloat16")
    disabled = options.pop("disabled_kernels", ())
    weights = qargs(num_bits=bits, group_size=group_size, symmetric=symmetric)
    if group_size is None:
        weights = qargs(num_bits=bits, strategy="channel", group_size=None, symmetric=symmetric)
    tensors = llama("packed", bits=bits, group_size=group_size, symmetric=symmetric, **options)
    prediction = predict(config(group(weights), dtype=dtype), tensors, disabled_kernels=disabled)
    return {item.generation: item.kernels for item in gpu_verdicts(prediction)}


MARLIN = ("MarlinLinearKernel",)
MACHETE = ("MacheteLinearKernel",)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, {**dict.fromkeys(GENERATIONS, MARLIN), "Hopper": MACHETE}, id="w4-g128-machete-on-hopper"),
        pytest.param(
            {"hidden": 576, "intermediate": 1536, "kv": 192, "group_size": 64},
            {**dict.fromkeys(GENERATIONS, MARLIN), "Hopper": ("MacheteLinearKernel", "MarlinLinearKernel")},
            id="w4-g64-n576-marlin-where-n-misses-128",
        ),
        pytest.param({"group_size": 32}, dict.fromkeys(GENERATIONS, MARLIN), id="w4-g32-marlin-everywhere"),
        pytest.param({"group_size": None}, {**dict.fromkeys(GENERATIONS, MARLIN), "Hopper": MACHETE}, id="w4-channel"),
        pytest.param(
            {"symmetric": False}, {**dict.fromkeys(GENERATIONS, MARLIN), "Hopper": MACHETE}, id="w4-asymmetric"
        ),
        pytest.param({"bits": 8}, {**dict.fromkeys(GENERATIONS, MARLIN), "Hopper": MACHETE}, id="w8-symmetric"),
        pytest.param(
            {"bits": 8, "symmetric": False},
            {**dict.fromkeys(GENERATIONS, ("HummingLinearKernel",)), "Hopper": MACHETE},
            id="w8-asymmetric-humming-off-hopper",
        ),
        pytest.param(
            {"group_size": 16, "dtype": "float16"},
            dict.fromkeys(GENERATIONS, ("ExllamaLinearKernel",)),
            id="w4-g16-fp16-exllama",
        ),
        pytest.param(
            {"group_size": 256},
            {**dict.fromkeys(GENERATIONS, ("TritonW4A16LinearKernel",)), "Turing": ("ExllamaLinearKernel",)},
            id="w4-g256-triton-exllama-on-turing-fp16",
        ),
        pytest.param({"bits": 3}, dict.fromkeys(GENERATIONS, ("HummingLinearKernel",)), id="w3-humming-catch-all"),
    ],
)
def test_wna16_kernel_per_generation(options: dict[str, Any], expected: dict[str, tuple[str, ...]]) -> None:
    assert wna16_kernels(**options) == expected


def test_humming_only_layers_are_a_warning_not_a_refusal() -> None:
    prediction = predict(config(group(qargs(num_bits=3))), llama("packed", bits=3))

    assert loads_on(prediction) == list(GENERATIONS)
    assert prediction.warnings[0].startswith("on Turing, Ampere, Ada, Hopper, Blackwell some layers run only on")
    assert any(
        note.startswith("HummingLinearKernel is the only kernel that takes") for note in prediction.verdicts[0].notes
    )


def test_no_kernel_at_all_is_a_refusal() -> None:
    prediction = predict(
        config(group(qargs(num_bits=3))), llama("packed", bits=3), disabled_kernels=("HummingLinearKernel",)
    )

    assert not prediction.loads_somewhere
    problem = verdict(prediction, "Ampere").reasons[0]
    assert problem.startswith(
        "model.layers.0.mlp.down_proj (and 3 more layers): Failed to find a kernel that can implement the WNA16 linear"
        " layer. Reasons: CutlassW4A8LinearKernel requires capability 90, current compute capability is 80 |"
    )
    assert "MarlinLinearKernel cannot implement due to: quant type uint3b4 is not supported" in problem
    assert "HummingLinearKernel is disabled by VLLM_DISABLED_KERNELS" in problem


def test_kernel_choice_skips_conch_and_names_every_rejection() -> None:
    request = KernelRequest(
        capability=80,
        weight_type="uint4",
        group_size=128,
        k=4096,
        k_part=4096,
        n_part=4096,
        activation_dtype="bfloat16",
        output_dtype="bfloat16",
    )
    choice = choose_mixed_precision_kernel(request, disabled={"MarlinLinearKernel"})

    assert choice.kernel == "TritonW4A16LinearKernel"
    assert choice.rejections == (
        "CutlassW4A8LinearKernel requires capability 90, current compute capability is 80",
        "MacheteLinearKernel requires capability 90, current compute capability is 80",
        "MarlinLinearKernel is disabled by VLLM_DISABLED_KERNELS",
        "ConchLinearKernel needs the conch-triton-kernels package, which vLLM does not install",
        "ExllamaLinearKernel cannot implement due to: activation dtype bfloat16 is not float16; quant type uint4 is"
        " not supported",
    )


def test_marlin_needs_k_part_divisible_by_the_group_only_below_k() -> None:
    request = KernelRequest(
        capability=80,
        weight_type="uint4b8",
        group_size=128,
        k=4096,
        k_part=4032,
        n_part=4096,
        activation_dtype="bfloat16",
        output_dtype="bfloat16",
    )

    choice = choose_mixed_precision_kernel(request)
    assert choice.kernel == "HummingLinearKernel"
    assert (
        "MarlinLinearKernel cannot implement due to: K_part 4032 is not divisible by group size 128"
        in choice.rejections
    )


# --- §4: ignore, lm_head, tied embeddings, fused layers, indivisible shapes ------------------------------------------


def test_partly_ignored_qkv_is_refused() -> None:
    tensors = llama("packed")
    for key in [key for key in tensors if ".q_proj." in key]:
        del tensors[key]
    tensors["model.layers.0.self_attn.q_proj.weight"] = TensorInfo(
        "model.layers.0.self_attn.q_proj.weight", "BF16", (1024, 1024)
    )
    prediction = predict(config(group(W4_G128), ignore=("lm_head", "model.layers.0.self_attn.q_proj")), tensors)

    assert prediction.problems == (
        "model.layers.0.self_attn.qkv_proj: Found different quantization schemes for the shards: q_proj in ignore,"
        " k_proj/v_proj not; vLLM requires all to use the same scheme, so ignore all of them or none",
    )


def test_fused_shards_with_different_schemes_are_refused() -> None:
    q_only = group(qargs(group_size=64), targets=("re:.*q_proj",))
    prediction = predict(config(q_only, group(W4_G128)), llama("packed"))

    assert prediction.problems[0].startswith(
        "model.layers.0.self_attn.qkv_proj: Found different quantization schemes for the shards (q_proj: group_0,"
        " k_proj: group_1, v_proj: group_1)"
    )


def test_regex_ignore_leaves_the_ignored_layers_unquantized() -> None:
    tensors = llama("packed")
    for key in [key for key in tensors if ".down_proj." in key]:
        del tensors[key]
    tensors["model.layers.0.mlp.down_proj.weight"] = TensorInfo(
        "model.layers.0.mlp.down_proj.weight", "BF16", (1024, 4096)
    )
    prediction = predict(config(group(W4_G128), ignore=("lm_head", "re:.*down_proj")), tensors)

    assert loads_on(prediction) == list(GENERATIONS)


def test_a_targeted_layer_stored_unquantized_is_refused() -> None:
    tensors = llama("packed")
    for key in [key for key in tensors if ".down_proj." in key]:
        del tensors[key]
    tensors["model.layers.0.mlp.down_proj.weight"] = TensorInfo(
        "model.layers.0.mlp.down_proj.weight", "BF16", (1024, 4096)
    )
    prediction = predict(config(group(W4_G128)), tensors)

    assert prediction.problems == (
        "model.layers.0.mlp.down_proj: vLLM quantizes it (config group 'group_0', target 'Linear') but the checkpoint"
        " stores weight (BF16); add it to ignore or quantize it",
    )


def test_an_ignored_layer_stored_quantized_is_refused() -> None:
    prediction = predict(config(group(W4_G128), ignore=("lm_head", "model.layers.0.mlp.down_proj")), llama("packed"))

    assert prediction.problems[0].startswith(
        "model.layers.0.mlp.down_proj: the checkpoint has quantized tensors but vLLM loads it unquantized (it is"
        " listed in ignore)"
    )


def test_lm_head_quantized_only_through_the_class_target_is_flagged() -> None:
    prediction = predict(config(group(W4_G128), ignore=()), llama("packed", lm_head="packed"))

    assert loads_on(prediction) == list(GENERATIONS)
    (warning,) = prediction.warnings
    assert warning.startswith(
        "lm_head has quantized tensors (lm_head.weight_packed) only through the class target 'Linear'"
    )
    assert "add lm_head to ignore, or target it by name" in warning


def test_lm_head_targeted_by_name_is_quantized_with_a_warning() -> None:
    prediction = predict(
        config(group(W4_G128, targets=("Linear", "lm_head")), ignore=()), llama("packed", lm_head="packed")
    )

    assert loads_on(prediction) == list(GENERATIONS)
    assert prediction.warnings[0].startswith("lm_head is quantized (targeted by name through 'lm_head')")


@pytest.mark.parametrize(
    ("tensors", "ignore", "quantized"),
    [
        pytest.param(llama("packed", lm_head="packed"), (), "lm_head.weight_packed", id="lm-head"),
        pytest.param(
            llama("packed", lm_head=None, embedding="packed"),
            ("lm_head",),
            "model.embed_tokens.weight_packed",
            id="embeddings",
        ),
    ],
)
def test_tied_embeddings_refuse_quantized_head_or_embeddings(
    tensors: dict[str, TensorInfo], ignore: tuple[str, ...], quantized: str
) -> None:
    embeddings = group(W4_G128, targets=("Linear", "re:.*embed_tokens"))
    prediction = predict(config(embeddings, ignore=ignore, tied=True), tensors)

    assert not prediction.loads_somewhere
    assert prediction.problems[0].startswith(
        f"tie_word_embeddings is true but the checkpoint has quantized {quantized}"
    )


def test_a_wna16_embedding_is_accepted_for_lookup() -> None:
    embeddings = group(W4_G128, targets=("Linear", "re:.*embed_tokens"))
    prediction = predict(config(embeddings), llama("packed", embedding="packed"))

    assert loads_on(prediction) == list(GENERATIONS)
    assert "model.embed_tokens is quantized: vLLM 0.33.0 uses it for lookup only" in prediction.verdicts[0].notes[0]


def test_an_embedding_in_another_scheme_is_refused() -> None:
    embeddings = group(W8_CHANNEL, INT8_TOKEN, targets=("Linear", "re:.*embed_tokens"))
    prediction = predict(config(embeddings, fmt="int-quantized"), llama("int8", embedding="int8"))

    assert prediction.problems[0].startswith("model.embed_tokens: a quantized embedding must be INT weight-only")
    assert "raise ValueError" in prediction.problems[0]


def test_k_not_divisible_by_the_group_size_is_refused_with_the_scale_red_flag() -> None:
    prediction = predict(config(group(W4_G128)), llama("packed", hidden=1000, kv=200))

    assert prediction.problems[0] == (
        "model.layers.0.mlp.gate_up_proj (and 2 more layers): Weight input_size_per_partition=1000 is not divisible"
        " by group_size=128 (its weight_scale has ceil(1000/128) = 8 columns: compressed-tensors let the indivisible"
        " shape through); add it to ignore or use a group size that divides it"
    )
    assert "is not divisible by group_size" in prediction.expected_log_lines


def test_tensor_parallel_splits_are_checked_on_row_parallel_layers() -> None:
    tensors = llama("packed", hidden=1152, kv=128)
    single = predict(config(group(W4_G128)), tensors)
    split = predict(config(group(W4_G128)), tensors, tp_sizes=(1, 2))

    assert loads_on(single) == list(GENERATIONS)
    assert split.problems == (
        "at tensor_parallel_size=2: model.layers.0.self_attn.o_proj: Weight input_size_per_partition=576 is not"
        " divisible by group_size=128; add it to ignore or use a group size that divides 576",
    )


@pytest.mark.parametrize(
    ("tp", "reason"),
    [
        (
            4,
            "at tensor_parallel_size=4: the 3 key-value heads cannot be split or replicated evenly (4 is not divisible"
            " by 3 in vLLM 0.33.0); plan a tensor-parallel size that divides 3 or is a multiple of it",
        ),
        (
            8,
            "at tensor_parallel_size=8: the number of attention heads (12) must be divisible by tensor parallel size"
            " (8) in vLLM 0.33.0; plan a tensor-parallel size that divides 12",
        ),
    ],
)
def test_the_planned_tensor_parallel_size_must_split_the_heads(tp: int, reason: str) -> None:
    # 12 heads of 256 and 3 KV heads: every feature count divides by 8, the heads do not.
    heads = {**config(group(W4_G128)), "num_attention_heads": 12, "num_key_value_heads": 3}
    tensors = llama("packed", hidden=3072, kv=768)
    assert loads_on(predict(heads, tensors)) == list(GENERATIONS)
    assert reason in predict(heads, tensors, tp_sizes=(tp,)).problems
    # Six ranks hold two heads each and two copies of each KV head: vLLM accepts that.
    assert not [problem for problem in predict(heads, tensors, tp_sizes=(6,)).problems if "heads" in problem]


def test_tensor_parallel_sizes_must_be_positive() -> None:
    with pytest.raises(UsageError, match="tensor-parallel sizes"):
        predict(config(group(W4_G128)), llama("packed"), tp_sizes=(0,))


def test_moe_experts_must_share_one_scheme() -> None:
    tensors = llama("packed")
    for expert in range(2):
        tensors.update(module_tensors(f"model.layers.0.mlp.experts.{expert}.gate_proj", 512, 1024, "packed"))
    experts = group(qargs(group_size=64), targets=("re:.*experts\\.0\\..*",))
    prediction = predict(config(experts, group(W4_G128)), tensors)

    assert prediction.problems[0].startswith("model.layers.0.mlp.experts: the MoE experts do not share one")
    assert any("MoE expert block" in note for note in prediction.verdicts[0].notes)


# --- config-level refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kv_cache_scheme", "accepted"),
    [
        pytest.param(qargs(num_bits=8, type="float", strategy="tensor", group_size=None), True, id="fp8-tensor"),
        pytest.param(qargs(num_bits=8, type="float", strategy="attn_head", group_size=None), True, id="fp8-attn-head"),
        pytest.param(qargs(num_bits=8, type="int", strategy="tensor", group_size=None), False, id="int8"),
        pytest.param(qargs(num_bits=8, type="float", strategy="channel", group_size=None), False, id="fp8-channel"),
        pytest.param(
            qargs(num_bits=8, type="float", strategy="tensor", group_size=None, symmetric=False), False, id="asymmetric"
        ),
    ],
)
def test_kv_cache_scheme_must_be_symmetric_fp8_per_tensor_or_head(
    kv_cache_scheme: dict[str, Any], accepted: bool
) -> None:
    prediction = predict(config(group(W4_G128), kv_cache_scheme=kv_cache_scheme), llama("packed"))

    assert prediction.loads_somewhere is accepted
    if not accepted:
        assert "Currently supported kv cache quantization is num_bits=8, type=float" in prediction.problems[0]


def test_sparsity_is_refused() -> None:
    sparsity = {"format": "sparse-24-bitmask", "sparsity_structure": "2:4", "targets": ["Linear"], "ignore": []}
    prediction = predict(config(group(W4_G128), sparsity_config=sparsity), llama("packed"))

    assert "Sparsity support has been removed from compressed-tensors" in prediction.problems[0]
    assert "Sparsity support has been removed" in prediction.expected_log_lines


def test_an_empty_sparsity_target_list_is_fine() -> None:
    prediction = predict(config(group(W4_G128), sparsity_config={"format": "dense", "targets": []}), llama("packed"))

    assert loads_on(prediction) == list(GENERATIONS)


@pytest.mark.parametrize("actorder", ["group", "dynamic", True, "GROUP"])
def test_group_activation_ordering_is_refused(actorder: Any) -> None:
    prediction = predict(config(group(qargs(actorder=actorder))), llama("packed"))

    assert not prediction.loads_somewhere
    assert prediction.problems[0].startswith(
        f"quantization_config.config_groups.group_0.weights.actorder is {actorder!r}:"
    )
    assert "activation ordering with g_idx is no longer supported" in prediction.problems[0]


@pytest.mark.parametrize("actorder", ["weight", "static", None, False])
def test_weight_activation_ordering_is_fine(actorder: Any) -> None:
    assert predict(config(group(qargs(actorder=actorder))), llama("packed")).loads_somewhere


def test_an_unknown_quantization_argument_is_refused_by_name() -> None:
    prediction = predict(config(group(qargs(scale_fp="fp32"))), llama("packed"))

    (problem,) = prediction.problems
    assert problem.startswith("quantization_config.config_groups.group_0.weights: unknown key 'scale_fp'")
    assert "Extra inputs are not permitted" in problem


def test_invalid_quantization_arguments_are_refused() -> None:
    prediction = predict(config(group(qargs(strategy="group", group_size=None))), llama("packed"))

    assert prediction.problems[0] == (
        "quantization_config.config_groups.group_0.weights: strategy 'group' needs a positive group_size;"
        " compressed-tensors rejects it, so vLLM 0.33.0 cannot parse the config"
    )


def test_g_idx_tensors_are_refused() -> None:
    tensors = llama("packed")
    tensors["model.layers.0.mlp.down_proj.weight_g_idx"] = TensorInfo(
        "model.layers.0.mlp.down_proj.weight_g_idx", "I32", (4096,)
    )
    prediction = predict(config(group(W4_G128)), tensors)

    assert prediction.problems[0].startswith(
        "the checkpoint has 1 g_idx tensor(s) (e.g. model.layers.0.mlp.down_proj.weight_g_idx)"
    )


def test_an_attention_only_group_is_dropped_with_a_warning() -> None:
    kv_group = group(qargs(num_bits=8, type="float", strategy="tensor", group_size=None), targets=("LlamaAttention",))
    prediction = predict(config(group(W4_G128), kv_group), llama("packed"))

    assert loads_on(prediction) == list(GENERATIONS)
    assert "vLLM drops it" in prediction.warnings[0]


def test_unknown_group_keys_are_a_warning() -> None:
    entry = {**group(W4_G128), "note": "hand-edited"}
    prediction = predict(config(entry), llama("packed"))

    assert prediction.loads_somewhere
    assert prediction.warnings[0].startswith(
        "quantization_config.config_groups.group_0 has keys vLLM does not read: note"
    )


def test_another_quant_method_is_refused_as_unchecked() -> None:
    gptq = {"dtype": "float16", "quantization_config": {"quant_method": "gptq", "bits": 4}}
    prediction = predict(gptq, llama("dense"))

    assert not prediction.quantized and not prediction.loads_somewhere
    assert "quant_method is 'gptq', not 'compressed-tensors'" in prediction.problems[0]


def test_an_unquantized_checkpoint_has_nothing_to_check() -> None:
    prediction = predict({"dtype": "bfloat16"}, llama("dense"))

    assert not prediction.quantized and prediction.loads_somewhere
    assert prediction.summary() == "not quantized with compressed-tensors: nothing for the preflight to check"


def test_the_model_dtype_comes_from_the_config() -> None:
    fp16 = predict(config(group(W4_G128), dtype="float16"), llama("packed"))
    fp32 = predict(config(group(W4_G128), dtype="float32"), llama("packed"))

    assert not any("dtype='auto'" in note for note in verdict(fp16, "Turing").notes)
    assert any("float32 checkpoint in bfloat16" in note for note in verdict(fp32, "Ampere").notes)


# --- the prediction record ------------------------------------------------------------------------------------------


def test_a_prediction_round_trips_through_json() -> None:
    prediction = predict(config(group(MXFP4, FP8_TOKEN), fmt="mxfp4-pack-quantized"), llama("mxfp4"))

    stored = json.loads(json.dumps(prediction.as_dict()))
    assert VllmPrediction.from_dict(stored) == prediction
    assert stored["verdicts"][0]["generation"] == "Turing"


def test_the_summary_names_the_refused_generations_with_the_first_reason() -> None:
    prediction = predict(config(group(MXFP4), fmt="mxfp4-pack-quantized"), llama("mxfp4"))

    summary = prediction.summary()
    assert summary.startswith(
        "loads on Ampere, Ada, Hopper, Blackwell; refused on Turing, x86-64 AVX2 CPU, x86-64 AVX-512 CPU, x86-64 AMX"
        " CPU (model.layers.0"
    )
    assert len(summary) < 320


# --- reading a folder -------------------------------------------------------------------------------------------------


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """A safetensors file written by hand (header + raw bytes): no safetensors library needed."""
    header: dict[str, Any] = {}
    data = b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def packed_module(
    name: str, n: int, k: int, *, stored_k: int | None = None
) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    columns = math.ceil((stored_k or k) * 4 / 32)
    return {
        f"{name}.weight_packed": ("I32", (n, columns), bytes(4 * n * columns)),
        f"{name}.weight_scale": ("BF16", (n, k // 64), bytes(2 * n * (k // 64))),
        f"{name}.weight_shape": ("I64", (2,), struct.pack("<2q", n, k)),
    }


def test_predict_folder_reads_the_weight_shape_values(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config(group(qargs(group_size=64)))), encoding="utf-8")
    write_safetensors(tmp_path / "model.safetensors", packed_module("model.layers.0.mlp.down_proj", 128, 256))

    prediction = predict_folder(tmp_path)

    assert loads_on(prediction) == list(GENERATIONS)
    assert verdict(prediction, "Hopper").kernels == ("MacheteLinearKernel",)
    assert not any("inferred" in note for item in gpu_verdicts(prediction) for note in item.notes)


def test_predict_folder_flags_a_padded_packing_layout(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config(group(qargs(group_size=64)))), encoding="utf-8")
    write_safetensors(
        tmp_path / "model.safetensors", packed_module("model.layers.0.mlp.down_proj", 128, 256, stored_k=320)
    )

    prediction = predict_folder(tmp_path)

    assert not prediction.loads_somewhere
    assert (
        "weight_packed has 40 int32 columns where vLLM 0.33.0 packs 256 4-bit values densely into 32"
        in (prediction.problems[0])
    )
