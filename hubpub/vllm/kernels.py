"""§3 of the rules: the WNA16 kernel vLLM's `choose_mp_linear_kernel` picks for one layer, or why none fits.

Kernels are tried in `rules.MIXED_PRECISION_KERNELS` order; each is refused for being disabled, for the GPU's
capability, or for the layer (weight type, group size, partition shape), and the refusals read like the lines of
vLLM's "Failed to find a kernel" error. The activation dtype is the model's, as dtype="auto" runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hubpub.checkpoint import text_config
from hubpub.vllm import rules
from hubpub.vllm.config import QuantArgs
from hubpub.vllm.cpu_kernels import CPU_KERNEL_ORDER
from hubpub.vllm.findings import VLLM, layer_phrase

KERNEL_ORDER = [kernel.name for kernel in rules.MIXED_PRECISION_KERNELS]
ALL_KERNEL_ORDER = [*KERNEL_ORDER, *CPU_KERNEL_ORDER]


@dataclass(frozen=True)
class KernelRequest:
    """What a scheme asks `choose_mp_linear_kernel` for, for one layer on one GPU and TP split."""

    capability: int
    weight_type: str  # vLLM scalar type name: uint4b8, uint4, int4, ...
    group_size: int  # -1 for channel-wise
    k: int
    k_part: int
    n_part: int
    activation_dtype: str
    output_dtype: str


@dataclass(frozen=True)
class KernelChoice:
    kernel: str | None
    rejections: tuple[str, ...]


def choose_mixed_precision_kernel(request: KernelRequest, *, disabled: Iterable[str] = ()) -> KernelChoice:
    """Emulate vLLM's `choose_mp_linear_kernel` on CUDA: the first candidate whose conditions hold.

    `disabled` mirrors VLLM_DISABLED_KERNELS. The rejections read like the lines of vLLM's
    "Failed to find a kernel" error.
    """
    disabled_names = frozenset(disabled)
    rejections: list[str] = []
    for kernel in rules.MIXED_PRECISION_KERNELS:
        why = _kernel_rejection(kernel, request, disabled_names)
        if why is None:
            return KernelChoice(kernel.name, tuple(rejections))
        rejections.append(why)
    return KernelChoice(None, tuple(rejections))


def _kernel_rejection(
    kernel: rules.MixedPrecisionKernel, request: KernelRequest, disabled: frozenset[str]
) -> str | None:
    if kernel.name in disabled:
        return f"{kernel.name} is disabled by VLLM_DISABLED_KERNELS"
    if kernel.requires_package:
        return f"{kernel.name} needs the {kernel.requires_package} package, which vLLM does not install"
    required = kernel.exact_capability
    if required is not None and request.capability != required:
        return f"{kernel.name} requires capability {required}, current compute capability is {request.capability}"
    if request.capability < kernel.min_capability:
        return (
            f"{kernel.name} requires capability {kernel.min_capability}, current compute capability is"
            f" {request.capability}"
        )
    why = [*_type_mismatches(kernel, request), *_shape_mismatches(kernel, request)]
    return f"{kernel.name} cannot implement due to: {'; '.join(why)}" if why else None


def _type_mismatches(kernel: rules.MixedPrecisionKernel, request: KernelRequest) -> list[str]:
    why: list[str] = []
    group_size = request.group_size
    if kernel.activation_dtypes is not None and request.activation_dtype not in kernel.activation_dtypes:
        why.append(f"activation dtype {request.activation_dtype} is not {'/'.join(sorted(kernel.activation_dtypes))}")
    if kernel.output_dtypes is not None and request.output_dtype not in kernel.output_dtypes:
        why.append(f"output dtype {request.output_dtype} is not {'/'.join(sorted(kernel.output_dtypes))}")
    if kernel.weight_types is not None and request.weight_type not in kernel.weight_types:
        why.append(f"quant type {request.weight_type} is not supported")
    if kernel.needs_groups and group_size <= 0:
        why.append("channel-wise quantization is not supported")
    elif (
        kernel.group_sizes is not None
        and group_size not in kernel.group_sizes
        and not (kernel.group_size_may_equal_k and group_size == request.k)
    ):
        why.append(f"group size {group_size} is not supported")
    return why


def _shape_mismatches(kernel: rules.MixedPrecisionKernel, request: KernelRequest) -> list[str]:
    why: list[str] = []
    group_size, k, k_part, n_part = request.group_size, request.k, request.k_part, request.n_part
    if kernel.k_part_multiple and k_part % kernel.k_part_multiple:
        why.append(f"K_part {k_part} is not a multiple of {kernel.k_part_multiple}")
    if kernel.n_part_multiple and n_part % kernel.n_part_multiple:
        why.append(f"N_part {n_part} is not a multiple of {kernel.n_part_multiple}")
    bits = _type_bits(request.weight_type)
    if kernel.n_part_pack_multiple and 32 % bits == 0:
        pack_factor = 32 // bits
        if n_part % pack_factor:
            why.append(f"N_part {n_part} is not a multiple of the pack factor {pack_factor}")
    grouped = group_size > 0
    divides = kernel.k_part_group_divisibility == "always" or (
        kernel.k_part_group_divisibility == "below_k" and group_size < k
    )
    if grouped and divides and k_part % group_size:
        why.append(f"K_part {k_part} is not divisible by group size {group_size}")
    if grouped and kernel.full_k_divisible_by_group and k % group_size:
        why.append(f"K {k} is not divisible by group size {group_size}")
    return why


def _type_bits(weight_type: str) -> int:
    found = re.match(r"u?int(\d+)", weight_type)
    return int(found.group(1)) if found else 8


def weight_type_of(row: rules.SchemeRow, weights: QuantArgs) -> str | None:
    """The vLLM scalar type an INT weight scheme hands its kernel (uint4b8, uint4, int4, ...); None for float."""
    if weights.type != "int":
        return None
    bits = weights.num_bits
    if row.mixed_precision_weight_type == "signed":
        return f"int{bits}"
    return f"uint{bits}b{2 ** (bits - 1)}" if weights.symmetric else f"uint{bits}"


def layer_kernel_request(
    row: rules.SchemeRow,
    weights: QuantArgs,
    *,
    capability: int,
    k: int,
    k_part: int,
    n_part: int,
    runtime_dtype: str,
) -> KernelRequest:
    """How a mixed-precision scheme row describes one layer partition to `choose_mp_linear_kernel`."""
    weight_type = weight_type_of(row, weights)
    assert row.mixed_precision_weight_type is not None and weight_type is not None
    return KernelRequest(
        capability=capability,
        weight_type=weight_type,
        group_size=weights.kernel_group_size,
        k=k,
        k_part=k_part,
        n_part=n_part,
        activation_dtype=runtime_dtype if row.mixed_precision_activation == "model_dtype" else "float8_e4m3fn",
        output_dtype=runtime_dtype,
    )


def no_kernel_problem(choice: KernelChoice, prefix: str) -> str:
    """vLLM's "Failed to find a kernel" error for a layer (a `{layer}` placeholder), after the TP `prefix`."""
    return (
        f"{prefix}{{layer}}: {rules.ERROR_NO_KERNEL}. Reasons: {' | '.join(choice.rejections)}; re-enable"
        " a kernel (VLLM_DISABLED_KERNELS) or pick a kernel-friendly scheme (4 or 8 bit, group 32/64/128)"
    )


