"""§3 on a CPU: the kernel vLLM's CPU build picks for one layer partition, or why none fits.

Each scheme chooses from one list of `cpu_rules.CPU_KERNELS` (mixed precision for the INT weight schemes, scaled-mm
lists for INT8 and FP8); a kernel is refused for the CPU's features (`is_supported`) or for the layer
(`can_implement`), and the refusals read like the lines of vLLM's "Failed to find a kernel" error. A kernel whose
native op is missing from this CPU's library is still chosen: vLLM then fails on the first forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubpub.vllm import cpu_rules
from hubpub.vllm.config import ConfigGroup, QuantArgs
from hubpub.vllm.cpu_rules import CpuKernel, CpuPlatform, KernelFamily

CPU_KERNEL_ORDER = [kernel.name for kernels in cpu_rules.CPU_KERNELS.values() for kernel in kernels]


@dataclass(frozen=True)
class CpuKernelRequest:
    """One layer partition as a CPU scheme describes it to vLLM's kernel choice."""

    family: KernelFamily
    weight_type: str | None  # mixed precision: the vLLM scalar type (uint4b8, uint4, int4, ...)
    group_size: int  # -1 for channel-wise or no groups
    k: int
    k_part: int
    n_part: int
    weights_per_tensor: bool
    inputs_per_tensor: bool
    block: tuple[int, int] | None  # (block_n, block_k) of FP8 block weights
    output_dtype: str


@dataclass(frozen=True)
class CpuKernelChoice:
    kernel: str | None
    rejections: tuple[str, ...]
    runtime_failure: str | None = None  # the chosen kernel's op is missing from this CPU's native library


def cpu_kernel_request(
    scheme: str,
    group: ConfigGroup,
    weights: QuantArgs,
    *,
    weight_type: str | None,
    k: int,
    k_part: int,
    n_part: int,
    output_dtype: str,
) -> CpuKernelRequest:
    """How the scheme `scheme` describes one layer partition on a CPU."""
    family = cpu_rules.KERNEL_FAMILY_BY_SCHEME[scheme]
    if family == "fp8" and weights.block_structure:
        family = "fp8_block"
    inputs = group.input_activations
    return CpuKernelRequest(
        family=family,
        weight_type=weight_type,
        group_size=weights.kernel_group_size,
        k=k,
        k_part=k_part,
        n_part=n_part,
        weights_per_tensor=weights.strategy == "tensor",
        inputs_per_tensor=inputs is not None and inputs.strategy == "tensor" and not inputs.dynamic,
        block=weights.block_structure,
        output_dtype=output_dtype,
    )


def choose_cpu_kernel(request: CpuKernelRequest, platform: CpuPlatform) -> CpuKernelChoice:
    """Emulate vLLM's kernel choice on this CPU: the first candidate of the family whose conditions hold."""
    rejections: list[str] = []
    for kernel in cpu_rules.CPU_KERNELS[request.family]:
        why = _rejection(kernel, request, platform)
        if why is None:
            return CpuKernelChoice(kernel.name, tuple(rejections), _runtime_failure(kernel, platform))
        rejections.append(why)
    return CpuKernelChoice(None, tuple(rejections))


def no_cpu_kernel_problem(request: CpuKernelRequest, choice: CpuKernelChoice, prefix: str) -> str:
    """vLLM's "Failed to find a kernel" error for a layer (a `{layer}` placeholder) on a CPU."""
    reasons = " | ".join(choice.rejections) or "vLLM's CPU build has no kernel for this scheme"
    return f"{prefix}{{layer}}: {cpu_rules.NO_KERNEL_ERRORS[request.family]}. Reasons: {reasons}"


def _rejection(kernel: CpuKernel, request: CpuKernelRequest, platform: CpuPlatform) -> str | None:
    if not kernel.needs_features <= platform.features:
        return f"{kernel.name} {kernel.unsupported_reason}"
    why = [*_type_mismatches(kernel, request), *_shape_mismatches(kernel, request)]
    return f"{kernel.name} cannot implement due to: {'; '.join(why)}" if why else None


def _type_mismatches(kernel: CpuKernel, request: CpuKernelRequest) -> list[str]:
    why: list[str] = []
    if kernel.weight_types is not None and request.weight_type not in kernel.weight_types:
        why.append(f"quant type {request.weight_type} is not supported")
    if kernel.even_group_size and request.group_size != -1 and request.group_size % 2:
        why.append(f"group size {request.group_size} is not a multiple of 2")
    if kernel.output_dtypes is not None and request.output_dtype not in kernel.output_dtypes:
        why.append(f"output dtype {request.output_dtype} is not {'/'.join(sorted(kernel.output_dtypes))}")
    both = request.weights_per_tensor and request.inputs_per_tensor
    if kernel.scales == "both_per_tensor" and not both:
        why.append("it requires per tensor activation and weight scales")
    if kernel.scales == "not_both_per_tensor" and both:
        why.append("per-tensor activation and weight scales go to the per-tensor kernel")
    if kernel.scales == "per_tensor_weights_and_inputs" and not both:
        why.append("it requires a per-tensor weight scale and per-tensor static activations")
    return why


def _shape_mismatches(kernel: CpuKernel, request: CpuKernelRequest) -> list[str]:
    why: list[str] = []
    if kernel.k_part_multiple and request.k_part % kernel.k_part_multiple:
        why.append(f"input size {request.k_part} is not a multiple of {kernel.k_part_multiple}")
    if kernel.n_part_multiple and request.n_part % kernel.n_part_multiple:
        why.append(f"output size {request.n_part} is not a multiple of {kernel.n_part_multiple}")
    if kernel.full_k_divisible_by_group and request.group_size > 0 and request.k % request.group_size:
        why.append(f"group size {request.group_size} does not evenly divide the input features ({request.k})")
    if kernel.block_k is not None:
        block_n, block_k = request.block or (0, 0)
        if block_k != kernel.block_k:
            why.append(f"block K {block_k} is not {kernel.block_k}")
        if kernel.block_n_multiple and (block_n <= 0 or block_n % kernel.block_n_multiple):
            why.append(f"block N {block_n} is not a multiple of {kernel.block_n_multiple}")
    return why


def _runtime_failure(kernel: CpuKernel, platform: CpuPlatform) -> str | None:
    if kernel.runtime_op is None or kernel.runtime_op_features <= platform.features:
        return None
    missing = cpu_rules.MISSING_OP_ERROR.format(op=kernel.runtime_op)
    return (
        f"{{layer}}: {kernel.name} is chosen, but vLLM's {platform.native_library} library for this CPU has no"
        f" {kernel.runtime_op} op: the first forward pass fails with AttributeError: {missing}"
        f" (it needs {', '.join(sorted(kernel.runtime_op_features))})"
    )
