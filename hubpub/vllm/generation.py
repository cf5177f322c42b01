"""What vLLM does with the checkpoint's layers on one platform: §2 scheme, §4 tensors and shapes, §3 kernel.

A platform is a GPU generation or a class of CPU. Each quantized layer gets its scheme on the platform's
capability (CPUs report none), then its tensors, its shapes and every tensor-parallel partition are checked,
and the layer picks a kernel: on a GPU for mixed-precision schemes (`kernels`), on a CPU for every scheme
(`cpu_kernels`). `GenerationResult` collects what was used and what was refused; `hubpub.vllm.predict` turns
it into a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hubpub.vllm import rules
from hubpub.vllm.config import ConfigGroup, QuantArgs
from hubpub.vllm.cpu_kernels import choose_cpu_kernel, cpu_kernel_request, no_cpu_kernel_problem
from hubpub.vllm.cpu_rules import CpuPlatform
from hubpub.vllm.findings import Findings
from hubpub.vllm.kernels import (
    choose_mixed_precision_kernel,
    fallback_reason,
    kernel_notes,
    layer_kernel_request,
    no_kernel_problem,
    runtime_dtype,
    weight_type_of,
)
from hubpub.vllm.layers import Layer, Resolution
from hubpub.vllm.schemes import choose_scheme
from hubpub.vllm.shapes import (
    Partition,
    Shape,
    block_problems,
    partition,
    partition_group_problem,
    shape_problem,
    shard_shape,
    tensor_problems,
)


@dataclass(frozen=True)
class Setup:
    """What every generation is checked against, besides the layers: the deployment choices and the dtype."""

    tp_sizes: tuple[int, ...]
    disabled_kernels: frozenset[str]
    weight_shapes: Mapping[str, tuple[int, int]]
    model_dtype: str


Platform = rules.GpuGeneration | CpuPlatform


@dataclass
class GenerationResult:
    generation: Platform
    reasons: Findings = field(default_factory=Findings)
    notes: list[str] = field(default_factory=list)
    schemes: list[str] = field(default_factory=list)
    kernels_by_scheme: dict[str, list[str]] = field(default_factory=dict)
    kernel_layers: dict[str, list[str]] = field(default_factory=dict)
    kernel_why: dict[str, str] = field(default_factory=dict)
    formats_by_scheme: dict[str, set[str | None]] = field(default_factory=dict)

    def use_scheme(self, scheme: str, format_name: str | None) -> None:
        if scheme not in self.schemes:
            self.schemes.append(scheme)
        self.kernels_by_scheme.setdefault(scheme, [])
        self.formats_by_scheme.setdefault(scheme, set()).add(format_name)

    def use_kernel(self, scheme: str, kernel: str, layer: str, why_not_earlier: str | None) -> None:
        kernels = self.kernels_by_scheme.setdefault(scheme, [])
        if kernel not in kernels:
            kernels.append(kernel)
        layers = self.kernel_layers.setdefault(kernel, [])
        if not layers and why_not_earlier:
            self.kernel_why[kernel] = why_not_earlier
        if layer not in layers:
            layers.append(layer)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def check_generation(generation: Platform, resolutions: list[Resolution], setup: Setup) -> GenerationResult:
    result = GenerationResult(generation)
    capability = generation.capability
    dtype = runtime_dtype(setup.model_dtype, capability)
    if capability is not None and capability < rules.CONFIG_MIN_CAPABILITY:
        result.reasons.add(
            f"{rules.ERROR_MIN_CAPABILITY}: compressed-tensors needs capability {rules.CONFIG_MIN_CAPABILITY}"
        )
    for resolution in resolutions:
        match = resolution.match
        if match is None or not resolution.consistent or resolution.layer.role not in ("linear", "lm_head"):
            continue
        group = match.group
        if not group.usable or group.weights is None:
            continue
        _check_layer(result, resolution.layer, group, group.weights, setup, dtype)
    if result.kernels_by_scheme and dtype != setup.model_dtype:
        where = "on a CPU" if capability is None else f"on capability {capability}"
        result.note(
            f"dtype='auto' runs this {setup.model_dtype} checkpoint in {dtype} {where}"
            + (
                f" (bfloat16 needs capability {rules.BFLOAT16_MIN_CAPABILITY})"
                if setup.model_dtype == "bfloat16"
                else ""
            )
        )
    for note in kernel_notes(result.kernel_layers, result.kernel_why):
        result.note(note)
    return result


def _check_layer(
    result: GenerationResult, layer: Layer, group: ConfigGroup, weights: QuantArgs, setup: Setup, dtype: str
) -> None:
    choice = choose_scheme(group, result.generation.capability)
    for note in choice.notes:
        result.note(note)
    if choice.row is not None:
        result.use_scheme(choice.row.scheme, group.format)
    if choice.refusal is not None or choice.row is None:
        result.reasons.add(choice.refusal or rules.ERROR_NO_SCHEME, layer.name)
        return
    row = choice.row
    problems = [problem for shard in layer.shards for problem in tensor_problems(shard, row, group)]
    for problem in problems:
        result.reasons.add(problem, layer.name)
    if problems:
        return
    shapes = [shard_shape(shard, row, group, setup.weight_shapes) for shard in layer.shards]
    known = [shape for shape in shapes if shape is not None]
    if len(known) != len(shapes):
        return
    if not all(shape.exact for shape in known):
        result.note(
            f"K of {weights.num_bits}-bit packed layers is inferred from the packed"
            " width (no weight_shape values were read): divisibility checks are approximate"
        )
    whole_layer_problem = shape_problem(group, weights, row, known)
    if whole_layer_problem is not None:
        result.reasons.add(whole_layer_problem, layer.name)
        return
    for tp in setup.tp_sizes:
        split = partition(layer, known, tp)
        if isinstance(split, str):
            result.reasons.add(split, layer.name)
            continue
        _check_partition(result, layer, group, weights, row, known, split, setup, dtype)


def _check_partition(
    result: GenerationResult,
    layer: Layer,
    group: ConfigGroup,
    weights: QuantArgs,
    row: rules.SchemeRow,
    shapes: list[Shape],
    part: Partition,
    setup: Setup,
    dtype: str,
) -> None:
    group_problem = partition_group_problem(weights, row, part)
    if group_problem is not None:
        result.reasons.add(group_problem, layer.name)
        return
    for problem in block_problems(layer, weights, row, shapes, part):
        result.reasons.add(problem, layer.name)
    if isinstance(result.generation, CpuPlatform):
        _choose_cpu_kernel(result, result.generation, layer, group, weights, row, shapes[0].k, part, dtype)
        return
    if row.kernel_selection != "mixed_precision":
        return
    request = layer_kernel_request(
        row,
        weights,
        capability=result.generation.capability,
        k=shapes[0].k,
        k_part=part.k_part,
        n_part=part.n_part,
        runtime_dtype=dtype,
    )
    choice = choose_mixed_precision_kernel(request, disabled=setup.disabled_kernels)
    if choice.kernel is None:
        result.reasons.add(no_kernel_problem(choice, part.prefix), layer.name)
        return
    result.use_kernel(row.scheme, choice.kernel, layer.name, fallback_reason(choice))


def _choose_cpu_kernel(
    result: GenerationResult,
    platform: CpuPlatform,
    layer: Layer,
    group: ConfigGroup,
    weights: QuantArgs,
    row: rules.SchemeRow,
    k: int,
    part: Partition,
    dtype: str,
) -> None:
    request = cpu_kernel_request(
        row.scheme,
        group,
        weights,
        weight_type=weight_type_of(row, weights),
        k=k,
        k_part=part.k_part,
        n_part=part.n_part,
        output_dtype=dtype,
    )
    choice = choose_cpu_kernel(request, platform)
    if choice.kernel is None:
        result.reasons.add(no_cpu_kernel_problem(request, choice, part.prefix), layer.name)
        return
    if choice.runtime_failure is not None:
        result.reasons.add(part.prefix + choice.runtime_failure, layer.name)
    result.use_kernel(row.scheme, choice.kernel, layer.name, None)
