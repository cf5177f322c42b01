"""Checkpoint sizes per scheme, following compressed-tensors' on-disk formats.

A quantized Linear stores its weight at the scheme's bits (4-bit values packed eight to an int32,
8-bit ones one byte each), a scale per group or per output channel in the base dtype, zero points
(packed like the weights) for asymmetric schemes, and, for packed formats, its 2-value int64 shape.
Everything else (embeddings, ignored layers such as lm_head, norms, biases) stays in the base dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubpub.checkpoint import selected_for_quantization
from hubpub.resources.shape import Linear, ModelShape
from hubpub.schemes import Scheme

_PACKED_SHAPE_BYTES = 16
"""`weight_shape`: two int64 values beside each packed weight."""


@dataclass(frozen=True)
class CheckpointSize:
    """What a quantized checkpoint holds, in bytes."""

    quantized_weights: int
    scales: int
    zero_points: int
    unquantized: int
    quantized_parameters: int

    @property
    def total(self) -> int:
        return self.quantized_weights + self.scales + self.zero_points + self.unquantized


def _packed(scheme: Scheme) -> bool:
    """compressed-tensors' pack-quantized format: integer weights below 8 bits, or any weight-only integer scheme."""
    return scheme.weights.type == "int" and scheme.activations is None


def _quantized_linear(linear: Linear, scheme: Scheme, group_size: int | None, dtype_bytes: int) -> tuple[int, int, int]:
    """Bytes of (weight, scales, zero points) of one quantized Linear."""
    bits = scheme.weights.num_bits
    weight = linear.out_features * linear.in_features * bits // 8 + (_PACKED_SHAPE_BYTES if _packed(scheme) else 0)
    groups = -(-linear.in_features // group_size) if scheme.uses_groups and group_size else 1
    scales = linear.out_features * groups * dtype_bytes
    zero_points = 0 if scheme.weights.symmetric else -(-linear.out_features * bits // 8) * groups
    return weight, scales, zero_points


def checkpoint_size(
    shape: ModelShape, scheme: Scheme, *, group_size: int | None, targets: tuple[str, ...], ignore: tuple[str, ...]
) -> CheckpointSize:
    """The weights of the compressed checkpoint `scheme` makes of a model of `shape`."""
    dtype = shape.dtype_bytes
    # A tied lm_head shares the embedding's storage: it is saved once, as the embedding.
    linears = [linear for linear in shape.linears() if not (linear.name == "lm_head" and shape.tied_embeddings)]
    unquantized = (shape.parameters - sum(linear.parameters for linear in linears)) * dtype
    weights = scales = zero_points = parameters = 0
    for linear in linears:
        if not selected_for_quantization(linear.name, targets, ignore):
            unquantized += linear.parameters * dtype
            continue
        weight, scale, zero_point = _quantized_linear(linear, scheme, group_size, dtype)
        weights, scales, zero_points = weights + weight, scales + scale, zero_points + zero_point
        unquantized += (linear.out_features if linear.bias else 0) * dtype
        parameters += linear.parameters
    return CheckpointSize(weights, scales, zero_points, unquantized, parameters)
