"""The vLLM rules that hubpub's static preflight applies, as reviewable data.

Every table here was read from the vLLM 0.33.0 wheel (commit g4ba787ec9) and from compressed-tensors
0.17.0, the version vLLM 0.33.0 pins, as recorded in hubpub's research notes (vllm-compat.md). Nothing
was run on a GPU: the real smoke test is the judge, and a disagreement means a table here is wrong.
Paths are those of vLLM 0.33.0 (older releases kept the linear kernels elsewhere):

- scheme choice: ``vllm/model_executor/layers/quantization/compressed_tensors/compressed_tensors.py``
  (``_get_scheme_from_parts``, ``get_scheme``, ``_check_scheme_supported``) and its ``schemes/`` files;
- ignore and target matching: ``.../compressed_tensors/utils.py`` and ``.../quantization/utils/config_utils.py``;
- WNA16 kernels: ``vllm/model_executor/kernels/linear/__init__.py`` (``_POSSIBLE_KERNELS``,
  ``choose_mp_linear_kernel``) and ``.../kernels/linear/mixed_precision/<kernel>.py``;
- KV cache and embeddings: ``CompressedTensorsKVCacheMethod`` and ``compressed_tensors_embedding.py``.

Two tables are not from those notes and are marked where they stand: the dtype="auto" fallback (bfloat16 runs
as float16 below capability 8.0, vLLM's ``vllm/config/model.py`` behaviour in recent releases, not re-read for
0.33.0) and the FP8 block-shape error wording.

To follow a new vLLM release, re-read those files, change the tables and ``VLLM_VERSION`` in one
reviewable change, and run ``tests/vllm``. The logic that applies these tables lives in the other
modules of ``hubpub.vllm`` (one per section, see its docstring); this module holds no logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

VLLM_VERSION = "0.33.0"
COMPRESSED_TENSORS_VERSION = "0.17.0"
QUANT_METHOD = "compressed-tensors"
CONFIG_MIN_CAPABILITY = 70

# compressed-tensors 0.17 `QuantizationArgs` (extra="forbid"): the same field set in 0.18 and 0.19.
QUANTIZATION_ARGS_FIELDS = frozenset(
    {
        "num_bits",
        "type",
        "symmetric",
        "group_size",
        "strategy",
        "block_structure",
        "dynamic",
        "actorder",
        "scale_dtype",
        "zp_dtype",
        "observer",
        "observer_kwargs",
    }
)
# The keys of one `config_groups` entry (compressed-tensors `QuantizationScheme`). vLLM reads them by name.
SCHEME_GROUP_KEYS = frozenset({"targets", "weights", "input_activations", "output_activations", "format"})
QUANTIZATION_STRATEGIES = frozenset({"tensor", "channel", "group", "block", "token", "tensor_group", "attn_head"})
# actorder values vLLM refuses at config parse (activation ordering with g_idx); ct 0.17 read `true` as "group".
REFUSED_ACTORDERS = frozenset({"group", "dynamic", "true"})


@dataclass(frozen=True)
class GpuGeneration:
    name: str
    capability: int
    examples: tuple[str, ...]
    kind: Literal["gpu"] = "gpu"

    @property
    def hardware(self) -> str:
        return f"compute capability {self.capability // 10}.{self.capability % 10}"


GPU_GENERATIONS: tuple[GpuGeneration, ...] = (
    GpuGeneration("Turing", 75, ("T4", "RTX 2080 Ti")),
    GpuGeneration("Ampere", 80, ("A100", "A30")),
    GpuGeneration("Ada", 89, ("L4", "L40S", "RTX 4090")),
    GpuGeneration("Hopper", 90, ("H100", "H200")),
    GpuGeneration("Blackwell", 100, ("B200", "GB200")),
)

# Formats after which vLLM expects input activations (or float weights: §1.4's assert).
ACTIVATION_QUANTIZATION_FORMATS = frozenset(
    {"naive-quantized", "int-quantized", "float-quantized", "nvfp4-pack-quantized"}
)
PACK_QUANTIZED = "pack-quantized"
INT_QUANTIZED = "int-quantized"
MIXED_PRECISION_FORMAT = "mixed-precision"

# dtype="auto" (not in the research notes; unverified for 0.33.0): bfloat16 needs capability 80, below it vLLM
# runs the model in float16; float32 becomes the platform's preferred 16-bit type.
BFLOAT16_MIN_CAPABILITY = 80
DEFAULT_MODEL_DTYPE = "float32"  # transformers' default when config.json names none
MODEL_DTYPE_ALIASES: Mapping[str, str] = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


# --- §2: the scheme rows, walked top to bottom; the first match wins ------------------------------------------


@dataclass(frozen=True)
class ArgsPattern:
    """Constraints on one `QuantizationArgs`; None means "any". `dynamic=True` also accepts "local"."""

    type: Literal["int", "float"] | None = None
    num_bits: frozenset[int] | None = None
    strategies: frozenset[str] | None = None
    group_size: int | None = None
    symmetric: bool | None = None
    dynamic: bool | None = None
    scale_dtype: str | None = None


@dataclass(frozen=True)
class ActivationRule:
    """What a row needs from `input_activations` (or `output_activations`).

    absent: must be missing; required: present and matching one pattern; optional: matches present or
    absent (a present one that fits no pattern is the row's `mismatched_input_error`); ignored: not inspected.
    """

    presence: Literal["absent", "required", "optional", "ignored"]
    patterns: tuple[ArgsPattern, ...] = ()


TensorCondition = Literal[
    "always", "asymmetric_weights", "input_activations", "static_input", "asymmetric_static_input"
]


@dataclass(frozen=True)
class ExpectedTensor:
    """A tensor `<module>.<suffix>` a scheme loads. Empty `dtypes`: any (vLLM converts scales on load)."""

    suffix: str
    dtypes: tuple[str, ...] = ()
    when: TensorCondition = "always"


# packed_int32: `weight_packed` I32, `weight_shape`; packed_fp4: `weight_packed` U8 (two values a byte);
# dense: `weight` of `dense_weight_dtype`; by_format: packed_int32 for pack-quantized, else dense.
WeightLayout = Literal["packed_int32", "packed_fp4", "dense", "by_format"]
# mixed_precision: `choose_mp_linear_kernel` over MIXED_PRECISION_KERNELS; otherwise not predicted.
KernelSelection = Literal["mixed_precision", "not_predicted"]
# How a scheme describes its weights to `choose_mp_linear_kernel`: WNA16 uses uint4b8 (symmetric) / uint4
# (asymmetric) and so on; W4A8 schemes use signed int4.
MixedPrecisionWeightType = Literal["unsigned_with_bias", "signed"]


@dataclass(frozen=True)
class SchemeRow:
    row: str
    scheme: str
    label: str
    weights: ArgsPattern
    input_activations: ActivationRule
    min_capability: int
    weight_layout: WeightLayout
    output_activations: ActivationRule = ActivationRule("ignored")
    formats: frozenset[str] | None = None  # the effective format must be one of these; None: not checked
    exact_capability: int | None = None  # the row is only tried on this capability
    mismatched_input_error: str | None = None
    below_min_capability_becomes: str | None = None  # a scheme name (row) vLLM silently uses instead
    below_min_capability_note: str | None = None
    dense_weight_dtype: str | None = None
    tensors: tuple[ExpectedTensor, ...] = ()
    k_multiple: int | None = None
    checks_group_divisibility: bool = False  # `verify_group_size_divides_partition`
    block_shape_checks: bool = False  # FP8 block: K/TP % block_k, each fused shard's N % block_n
    static_input_needs_non_block: bool = False  # block weights assert dynamic activations
    kernel_selection: KernelSelection = "not_predicted"
    mixed_precision_weight_type: MixedPrecisionWeightType | None = None
    mixed_precision_activation: Literal["model_dtype", "float8_e4m3fn"] | None = None
    humming_only: bool = False
    expected_format: str | None = None  # what compressed-tensors writes; another format is only a warning
    native_capability: int | None = None
    below_native_note: str | None = None
    note: str | None = None


_BITS_2_TO_8 = frozenset(range(2, 9))
_CHANNEL_OR_GROUP = frozenset({"channel", "group"})
_TENSOR_OR_CHANNEL = frozenset({"tensor", "channel"})
_NVFP4 = ArgsPattern(
    type="float", num_bits=frozenset({4}), strategies=frozenset({"tensor_group"}), group_size=16, symmetric=True
)
_MXFP4 = ArgsPattern(
    type="float", num_bits=frozenset({4}), strategies=frozenset({"group"}), group_size=32, symmetric=True
)
_FP8_TOKEN_OR_GROUP_DYNAMIC = ArgsPattern(
    type="float", num_bits=frozenset({8}), strategies=frozenset({"token", "group"}), symmetric=True, dynamic=True
)
_FP8_WEIGHTS = ArgsPattern(
    type="float",
    num_bits=frozenset({8}),
    strategies=frozenset({"tensor", "channel", "block"}),
    symmetric=True,
    dynamic=False,
)
_INT_STATIC_TENSOR_8 = ArgsPattern(type="int", num_bits=frozenset({8}), strategies=frozenset({"tensor"}), dynamic=False)
_WNA_INT_WEIGHTS = ArgsPattern(type="int", num_bits=_BITS_2_TO_8, strategies=_CHANNEL_OR_GROUP, dynamic=False)
_PACKED_INT_TENSORS = (
    ExpectedTensor("weight_scale"),
    ExpectedTensor("weight_shape", ("I64",)),
    ExpectedTensor("weight_zero_point", ("I32",), "asymmetric_weights"),
)
_FP8_TENSORS = (ExpectedTensor("weight_scale"), ExpectedTensor("input_scale", when="static_input"))
_INT8_TENSORS = (
    ExpectedTensor("weight_scale"),
    ExpectedTensor("input_scale", when="static_input"),
    ExpectedTensor("input_zero_point", when="asymmetric_static_input"),
)
_NO_SCHEME = "No compressed-tensors compatible scheme was found"


def _humming_row(row: str, scheme: str, label: str, activation_bits: int) -> SchemeRow:
    """Rows 7 and 8 differ only in the activations' bit width."""
    activations = ArgsPattern(
        type="int",
        num_bits=frozenset({activation_bits}),
        strategies=frozenset({"token", "group"}),
        symmetric=True,
        dynamic=True,
    )
    return SchemeRow(
        row=row,
        scheme=scheme,
        label=label,
        weights=_WNA_INT_WEIGHTS,
        input_activations=ActivationRule("required", (activations,)),
        formats=frozenset({PACK_QUANTIZED}),
        min_capability=75,
        weight_layout="packed_int32",
        tensors=_PACKED_INT_TENSORS,
        humming_only=True,
    )


SCHEME_ROWS: tuple[SchemeRow, ...] = (
    SchemeRow(
        row="1",
        scheme="CompressedTensorsW4A4Fp4",
        label="NVFP4 (W4A4) / NVFP4A16",
        weights=_NVFP4,
        input_activations=ActivationRule("optional", (_NVFP4,)),
        min_capability=75,
        mismatched_input_error=(
            "NVFP4 weights need NVFP4 input activations (float, 4 bit, tensor_group, group_size 16, symmetric) or none"
        ),
        weight_layout="packed_fp4",
        tensors=(
            ExpectedTensor("weight_scale", ("F8_E4M3",)),
            ExpectedTensor("weight_global_scale", ("F32",)),
            ExpectedTensor("input_global_scale", ("F32",), "input_activations"),
        ),
        k_multiple=16,
        expected_format="nvfp4-pack-quantized",
        native_capability=100,
        below_native_note=(
            "no native FP4 below Blackwell: vLLM runs NVFP4 through the Marlin FP4 kernel (weight-only, with a"
            ' warning "Your GPU does not have native support for FP4") or the slow emulation backend'
        ),
    ),
    SchemeRow(
        row="2",
        scheme="CompressedTensorsW4A8Mxfp4",
        label="MXFP4 weights × FP8 activations (W4A8)",
        weights=ArgsPattern(
            type="float",
            num_bits=frozenset({4}),
            strategies=frozenset({"group"}),
            group_size=32,
            symmetric=True,
            dynamic=False,
        ),
        input_activations=ActivationRule("required", (_FP8_TOKEN_OR_GROUP_DYNAMIC,)),
        min_capability=80,
        weight_layout="packed_fp4",
        tensors=(ExpectedTensor("weight_scale"),),
        k_multiple=32,
        note="falls back to MXFP4 activations (with a warning) when no kernel takes FP8 activations",
    ),
    SchemeRow(
        row="3",
        scheme="CompressedTensorsW4A4Mxfp4",
        label="MXFP4",
        weights=_MXFP4,
        input_activations=ActivationRule("ignored"),
        min_capability=80,
        weight_layout="packed_fp4",
        tensors=(ExpectedTensor("weight_scale"),),
        k_multiple=32,
        expected_format="mxfp4-pack-quantized",
    ),
    SchemeRow(
        row="4",
        scheme="CompressedTensorsW8A8Mxfp8",
        label="MXFP8",
        weights=ArgsPattern(
            type="float",
            num_bits=frozenset({8}),
            strategies=frozenset({"group"}),
            group_size=32,
            symmetric=True,
            scale_dtype="uint8",
        ),
        input_activations=ActivationRule("ignored"),
        min_capability=75,
        weight_layout="dense",
        dense_weight_dtype="F8_E4M3",
        tensors=(ExpectedTensor("weight_scale", ("U8",)),),
        expected_format="mxfp8-quantized",
    ),
    SchemeRow(
        row="5",
        scheme="CompressedTensorsW4A8Fp8",
        label="INT4 weights × FP8 activations (W4AFP8)",
        weights=ArgsPattern(
            type="int",
            num_bits=frozenset({4}),
            strategies=frozenset({"group"}),
            group_size=128,
            symmetric=True,
            dynamic=False,
        ),
        input_activations=ActivationRule(
            "required",
            (
                ArgsPattern(
                    type="float",
                    num_bits=frozenset({8}),
                    strategies=frozenset({"token"}),
                    symmetric=True,
                    dynamic=True,
                ),
            ),
        ),
        min_capability=90,
        exact_capability=90,
        weight_layout="packed_int32",
        tensors=(ExpectedTensor("weight_scale"), ExpectedTensor("weight_shape", ("I64",))),
        kernel_selection="mixed_precision",
        mixed_precision_weight_type="signed",
        mixed_precision_activation="float8_e4m3fn",
        note="save it as pack-quantized: compressed-tensors 0.19 infers int-quantized for this preset",
    ),
    SchemeRow(
        row="6",
        scheme="CompressedTensorsWNA8O8Int",
        label="INT weights, INT8 input and output activations (WNA8O8)",
        weights=ArgsPattern(type="int", num_bits=frozenset({2, 4, 8}), strategies=_CHANNEL_OR_GROUP, dynamic=False),
        input_activations=ActivationRule("required", (_INT_STATIC_TENSOR_8,)),
        output_activations=ActivationRule("required", (_INT_STATIC_TENSOR_8,)),
        formats=frozenset({PACK_QUANTIZED, INT_QUANTIZED}),
        min_capability=70,
        weight_layout="by_format",
        dense_weight_dtype="I8",
        tensors=(ExpectedTensor("weight_scale"),),
        checks_group_divisibility=True,
    ),
    _humming_row("7", "CompressedTensorsWNA8Int", "INT weights × INT8 activations via Humming (WNA8)", 8),
    _humming_row("8", "CompressedTensorsWNA4Int", "INT weights × INT4 activations via Humming (WNA4)", 4),
    SchemeRow(
        row="9",
        scheme="CompressedTensorsWNA16",
        label="INT weight-only (WNA16)",
        # The weight type is not re-checked here: float weights have matched an earlier row.
        weights=ArgsPattern(num_bits=_BITS_2_TO_8, strategies=_CHANNEL_OR_GROUP, dynamic=False),
        input_activations=ActivationRule("absent"),
        formats=frozenset({PACK_QUANTIZED}),
        min_capability=75,
        weight_layout="packed_int32",
        tensors=_PACKED_INT_TENSORS,
        checks_group_divisibility=True,
        kernel_selection="mixed_precision",
        mixed_precision_weight_type="unsigned_with_bias",
        mixed_precision_activation="model_dtype",
    ),
    SchemeRow(
        row="10",
        scheme="CompressedTensorsW8A8Fp8",
        label="FP8 weights and activations (W8A8 FP8)",
        weights=_FP8_WEIGHTS,
        input_activations=ActivationRule(
            "required",
            (
                ArgsPattern(type="float", num_bits=frozenset({8}), strategies=frozenset({"token"}), dynamic=True),
                ArgsPattern(
                    type="float", num_bits=frozenset({8}), strategies=frozenset({"group"}), group_size=128, dynamic=True
                ),
                ArgsPattern(
                    type="float",
                    num_bits=frozenset({8}),
                    strategies=frozenset({"tensor"}),
                    symmetric=True,
                    dynamic=False,
                ),
            ),
        ),
        formats=ACTIVATION_QUANTIZATION_FORMATS,
        min_capability=89,
        below_min_capability_becomes="CompressedTensorsW8A16Fp8",
        below_min_capability_note=(
            "FP8 W8A8 runs as weight-only W8A16 (CompressedTensorsW8A16Fp8) below capability 89:"
            " activations stay in 16 bit"
        ),
        weight_layout="dense",
        dense_weight_dtype="F8_E4M3",
        tensors=_FP8_TENSORS,
        block_shape_checks=True,
        static_input_needs_non_block=True,
    ),
    SchemeRow(
        row="11",
        scheme="CompressedTensorsW8A16Fp8",
        label="FP8 weight-only (W8A16 FP8)",
        weights=ArgsPattern(
            type="float", strategies=frozenset({"tensor", "channel", "block"}), symmetric=True, dynamic=False
        ),
        input_activations=ActivationRule("ignored"),
        formats=ACTIVATION_QUANTIZATION_FORMATS,
        min_capability=75,
        weight_layout="dense",
        dense_weight_dtype="F8_E4M3",
        tensors=_FP8_TENSORS,
        block_shape_checks=True,
        static_input_needs_non_block=True,
    ),
    SchemeRow(
        row="12",
        scheme="CompressedTensorsW8A8Int8",
        label="INT8 weights and static per-tensor activations",
        weights=ArgsPattern(num_bits=frozenset({8}), strategies=_TENSOR_OR_CHANNEL, symmetric=True, dynamic=False),
        input_activations=ActivationRule(
            "required", (ArgsPattern(num_bits=frozenset({8}), strategies=frozenset({"tensor"}), dynamic=False),)
        ),
        formats=ACTIVATION_QUANTIZATION_FORMATS,
        min_capability=75,
        weight_layout="dense",
        dense_weight_dtype="I8",
        tensors=_INT8_TENSORS,
    ),
    SchemeRow(
        row="13",
        scheme="CompressedTensorsW8A8Int8",
        label="INT8 weights and dynamic per-token activations",
        weights=ArgsPattern(num_bits=frozenset({8}), strategies=_TENSOR_OR_CHANNEL, symmetric=True, dynamic=False),
        input_activations=ActivationRule(
            "required", (ArgsPattern(num_bits=frozenset({8}), strategies=frozenset({"token"}), dynamic=True),)
        ),
        formats=ACTIVATION_QUANTIZATION_FORMATS,
        min_capability=75,
        weight_layout="dense",
        dense_weight_dtype="I8",
        tensors=_INT8_TENSORS,
    ),
    SchemeRow(
        row="14",
        scheme="CompressedTensorsW4A8Int",
        label="INT4 weights × INT8 activations (W4A8)",
        weights=ArgsPattern(
            type="int", num_bits=frozenset({4}), strategies=_CHANNEL_OR_GROUP, symmetric=True, dynamic=False
        ),
        input_activations=ActivationRule(
            "required",
            (ArgsPattern(type="int", num_bits=frozenset({8}), strategies=frozenset({"token"}), dynamic=True),),
        ),
        formats=ACTIVATION_QUANTIZATION_FORMATS,
        min_capability=1,
        weight_layout="dense",
        dense_weight_dtype="I8",  # int4 values, unpacked
        tensors=(ExpectedTensor("weight_scale"),),
        checks_group_divisibility=True,
        kernel_selection="mixed_precision",
        mixed_precision_weight_type="signed",
        mixed_precision_activation="model_dtype",
        note="its intended backends are CPU and XPU; on CUDA only the Humming kernel takes it",
    ),
)

# --- §3: WNA16 (mixed-precision) kernels, in vLLM's CUDA candidate order -------------------------------------


@dataclass(frozen=True)
class MixedPrecisionKernel:
    """One `choose_mp_linear_kernel` candidate and its `can_implement` conditions.

    group_sizes holds -1 for channel-wise. k_part_group_divisibility: "always" needs K_part % gs == 0 whenever
    gs > 0; "below_k" only when gs < K. n_part_pack_multiple: N_part % (32 / bits) == 0.
    """

    name: str
    min_capability: int = 0
    exact_capability: int | None = None
    activation_dtypes: frozenset[str] | None = frozenset({"float16", "bfloat16"})
    output_dtypes: frozenset[str] | None = None
    weight_types: frozenset[str] | None = None  # None: any
    group_sizes: frozenset[int] | None = None
    group_size_may_equal_k: bool = False
    needs_groups: bool = False
    k_part_multiple: int | None = None
    n_part_multiple: int | None = None
    n_part_pack_multiple: bool = False
    k_part_group_divisibility: Literal["never", "always", "below_k"] = "never"
    full_k_divisible_by_group: bool = False
    requires_package: str | None = None  # not a vLLM dependency: skipped on a default install
    catch_all: bool = False


HUMMING_KERNEL = "HummingLinearKernel"
MIXED_PRECISION_KERNELS: tuple[MixedPrecisionKernel, ...] = (
    MixedPrecisionKernel(
        "CutlassW4A8LinearKernel",
        exact_capability=90,
        activation_dtypes=frozenset({"float8_e4m3fn"}),
        output_dtypes=frozenset({"bfloat16"}),
        weight_types=frozenset({"int4"}),
        group_sizes=frozenset({128}),
        k_part_multiple=128,
        n_part_multiple=128,
    ),
    MixedPrecisionKernel(
        "MacheteLinearKernel",
        exact_capability=90,
        weight_types=frozenset({"uint4b8", "uint8b128", "uint4", "uint8"}),
        group_sizes=frozenset({-1, 64, 128}),
        k_part_multiple=64,
        n_part_multiple=128,
    ),
    MixedPrecisionKernel(
        "MarlinLinearKernel",
        min_capability=75,
        weight_types=frozenset({"uint4b8", "uint8b128", "uint4"}),
        group_sizes=frozenset({-1, 32, 64, 128}),
        k_part_group_divisibility="below_k",
    ),
    MixedPrecisionKernel(
        "ConchLinearKernel",
        min_capability=80,
        weight_types=frozenset({"uint4", "uint8", "uint4b8", "uint8b128"}),
        group_sizes=frozenset({-1, 128}),
        requires_package="conch-triton-kernels",
    ),
    MixedPrecisionKernel(
        "ExllamaLinearKernel",
        min_capability=60,
        activation_dtypes=frozenset({"float16"}),
        weight_types=frozenset({"uint4b8", "uint8b128"}),
        needs_groups=True,
        full_k_divisible_by_group=True,
        n_part_pack_multiple=True,
    ),
    MixedPrecisionKernel(
        "TritonW4A16LinearKernel",
        weight_types=frozenset({"uint4b8", "uint4"}),
        group_sizes=frozenset({-1, 32, 64, 128, 256}),
        group_size_may_equal_k=True,
        n_part_multiple=8,
        k_part_group_divisibility="always",
    ),
    MixedPrecisionKernel(HUMMING_KERNEL, min_capability=75, activation_dtypes=None, catch_all=True),
)

# --- §4: layers, fusing, ignore and embeddings -----------------------------------------------------------------

# vLLM fuses these HF modules into one layer; all shards must share one scheme and one ignore status.
FUSED_LAYERS: Mapping[str, tuple[str, ...]] = {
    "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "gate_up_proj": ("gate_proj", "up_proj"),
}
# Row-parallel layers split K (in_features) across tensor-parallel ranks; every other Linear splits N.
ROW_PARALLEL_MODULES = frozenset({"o_proj", "down_proj", "out_proj", "dense", "fc2", "w2", "wo", "dense_4h_to_h"})
LM_HEAD_MODULES = frozenset({"lm_head"})
EMBEDDING_MODULES = frozenset({"embed_tokens", "wte", "word_embeddings", "tok_embeddings", "embed_in"})
NOT_LINEAR_MODULES = frozenset({"wpe", "embed_positions", "position_embeddings"})
EXPERTS_PART = "experts"
# vLLM's layer class names, matched by case-insensitive substring against class targets. MoE experts live in
# FusedMoE, which the reference leaves out of the per-Linear rules; they are matched like HF's `Linear`.
VLLM_LAYER_CLASSES: Mapping[str, str] = {
    "qkv": "QKVParallelLinear",
    "gate_up": "MergedColumnParallelLinear",
    "row": "RowParallelLinear",
    "column": "ColumnParallelLinear",
    "lm_head": "ParallelLMHead",
    "embedding": "VocabParallelEmbedding",
    "expert": "Linear",
}
HF_LINEAR_CLASS = "Linear"  # the class llm-compressor matched a `Linear` target against (lm_head included)
REGEX_PREFIX = "re:"
ATTENTION_TARGET_SUFFIX = "Attention"

# Tensors that mark a module as quantized in a compressed-tensors checkpoint.
QUANTIZED_TENSOR_SUFFIXES = frozenset(
    {"weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_global_scale", "weight_g_idx"}
)
G_IDX_SUFFIX = "weight_g_idx"

# A quantized embedding is looked up only (its `apply` raises): INT weight-only, channel or group, 2-8 bit,
# saved pack-quantized.
EMBEDDING_WEIGHTS = ArgsPattern(type="int", num_bits=_BITS_2_TO_8, strategies=_CHANNEL_OR_GROUP, dynamic=False)
EMBEDDING_FORMAT = PACK_QUANTIZED

# `kv_cache_scheme`: the only accepted shape.
KV_CACHE_SCHEME = ArgsPattern(
    type="float", num_bits=frozenset({8}), strategies=frozenset({"tensor", "attn_head"}), symmetric=True
)

# --- §5 / §6: vLLM's own wording, for reasons and for matching smoke-test logs ---------------------------------

ERROR_NO_SCHEME = _NO_SCHEME
ERROR_NO_KERNEL = "Failed to find a kernel that can implement the WNA16 linear layer"
ERROR_MIN_CAPABILITY = "Quantization scheme is not supported for the current GPU"
ERROR_GROUP_DIVISIBILITY = "is not divisible by group_size"
ERROR_FUSED_SHARDS = "Found different quantization schemes for the shards"
ERROR_SPARSITY = "Sparsity support has been removed from compressed-tensors"
ERROR_ACTORDER = "activation ordering with g_idx is no longer supported"
ERROR_KV_CACHE = "Currently supported kv cache quantization is num_bits=8, type=float"
ERROR_EXTRA_KEY = "Extra inputs are not permitted"  # pydantic's wording for extra="forbid"
# Tensor parallelism splits the attention heads (ModelConfig.verify_with_parallel_config), and the KV heads, or
# replicates them when there are fewer than ranks (QKVParallelLinear, through `divide`).
ERROR_HEADS_TP = "must be divisible by tensor parallel size"
ERROR_DIVIDE = "is not divisible by"

# Regular expressions (re.search) for the failures worth naming in a vLLM log.
VLLM_ERROR_PATTERNS: tuple[str, ...] = (
    r"No compressed-tensors compatible scheme was found",
    r"Failed to find a kernel that can implement the \S+ linear layer",
    r"Quantization scheme is not supported for the current GPU",
    r"is not divisible by group_size",
    r"Found different quantization schemes for the shards",
    r"Sparsity support has been removed",
    r"activation ordering.*is no longer supported",
    r"Currently supported kv cache quantization is num_bits=8, type=float",
    r"Extra inputs are not permitted",
    r"Total number of attention heads \(\d+\) must be divisible by tensor parallel size",
    r"Engine core initialization failed",
)

# INFO lines a successful load logs, per scheme; {kernel} is the kernel class name (or a regex for several).
KERNEL_LOG_TEMPLATES: Mapping[str, str] = {
    "CompressedTensorsWNA16": r"Using {kernel} for CompressedTensorsWNA16",
    "CompressedTensorsW4A8Fp8": r"Using {kernel} for CompressedTensorsW4A8Fp8",
    "CompressedTensorsW4A8Int": r"Using {kernel} for CompressedTensorsW4A8Int",
    "CompressedTensorsWNA8Int": r"Using {kernel} for CompressedTensorsWNA8Int",
    "CompressedTensorsWNA4Int": r"Using {kernel} for CompressedTensorsWNA4Int",
    "CompressedTensorsW8A8Fp8": r"Selected {kernel} for CompressedTensorsW8A8Fp8",
    "CompressedTensorsW8A8Int8": r"(?:Using|Selected) {kernel} for CompressedTensorsW8A8Int8",
    "CompressedTensorsW4A4Fp4": r"Using {kernel} for NVFP4 GEMM",
    "CompressedTensorsW4A8Mxfp4": r"Using {kernel} for MXFP4 GEMM",
    "CompressedTensorsW4A4Mxfp4": r"Using {kernel} for MXFP4 GEMM",
    "CompressedTensorsW8A8Mxfp8": r"Using {kernel} for MXFP8 GEMM",
}
ANY_KERNEL_PATTERN = r"\w+"
