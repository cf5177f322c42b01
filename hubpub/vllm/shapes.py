"""§2's tensor column and §4 of the rules: the tensors a scheme loads, and the shapes vLLM can split and serve.

Per layer: the tensor names and dtypes the matched scheme expects; N and K from `weight_shape` (or the packed
width); group divisibility of K; the dense sub-byte packing of compressed-tensors 0.18+; and, for each
tensor-parallel size, the partition every shard must divide into (FP8 blocks included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubpub.vllm import rules
from hubpub.vllm.config import ConfigGroup, QuantArgs
from hubpub.vllm.findings import VLLM
from hubpub.vllm.layers import Layer, Module


def weight_layout(row: rules.SchemeRow, group: ConfigGroup) -> tuple[str, str, int]:
    """(suffix, dtype, values per stored element) of the weight tensor the row loads."""
    layout = row.weight_layout
    if layout == "by_format":
        layout = "packed_int32" if group.format == rules.PACK_QUANTIZED else "dense"
    if layout == "packed_int32":
        bits = group.weights.num_bits if group.weights else 4
        return "weight_packed", "I32", 32 // bits if 32 % bits == 0 else 0
    if layout == "packed_fp4":
        return "weight_packed", "U8", 2
    return "weight", row.dense_weight_dtype or "", 1


def _tensor_condition(condition: rules.TensorCondition, group: ConfigGroup) -> bool:
    weights, inputs = group.weights, group.input_activations
    static_input = inputs is not None and not inputs.dynamic
    if condition == "always":
        return True
    if condition == "asymmetric_weights":
        return weights is not None and not weights.symmetric
    if condition == "input_activations":
        return inputs is not None
    if condition == "static_input":
        return static_input
    return static_input and inputs is not None and not inputs.symmetric


def tensor_problems(module: Module, row: rules.SchemeRow, group: ConfigGroup) -> list[str]:
    """The tensors `row` loads that the module lacks or stores with another dtype (`{layer}` placeholders)."""
    suffix, dtype, _ = weight_layout(row, group)
    problems: list[str] = []
    stored = module.tensors.get(suffix)
    if stored is None:
        advice = (
            f"save it as {rules.PACK_QUANTIZED!r} (llm-compressor: quantization_format='{rules.PACK_QUANTIZED}')"
            if suffix == "weight_packed"
            else f"save it in the format {row.scheme} reads"
        )
        # The rest of the layout follows from the weight tensor: one problem says it all.
        return [
            f"{{layer}}: {row.scheme} loads {suffix} ({dtype}), but the checkpoint stores {module.stored_weight()};"
            f" {advice}"
        ]
    if dtype and stored.dtype != dtype:
        problems.append(f"{{layer}}: {row.scheme} loads {suffix} as {dtype}, but the checkpoint stores {stored.dtype}")
    for expected in row.tensors:
        if not _tensor_condition(expected.when, group):
            continue
        tensor = module.tensors.get(expected.suffix)
        if tensor is None:
            problems.append(f"{{layer}}: {row.scheme} loads {expected.suffix}, which the checkpoint lacks")
        elif expected.dtypes and tensor.dtype not in expected.dtypes:
            problems.append(
                f"{{layer}}: {row.scheme} loads {expected.suffix} as {'/'.join(expected.dtypes)}, but the checkpoint"
                f" stores {tensor.dtype}"
            )
    if "weight_zero_point" in module.tensors and group.weights is not None and group.weights.symmetric:
        problems.append(
            f"{{layer}}: the checkpoint has weight_zero_point, but config group {group.name!r} declares symmetric"
            f" weights, so {row.scheme} has no such parameter"
        )
    return problems


# --- N and K of each shard ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    n: int
    k: int
    exact: bool
    scale_columns: int | None
    packed_columns: int | None = None  # int32 columns, when K came from the stored weight_shape


def shard_shape(
    module: Module, row: rules.SchemeRow, group: ConfigGroup, weight_shapes: Mapping[str, tuple[int, int]]
) -> Shape | None:
    suffix, _, per_element = weight_layout(row, group)
    stored = module.tensors.get(suffix)
    if stored is None or len(stored.shape) != 2:
        return None
    scale = module.tensors.get("weight_scale")
    scale_columns = scale.shape[-1] if scale is not None and len(scale.shape) == 2 else None
    if suffix == "weight_packed" and module.name in weight_shapes and row.weight_layout != "packed_fp4":
        n, k = weight_shapes[module.name]
        return Shape(n, k, True, scale_columns, packed_columns=stored.shape[1])
    if suffix == "weight_packed" and row.weight_layout != "packed_fp4":
        bits = group.weights.num_bits if group.weights else 4
        return Shape(stored.shape[0], stored.shape[1] * 32 // bits, per_element > 0, scale_columns)
    return Shape(stored.shape[0], stored.shape[1] * per_element, True, scale_columns)


def _group_size(weights: QuantArgs) -> int | None:
    return weights.group_size if weights.strategy == "group" and weights.group_size else None


def shape_problem(group: ConfigGroup, weights: QuantArgs, row: rules.SchemeRow, shapes: list[Shape]) -> str | None:
    """The first whole-layer shape rule the layer breaks (before any tensor-parallel split), else None."""
    k = shapes[0].k
    group_size = _group_size(weights)
    if group_size and k % group_size and row.checks_group_divisibility:
        columns = shapes[0].scale_columns
        flag = (
            f" (its weight_scale has ceil({k}/{group_size}) = {columns} columns: compressed-tensors let the"
            " indivisible shape through)"
            if columns == math.ceil(k / group_size)
            else ""
        )
        return (
            f"{{layer}}: Weight input_size_per_partition={k} {rules.ERROR_GROUP_DIVISIBILITY}={group_size}{flag};"
            " add it to ignore or use a group size that divides it"
        )
    layout = _stored_layout_problem(group, weights, shapes)
    if layout is not None:
        return layout
    if row.k_multiple and k % row.k_multiple:
        return (
            f"{{layer}}: in_features {k} is not a multiple of {row.k_multiple}, which {row.scheme} needs;"
            " add it to ignore"
        )
    inputs = group.input_activations
    if row.static_input_needs_non_block and weights.strategy == "block" and inputs is not None and not inputs.dynamic:
        return (
            "{layer}: block-quantized FP8 weights need dynamic input activations (vLLM asserts it);"
            " re-quantize with dynamic per-token or group-128 activations"
        )
    return None


def _stored_layout_problem(group: ConfigGroup, weights: QuantArgs, shapes: list[Shape]) -> str | None:
    """Packed width and scale width against N and K: dense packing, one scale column per group."""
    bits = weights.num_bits
    group_size = _group_size(weights)
    for shape in shapes:
        wanted_columns = math.ceil(shape.k * bits / 32)
        if shape.packed_columns is not None and shape.packed_columns != wanted_columns:
            return (
                f"{{layer}}: weight_packed has {shape.packed_columns} int32 columns where {VLLM} packs {shape.k}"
                f" {bits}-bit values densely into {wanted_columns} (a padded layout from compressed-tensors"
                " 0.17 or older); re-save with compressed-tensors 0.18 or newer"
            )
        allowed = (None, shape.k // group_size, math.ceil(shape.k / group_size)) if group_size else (None,)
        if group_size and shape.exact and shape.scale_columns not in allowed:
            return (
                f"{{layer}}: its weight_scale has {shape.scale_columns} columns where {shape.k}/{group_size}"
                f" needs {shape.k // group_size}; the checkpoint does not match config group {group.name!r}"
            )
    return None


# --- tensor-parallel partitions -----------------------------------------------------------------------------------


def head_problems(config: Mapping[str, Any], tp: int) -> list[str]:
    """Why the attention or KV heads of `config` (its text model's) cannot be spread over `tp` ranks."""
    if tp == 1:
        return []
    text_config = config.get("text_config")
    section = text_config if isinstance(text_config, Mapping) and "num_attention_heads" in text_config else config
    heads = section.get("num_attention_heads")
    if not isinstance(heads, int) or heads <= 0:
        return []
    if heads % tp:
        return [
            f"at tensor_parallel_size={tp}: the number of attention heads ({heads}) {rules.ERROR_HEADS_TP} ({tp})"
            f" in {VLLM}; plan a tensor-parallel size that divides {heads}"
        ]
    kv_heads = section.get("num_key_value_heads", heads)
    if not isinstance(kv_heads, int) or kv_heads <= 0:
        return []
    # Fewer KV heads than ranks: each is replicated tp / kv_heads times, which must be whole.
    larger, smaller = (tp, kv_heads) if tp >= kv_heads else (kv_heads, tp)
    if larger % smaller:
        return [
            f"at tensor_parallel_size={tp}: the {kv_heads} key-value heads cannot be split or replicated evenly"
            f" ({larger} {rules.ERROR_DIVIDE} {smaller} in {VLLM}); plan a tensor-parallel size that divides"
            f" {kv_heads} or is a multiple of it"
        ]
    return []


@dataclass(frozen=True)
class Partition:
    """One GPU's share of a layer at a tensor-parallel size: K split on row-parallel layers, N otherwise."""

    tp: int
    k_part: int
    n_part: int

    @property
    def prefix(self) -> str:
        return f"at tensor_parallel_size={self.tp}: " if self.tp > 1 else ""


def partition(layer: Layer, shapes: list[Shape], tp: int) -> Partition | str:
    """The layer's partition at `tp`, or why its features do not split evenly (a `{layer}` placeholder)."""
    k = shapes[0].k
    shard_ns = [shape.n for shape in shapes]
    n_total = sum(shard_ns)
    if tp == 1:
        return Partition(tp, k, n_total)
    if layer.row_parallel:
        if k % tp:
            return f"at tensor_parallel_size={tp}: {{layer}}: in_features {k} is not divisible by {tp}"
        return Partition(tp, k // tp, n_total)
    if any(n % tp for n in shard_ns):
        return (
            f"at tensor_parallel_size={tp}: {{layer}}: out_features {'/'.join(map(str, shard_ns))} are not"
            f" divisible by {tp}"
        )
    return Partition(tp, k, n_total // tp)


def partition_group_problem(weights: QuantArgs, row: rules.SchemeRow, part: Partition) -> str | None:
    """vLLM's `verify_group_size_divides_partition`: each GPU's share of K holds whole groups."""
    group_size = _group_size(weights)
    if group_size and row.checks_group_divisibility and part.k_part % group_size:
        return (
            f"{part.prefix}{{layer}}: Weight input_size_per_partition={part.k_part}"
            f" {rules.ERROR_GROUP_DIVISIBILITY}={group_size}; add it to ignore or use a group size that"
            f" divides {part.k_part}"
        )
    return None


def block_problems(
    layer: Layer, weights: QuantArgs, row: rules.SchemeRow, shapes: list[Shape], part: Partition
) -> list[str]:
    """FP8 block quantization: each GPU's share of K, and each shard's N, hold whole blocks."""
    if not row.block_shape_checks or not weights.block_structure:
        return []
    block_n, block_k = weights.block_structure
    tp, prefix = part.tp, part.prefix
    problems: list[str] = []
    # Worded like vLLM's FP8 block-shape validation (from memory of older releases, not the research notes).
    if tp > 1 and layer.row_parallel and part.k_part % block_k:
        problems.append(
            f"{prefix}{{layer}}: Weight input_size_per_partition = {part.k_part} is not divisible by weight"
            f" quantization block_k = {block_k}."
        )
    split_n = tp > 1 and not layer.row_parallel
    checked = shapes if split_n else shapes[:-1]
    for shape in checked:
        n = shape.n // tp if split_n else shape.n
        if n % block_n:
            problems.append(
                f"{prefix}{{layer}}: Weight output_partition_size = {n} is not divisible by weight quantization"
                f" block_n = {block_n}."
            )
            break
    return problems