def fallback_reason(choice: KernelChoice) -> str | None:
    """Why a better kernel did not take the layer: the last refusal for the layer itself."""
    # Kernels refused for the activation dtype never serve this scheme; the others explain the fallback.
    relevant = [
        rejection
        for rejection in choice.rejections
        if "cannot implement" in rejection and "activation dtype" not in rejection
    ]
    return relevant[-1] if relevant else None


def kernel_notes(kernel_layers: Mapping[str, list[str]], kernel_why: Mapping[str, str]) -> list[str]:
    """Which kernel takes which layers when there are several, and the Humming caveat."""
    notes: list[str] = []
    if len(kernel_layers) > 1:
        parts = []
        for kernel in sorted(kernel_layers, key=ALL_KERNEL_ORDER.index):
            layers = kernel_layers[kernel]
            why = f": {kernel_why[kernel]}" if kernel in kernel_why else ""
            parts.append(f"{kernel} on {len(layers)} layer(s) (e.g. {layers[0]}{why})")
        notes.append("kernels per layer: " + ", ".join(parts))
    humming = kernel_layers.get(rules.HUMMING_KERNEL)
    if humming:
        notes.append(
            f"{rules.HUMMING_KERNEL} is the only kernel that takes {layer_phrase(humming)}: it ships with {VLLM}"
            " (humming-kernels) but is its least-tested path"
        )
    return notes


# --- the dtype the kernels see ------------------------------------------------------------------------------------


def model_dtype(config: Mapping[str, Any]) -> str:
    """The checkpoint's dtype as config.json names it (top level, then text_config)."""
    for source in (config, text_config(dict(config))):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str):
                name = value.lower().removeprefix("torch.")
                return rules.MODEL_DTYPE_ALIASES.get(name, name)
    return rules.DEFAULT_MODEL_DTYPE


def runtime_dtype(checkpoint_dtype: str, capability: int | None) -> str:
    """vLLM's dtype="auto": bfloat16 needs capability 80; float32 becomes the preferred 16-bit type.

    A CPU (capability None) prefers bfloat16 on x86 whatever its features, and keeps float16 checkpoints.
    """
    if capability is None:
        return checkpoint_dtype if checkpoint_dtype in ("bfloat16", "float16") else "bfloat16"
    preferred = "bfloat16" if capability >= rules.BFLOAT16_MIN_CAPABILITY else "float16"
    if checkpoint_dtype not in ("bfloat16", "float16"):
        return preferred
    if checkpoint_dtype == "bfloat16" and capability < rules.BFLOAT16_MIN_CAPABILITY:
        return "float16"
    return checkpoint_dtype
