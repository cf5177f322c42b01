"""Predict, with no GPU and no vLLM, what vLLM does with a compressed-tensors checkpoint on each GPU generation.

The checker reads `config.json` and the safetensors headers only (names, dtypes, shapes) and applies the
tables of `hubpub.vllm_rules`: parse the quantization arguments as compressed-tensors would, map every layer
to its config group the way vLLM does (ignore, then name or `re:` targets, then class-name substrings),
walk vLLM's scheme rows for each GPU capability, check the tensors each scheme loads, and emulate the WNA16
kernel choice. vLLM's own smoke test is the judge; this is the prediction it is compared with.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hubpub import vllm_rules as rules
from hubpub.checkpoint import TensorInfo, read_config, read_tensors, text_config, ties_embeddings
from hubpub.errors import StageError, UsageError

_V = f"vLLM {rules.VLLM_VERSION}"
_SCHEME_ORDER = list(dict.fromkeys(row.scheme for row in rules.SCHEME_ROWS))
_KERNEL_ORDER = [kernel.name for kernel in rules.MIXED_PRECISION_KERNELS]
_MAX_SUMMARY_REASON = 160


@dataclass(frozen=True)
class GenerationVerdict:
    """What vLLM would do with the checkpoint on one GPU generation."""

    generation: str
    capability: int
    loads: bool
    schemes: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "capability": self.capability,
            "loads": self.loads,
            "schemes": list(self.schemes),
            "kernels": list(self.kernels),
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationVerdict:
        return cls(
            generation=str(data["generation"]),
            capability=int(data["capability"]),
            loads=bool(data["loads"]),
            schemes=tuple(data.get("schemes", ())),
            kernels=tuple(data.get("kernels", ())),
            reasons=tuple(data.get("reasons", ())),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class VllmPrediction:
    """The static prediction for every GPU generation of `hubpub.vllm_rules.GPU_GENERATIONS`."""

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
            return f"refused on every GPU generation ({first})"
        return (
            f"loads on {', '.join(loads)}; refused on {', '.join(verdict.generation for verdict in refused)} ({first})"
        )


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


def predict(
    config: Mapping[str, Any],
    tensors: Mapping[str, TensorInfo],
    *,
    tp_sizes: tuple[int, ...] = (1,),
    disabled_kernels: Iterable[str] = (),
    weight_shapes: Mapping[str, tuple[int, int]] | None = None,
) -> VllmPrediction:
    """Predict what vLLM does with this checkpoint on each GPU generation.

    `tensors` are the safetensors headers; `weight_shapes` optionally maps a module name to the (N, K) stored
    in its `weight_shape` tensor (headers carry no values, so without it K is derived from the packed width).
    `tp_sizes` are the tensor-parallel sizes to check splits for; `disabled_kernels` mirrors VLLM_DISABLED_KERNELS.
    """
    if not tp_sizes or any(size < 1 for size in tp_sizes):
        raise UsageError(f"tensor-parallel sizes must be positive integers, got {tp_sizes!r}")
    modules = _modules(tensors)
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
    checker = _Checker(
        config=config,
        quantization=quantization,
        tensors=tensors,
        modules=modules,
        tp_sizes=tuple(dict.fromkeys(tp_sizes)),
        disabled_kernels=frozenset(disabled_kernels),
        weight_shapes=dict(weight_shapes or {}),
    )
    return checker.run()


def predict_folder(
    folder: Path, *, tp_sizes: tuple[int, ...] = (1,), disabled_kernels: Iterable[str] = ()
) -> VllmPrediction:
    """`predict` over a checkpoint folder: config.json, the safetensors headers and the `weight_shape` values."""
    config = read_config(folder)
    tensors = read_tensors(folder)
    shapes = _read_weight_shapes(tensors)
    return predict(config, tensors, tp_sizes=tp_sizes, disabled_kernels=disabled_kernels, weight_shapes=shapes)


# --- reading ------------------------------------------------------------------------------------------------------


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


# --- quantization arguments -------------------------------------------------------------------------------------


class _QuantizationArgs(BaseModel):
    """Mirror of compressed-tensors 0.17 `QuantizationArgs` (extra="forbid"): the field set vLLM validates."""

    model_config = ConfigDict(extra="forbid")

    num_bits: int = 8
    type: Literal["int", "float"] = "int"
    symmetric: bool = True
    group_size: int | None = None
    strategy: str | None = None
    block_structure: list[int] | str | None = None
    dynamic: bool | Literal["local"] = False
    actorder: bool | str | None = None
    scale_dtype: str | None = None
    zp_dtype: str | None = None
    observer: str | None = None
    observer_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type", "strategy", "dynamic", "actorder", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class _Args:
    """Validated quantization arguments, with compressed-tensors' strategy inference applied."""

    type: str
    num_bits: int
    symmetric: bool
    strategy: str
    group_size: int | None
    block_structure: tuple[int, int] | None
    dynamic: bool | str
    actorder: str | None
    scale_dtype: str | None

    @property
    def kernel_group_size(self) -> int:
        return self.group_size if self.strategy == "group" and self.group_size else -1

    def describe(self) -> str:
        parts = [f"{self.type} {self.num_bits}-bit", self.strategy]
        if self.strategy in ("group", "tensor_group") and self.group_size:
            parts.append(f"group_size {self.group_size}")
        if self.block_structure:
            parts.append(f"block {self.block_structure[0]}x{self.block_structure[1]}")
        if not self.symmetric:
            parts.append("asymmetric")
        if self.dynamic:
            parts.append("dynamic" if self.dynamic is True else f"dynamic={self.dynamic}")
        return " ".join(parts)


def _parse_args(data: Any, where: str, *, weights: bool) -> tuple[_Args | None, list[str]]:
    """Parse like compressed-tensors 0.17 would inside vLLM; problems are worded for the user."""
    if not isinstance(data, Mapping):
        return None, [f"{where}: expected quantization arguments (a mapping), got {data!r}: {_V} cannot parse it"]
    try:
        model = _QuantizationArgs.model_validate(dict(data))
    except ValidationError as exc:
        return None, [_validation_problem(where, error) for error in exc.errors()]
    problems: list[str] = []
    actorder = "true" if model.actorder is True else None if model.actorder is False else model.actorder
    if weights and actorder in rules.REFUSED_ACTORDERS:
        problems.append(
            f"{where}.actorder is {data.get('actorder')!r}: {rules.ERROR_ACTORDER} in {_V} (it raises ValueError"
            " at config parse); re-quantize with actorder 'weight' or null"
        )
    strategy, strategy_problem = _infer_strategy(model)
    if strategy_problem:
        problems.append(f"{where}: {strategy_problem}; compressed-tensors rejects it, so {_V} cannot parse the config")
    block = _block_structure(model.block_structure)
    if isinstance(block, str):
        problems.append(f"{where}.block_structure: {block}")
        block = None
    scale_dtype = model.scale_dtype.removeprefix("torch.") if model.scale_dtype else None
    args = _Args(
        type=model.type,
        num_bits=model.num_bits,
        symmetric=model.symmetric,
        strategy=strategy,
        group_size=model.group_size,
        block_structure=block,
        dynamic=model.dynamic,
        actorder=actorder,
        scale_dtype=scale_dtype,
    )
    return args, problems


def _validation_problem(where: str, error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return (
            f"{where}: unknown key {location!r}: compressed-tensors {rules.COMPRESSED_TENSORS_VERSION} (vLLM's pin)"
            f' forbids extra fields ("{rules.ERROR_EXTRA_KEY}"), so {_V} cannot parse the config; remove the key'
        )
    return f"{where}.{location}: {error.get('msg', 'invalid value')}; {_V} cannot parse the config"


def _infer_strategy(model: _QuantizationArgs) -> tuple[str, str | None]:
    strategy, group_size = model.strategy, model.group_size
    if strategy is not None and strategy not in rules.QUANTIZATION_STRATEGIES:
        return strategy, f"strategy {strategy!r} is not one of {sorted(rules.QUANTIZATION_STRATEGIES)}"
    if group_size is not None and group_size < -1:
        return strategy or "group", f"group_size {group_size} is invalid (use > 0 for groups, -1 for channel)"
    if strategy is None:
        strategy = "tensor" if group_size is None else "group" if group_size > 0 else "channel"
    if strategy == "token" and not model.dynamic:
        return strategy, "strategy 'token' needs dynamic: true"
    if strategy in ("group", "tensor_group") and (group_size is None or group_size <= 0):
        return strategy, f"strategy {strategy!r} needs a positive group_size"
    if group_size is not None and group_size > 0 and strategy not in ("group", "tensor_group"):
        return strategy, f"group_size {group_size} needs strategy 'group'"
    if (strategy == "block") != (model.block_structure is not None):
        return strategy, "strategy 'block' and block_structure go together"
    if model.dynamic == "local" and strategy != "tensor_group":
        return strategy, "dynamic 'local' needs strategy 'tensor_group'"
    return strategy, None


def _block_structure(value: list[int] | str | None) -> tuple[int, int] | str | None:
    if value is None:
        return None
    try:
        sizes = [int(part) for part in value.split("x")] if isinstance(value, str) else list(value)
    except ValueError:
        sizes = []
    if len(sizes) != 2 or any(size <= 0 for size in sizes):
        return f"{value!r} is not [rows, columns] of positive integers"
    return sizes[0], sizes[1]


# --- config groups ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    name: str
    targets: tuple[str, ...]
    weights: _Args | None
    input_activations: _Args | None
    output_activations: _Args | None
    format: str | None
    usable: bool  # parsed cleanly: layers that map to it can be checked further

    @property
    def scheme_key(self) -> tuple[Any, ...]:
        return (self.weights, self.input_activations, self.output_activations, self.format)

    def describe(self) -> str:
        weights = self.weights.describe() if self.weights else "none"
        inputs = self.input_activations.describe() if self.input_activations else "none"
        text = f"weights {weights}; input activations {inputs}"
        if self.output_activations:
            text += f"; output activations {self.output_activations.describe()}"
        return f"{text}; format {self.format!r}"


@dataclass
class _ConfigReading:
    groups: list[_Group] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _read_groups(quantization: Mapping[str, Any]) -> _ConfigReading:
    reading = _ConfigReading()
    top_format = quantization.get("format")
    config_groups = quantization.get("config_groups") or {}
    if not isinstance(config_groups, Mapping):
        reading.problems.append(f"quantization_config.config_groups must be a mapping, got {config_groups!r}")
        return reading
    for name, entry in config_groups.items():
        where = f"quantization_config.config_groups.{name}"
        if not isinstance(entry, Mapping):
            reading.problems.append(f"{where} must be a mapping, got {entry!r}")
            continue
        unknown = sorted(set(entry) - rules.SCHEME_GROUP_KEYS)
        if unknown:
            reading.warnings.append(
                f"{where} has keys vLLM does not read: {', '.join(unknown)}"
                f" (it reads {', '.join(sorted(rules.SCHEME_GROUP_KEYS))})"
            )
        targets = entry.get("targets")
        if not isinstance(targets, list | tuple) or not all(isinstance(target, str) for target in targets):
            reading.problems.append(f"{where}.targets must be a list of names, got {targets!r}")
            continue
        if len(targets) == 1 and targets[0].endswith(rules.ATTENTION_TARGET_SUFFIX):
            reading.warnings.append(
                f"{where} only targets {targets[0]!r}: vLLM drops it, attention is quantized only through"
                " kv_cache_scheme"
            )
            continue
        group, problems = _read_group(str(name), entry, tuple(targets), top_format, where)
        reading.problems.extend(problems)
        reading.groups.append(group)
    return reading


def _read_group(
    name: str, entry: Mapping[str, Any], targets: tuple[str, ...], top_format: Any, where: str
) -> tuple[_Group, list[str]]:
    problems = [
        f"{where}.targets: {target!r} is not a valid regular expression ({error}); {_V} cannot match layers"
        for target, error in _regex_errors(targets)
    ]
    weights, weight_problems = _parse_args(entry.get("weights"), f"{where}.weights", weights=True)
    problems.extend(weight_problems)
    input_activations = output_activations = None
    if entry.get("input_activations"):
        input_activations, input_problems = _parse_args(
            entry["input_activations"], f"{where}.input_activations", weights=False
        )
        problems.extend(input_problems)
    if entry.get("output_activations"):
        output_activations, output_problems = _parse_args(
            entry["output_activations"], f"{where}.output_activations", weights=False
        )
        problems.extend(output_problems)
    group_format = entry.get("format")
    effective_format = group_format if isinstance(group_format, str) else top_format
    effective_format = effective_format if isinstance(effective_format, str) else None
    if (
        weights is not None
        and effective_format in rules.ACTIVATION_QUANTIZATION_FORMATS
        and not entry.get("input_activations")
        and weights.type != "float"
    ):
        problems.append(
            f"{where}: {weights.type} weight-only quantization saved as {effective_format!r} fails {_V}'s"
            " config assert (an activation-quantization format without input_activations must have float weights);"
            f" save integer weight-only checkpoints as {rules.PACK_QUANTIZED!r}"
        )
    group = _Group(
        name=name,
        targets=targets,
        weights=weights,
        input_activations=input_activations,
        output_activations=output_activations,
        format=effective_format,
        usable=weights is not None and not problems,
    )
    return group, problems


def _regex_errors(entries: Iterable[str]) -> list[tuple[str, str]]:
    errors = []
    for entry in entries:
        if entry.startswith(rules.REGEX_PREFIX):
            try:
                re.compile(entry.removeprefix(rules.REGEX_PREFIX))
            except re.error as exc:
                errors.append((entry, str(exc)))
    return errors


def _name_matches(entry: str, name: str) -> bool:
    if entry.startswith(rules.REGEX_PREFIX):
        try:
            return re.match(entry.removeprefix(rules.REGEX_PREFIX), name) is not None
        except re.error:
            return False
    return entry == name


# --- modules and vLLM layers --------------------------------------------------------------------------------------

_Role = Literal["linear", "lm_head", "embedding", "expert"]


@dataclass(frozen=True)
class _Module:
    name: str
    role: _Role
    tensors: Mapping[str, TensorInfo]  # by suffix: weight, weight_packed, weight_scale, ...

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2]

    @property
    def quantized(self) -> bool:
        return any(suffix in rules.QUANTIZED_TENSOR_SUFFIXES for suffix in self.tensors)

    def quantized_tensor(self) -> str:
        suffix = next(suffix for suffix in sorted(self.tensors) if suffix in rules.QUANTIZED_TENSOR_SUFFIXES)
        return f"{self.name}.{suffix}"

    def stored_weight(self) -> str:
        for suffix in ("weight_packed", "weight"):
            if suffix in self.tensors:
                return f"{suffix} ({self.tensors[suffix].dtype})"
        return "no weight"


def _modules(tensors: Mapping[str, TensorInfo]) -> dict[str, _Module]:
    by_module: dict[str, dict[str, TensorInfo]] = {}
    for name, info in tensors.items():
        module, _, suffix = name.rpartition(".")
        if module:
            by_module.setdefault(module, {})[suffix] = info
    modules: dict[str, _Module] = {}
    for name, module_tensors in sorted(by_module.items()):
        weight = module_tensors.get("weight")
        has_matrix = "weight_packed" in module_tensors or (weight is not None and len(weight.shape) == 2)
        parts = name.split(".")
        if not has_matrix or parts[-1] in rules.NOT_LINEAR_MODULES:
            continue
        role: _Role = "linear"
        if parts[-1] in rules.LM_HEAD_MODULES:
            role = "lm_head"
        elif parts[-1] in rules.EMBEDDING_MODULES:
            role = "embedding"
        elif rules.EXPERTS_PART in parts[:-1]:
            role = "expert"
        modules[name] = _Module(name, role, module_tensors)
    return modules


@dataclass(frozen=True)
class _Layer:
    """One vLLM layer: a single HF module, or the HF shards vLLM fuses (q/k/v, gate/up)."""

    name: str
    shards: tuple[_Module, ...]
    vllm_class: str
    row_parallel: bool

    @property
    def role(self) -> _Role:
        return self.shards[0].role


def _layers(modules: Mapping[str, _Module]) -> list[_Layer]:
    layers: list[_Layer] = []
    fused_members: set[str] = set()
    for module in modules.values():
        if module.role != "linear":
            continue
        parent = module.name.rpartition(".")[0]
        for fused, shard_names in rules.FUSED_LAYERS.items():
            if module.short != shard_names[0]:
                continue
            shards = [modules.get(f"{parent}.{shard}") for shard in shard_names]
            if all(shard is not None and shard.role == "linear" for shard in shards):
                present = tuple(shard for shard in shards if shard is not None)
                fused_members.update(shard.name for shard in present)
                role_class = "qkv" if fused == "qkv_proj" else "gate_up"
                name = f"{parent}.{fused}" if parent else fused
                layers.append(_Layer(name, present, rules.VLLM_LAYER_CLASSES[role_class], row_parallel=False))
    for module in modules.values():
        if module.name in fused_members or module.role == "expert":
            continue
        if module.role == "linear":
            row_parallel = module.short in rules.ROW_PARALLEL_MODULES
            layer_class = rules.VLLM_LAYER_CLASSES["row" if row_parallel else "column"]
            layers.append(_Layer(module.name, (module,), layer_class, row_parallel))
        else:
            layers.append(_Layer(module.name, (module,), rules.VLLM_LAYER_CLASSES[module.role], row_parallel=False))
    return sorted(layers, key=lambda layer: _natural_key(layer.name))


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class _Match:
    group: _Group
    target: str
    by: Literal["name", "class"]


def _match_target(name: str, layer_class: str, groups: Iterable[_Group]) -> _Match | None:
    """vLLM's order: exact name or `re:` regex over all targets first, then class-name substring."""
    candidates = list(groups)
    for group in candidates:
        for target in group.targets:
            if _name_matches(target, name):
                return _Match(group, target, "name")
    for group in candidates:
        for target in group.targets:
            if not target.startswith(rules.REGEX_PREFIX) and target.lower() in layer_class.lower():
                return _Match(group, target, "class")
    return None


@dataclass(frozen=True)
class _Resolution:
    """How vLLM sees one layer: the matched group, or None when it is ignored or no target matches."""

    layer: _Layer
    match: _Match | None
    consistent: bool  # shards agree and the checkpoint holds what vLLM expects


# --- findings -----------------------------------------------------------------------------------------------------


class _Findings:
    """Messages in first-seen order; a `{layer}` placeholder collects the layers that share the message."""

    def __init__(self) -> None:
        self._layers: dict[str, list[str]] = {}

    def add(self, message: str, layer: str | None = None) -> None:
        layers = self._layers.setdefault(message, [])
        if layer is not None and layer not in layers:
            layers.append(layer)

    def extend(self, other: _Findings) -> None:
        for message, layers in other._layers.items():
            self.add(message)
            for layer in layers:
                self.add(message, layer)

    def render(self) -> list[str]:
        return [message.replace("{layer}", _layer_phrase(layers)) for message, layers in self._layers.items()]


def _layer_phrase(layers: list[str]) -> str:
    if not layers:
        return "a layer"
    more = len(layers) - 1
    return layers[0] if not more else f"{layers[0]} (and {more} more layer{'s' if more > 1 else ''})"


# --- scheme choice --------------------------------------------------------------------------------------------------


def _fits(pattern: rules.ArgsPattern, args: _Args) -> bool:
    return (
        (pattern.type is None or args.type == pattern.type)
        and (pattern.num_bits is None or args.num_bits in pattern.num_bits)
        and (pattern.strategies is None or args.strategy in pattern.strategies)
        and (pattern.group_size is None or args.group_size == pattern.group_size)
        and (pattern.symmetric is None or args.symmetric == pattern.symmetric)
        and (pattern.dynamic is None or bool(args.dynamic) == pattern.dynamic)
        and (pattern.scale_dtype is None or args.scale_dtype == pattern.scale_dtype)
    )


def _activation_fits(rule: rules.ActivationRule, args: _Args | None) -> bool:
    if rule.presence in ("ignored", "optional"):
        return True
    if rule.presence == "absent":
        return args is None
    return args is not None and any(_fits(pattern, args) for pattern in rule.patterns)


def _row_fits(
    row: rules.SchemeRow, group: _Group, capability: int, *, check_format: bool = True, check_capability: bool = True
) -> bool:
    if group.weights is None:
        return False
    if check_capability and row.exact_capability is not None and capability != row.exact_capability:
        return False
    if check_format and row.formats is not None and group.format not in row.formats:
        return False
    return (
        _fits(row.weights, group.weights)
        and _activation_fits(row.input_activations, group.input_activations)
        and _activation_fits(row.output_activations, group.output_activations)
    )


def _row_named(scheme: str) -> rules.SchemeRow:
    return next(row for row in rules.SCHEME_ROWS if row.scheme == scheme)


@dataclass(frozen=True)
class _Choice:
    row: rules.SchemeRow | None  # the row whose tensors vLLM loads (after a silent fallback)
    refusal: str | None
    notes: tuple[str, ...] = ()


def _choose_scheme(group: _Group, capability: int) -> _Choice:
    for row in rules.SCHEME_ROWS:
        if not _row_fits(row, group, capability):
            continue
        inputs = group.input_activations
        if (
            row.mismatched_input_error
            and inputs is not None
            and not any(_fits(pattern, inputs) for pattern in row.input_activations.patterns)
        ):
            return _Choice(
                row,
                f"{{layer}}: ValueError in {row.scheme}: {row.mismatched_input_error}; config group"
                f" {group.name!r} has input activations {inputs.describe()}",
            )
        notes: list[str] = []
        chosen = row
        if capability < row.min_capability and row.below_min_capability_becomes:
            chosen = _row_named(row.below_min_capability_becomes)
            if row.below_min_capability_note:
                notes.append(row.below_min_capability_note)
        if capability < chosen.min_capability:
            return _Choice(
                chosen,
                f"{{layer}}: {rules.ERROR_MIN_CAPABILITY}. Min capability: {chosen.min_capability}. Current"
                f" capability: {capability}. ({chosen.scheme}, {chosen.label}: use a newer GPU or another scheme)",
                tuple(notes),
            )
        if row.native_capability is not None and capability < row.native_capability and row.below_native_note:
            notes.append(row.below_native_note)
        if row.note:
            notes.append(f"{row.scheme}: {row.note}")
        if row.humming_only:
            notes.append(
                f"{row.scheme} runs only on the Humming kernels (the humming-kernels package {_V} depends on):"
                " the least-tested path"
            )
        return _Choice(chosen, None, tuple(notes))
    return _Choice(None, _no_scheme_message(group, capability))


def _no_scheme_message(group: _Group, capability: int) -> str:
    hints: list[str] = []
    if group.format == rules.MIXED_PRECISION_FORMAT:
        hints.append("the top-level format is mixed-precision, so every config group needs its own format")
    for row in rules.SCHEME_ROWS:
        if _row_fits(row, group, capability, check_format=False) and row.formats is not None:
            wanted = " or ".join(repr(name) for name in sorted(row.formats))
            hints.append(f"{row.label} ({row.scheme}) needs format {wanted}: re-save with that quantization_format")
            break
        if _row_fits(row, group, capability, check_capability=False) and row.exact_capability is not None:
            hints.append(f"{row.label} ({row.scheme}) runs only on capability {row.exact_capability} (Hopper)")
            break
    if not hints:
        hints.append("re-quantize with a scheme vLLM supports (W4A16/W8A16 pack-quantized, W8A8 INT8, FP8, NVFP4)")
    return (
        f"{rules.ERROR_NO_SCHEME} for layer_name={{layer}}: config group"
        f" {group.name!r} ({group.describe()}) fits no {_V} scheme; {'; '.join(hints)}"
    )


# --- per-layer tensor checks ----------------------------------------------------------------------------------------


def _weight_layout(row: rules.SchemeRow, group: _Group) -> tuple[str, str, int]:
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


def _tensor_condition(condition: rules.TensorCondition, group: _Group) -> bool:
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


def _tensor_problems(module: _Module, row: rules.SchemeRow, group: _Group) -> list[str]:
    suffix, dtype, _ = _weight_layout(row, group)
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


@dataclass(frozen=True)
class _Shape:
    n: int
    k: int
    exact: bool
    scale_columns: int | None
    packed_columns: int | None = None  # int32 columns, when K came from the stored weight_shape


def _shard_shape(
    module: _Module, row: rules.SchemeRow, group: _Group, weight_shapes: Mapping[str, tuple[int, int]]
) -> _Shape | None:
    suffix, _, per_element = _weight_layout(row, group)
    stored = module.tensors.get(suffix)
    if stored is None or len(stored.shape) != 2:
        return None
    scale = module.tensors.get("weight_scale")
    scale_columns = scale.shape[-1] if scale is not None and len(scale.shape) == 2 else None
    if suffix == "weight_packed" and module.name in weight_shapes and row.weight_layout != "packed_fp4":
        n, k = weight_shapes[module.name]
        return _Shape(n, k, True, scale_columns, packed_columns=stored.shape[1])
    if suffix == "weight_packed" and row.weight_layout != "packed_fp4":
        bits = group.weights.num_bits if group.weights else 4
        return _Shape(stored.shape[0], stored.shape[1] * 32 // bits, per_element > 0, scale_columns)
    return _Shape(stored.shape[0], stored.shape[1] * per_element, True, scale_columns)


# --- kernels --------------------------------------------------------------------------------------------------------


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
    why = _cannot_implement(kernel, request)
    return f"{kernel.name} cannot implement due to: {'; '.join(why)}" if why else None


def _cannot_implement(kernel: rules.MixedPrecisionKernel, request: KernelRequest) -> list[str]:
    why: list[str] = []
    group_size, k, k_part, n_part = request.group_size, request.k, request.k_part, request.n_part
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
        and not (kernel.group_size_may_equal_k and group_size == k)
    ):
        why.append(f"group size {group_size} is not supported")
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


def _weight_type(kind: rules.MixedPrecisionWeightType, weights: _Args) -> str:
    bits = weights.num_bits
    if kind == "signed":
        return f"int{bits}"
    return f"uint{bits}b{2 ** (bits - 1)}" if weights.symmetric else f"uint{bits}"


def _model_dtype(config: Mapping[str, Any]) -> str:
    for source in (config, text_config(dict(config))):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str):
                name = value.lower().removeprefix("torch.")
                return rules.MODEL_DTYPE_ALIASES.get(name, name)
    return rules.DEFAULT_MODEL_DTYPE


def _runtime_dtype(model_dtype: str, capability: int) -> str:
    """vLLM's dtype="auto": bfloat16 needs capability 80; float32 becomes the preferred 16-bit type."""
    preferred = "bfloat16" if capability >= rules.BFLOAT16_MIN_CAPABILITY else "float16"
    if model_dtype not in ("bfloat16", "float16"):
        return preferred
    if model_dtype == "bfloat16" and capability < rules.BFLOAT16_MIN_CAPABILITY:
        return "float16"
    return model_dtype


# --- the checker ----------------------------------------------------------------------------------------------------


@dataclass
class _GenerationResult:
    generation: rules.GpuGeneration
    reasons: _Findings = field(default_factory=_Findings)
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


class _Checker:
    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        quantization: Mapping[str, Any],
        tensors: Mapping[str, TensorInfo],
        modules: dict[str, _Module],
        tp_sizes: tuple[int, ...],
        disabled_kernels: frozenset[str],
        weight_shapes: dict[str, tuple[int, int]],
    ) -> None:
        self.config = config
        self.quantization = quantization
        self.tensors = tensors
        self.modules = modules
        self.tp_sizes = tp_sizes
        self.disabled_kernels = disabled_kernels
        self.weight_shapes = weight_shapes
        self.problems: list[str] = []
        self.layer_problems = _Findings()
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.model_dtype = _model_dtype(config)
        ignore = quantization.get("ignore") or []
        self.ignore = [entry for entry in ignore if isinstance(entry, str)] if isinstance(ignore, list) else []

    def run(self) -> VllmPrediction:
        reading = _read_groups(self.quantization)
        self.problems.extend(reading.problems)
        self.warnings.extend(reading.warnings)
        self._check_config_level()
        resolutions = [self._resolve(layer, reading.groups) for layer in _layers(self.modules)]
        self._check_experts(reading.groups)
        self._check_embeddings(resolutions)
        results = [self._generation(generation, resolutions) for generation in rules.GPU_GENERATIONS]
        return self._prediction(results)

    # config-level rules: the same refusal on every GPU

    def _check_config_level(self) -> None:
        sparsity = self.quantization.get("sparsity_config")
        if isinstance(sparsity, Mapping) and sparsity and sparsity.get("targets", True):
            self.problems.append(
                f"quantization_config.sparsity_config is set: {rules.ERROR_SPARSITY} in {_V} (2:4 sparse,"
                " sparse-24-bitmask and marlin-24 checkpoints do not load); re-quantize without sparsity"
            )
        self.problems.extend(
            f"quantization_config.ignore: {entry!r} is not a valid regular expression ({error}); {_V} cannot match"
            " layers against it"
            for entry, error in _regex_errors(self.ignore)
        )
        g_idx = sorted(name for name in self.tensors if name.endswith(f".{rules.G_IDX_SUFFIX}"))
        if g_idx:
            self.problems.append(
                f"the checkpoint has {len(g_idx)} g_idx tensor(s) (e.g. {g_idx[0]}): {rules.ERROR_ACTORDER} in {_V};"
                " re-quantize with actorder 'weight' or null"
            )
        kv_cache = self.quantization.get("kv_cache_scheme")
        if kv_cache:
            args, problems = _parse_args(kv_cache, "quantization_config.kv_cache_scheme", weights=False)
            self.problems.extend(problems)
            if args is not None and not _fits(rules.KV_CACHE_SCHEME, args):
                self.problems.append(
                    f"quantization_config.kv_cache_scheme is {args.describe()}: {rules.ERROR_KV_CACHE}, symmetric,"
                    f" strategy tensor or attn_head ({_V} raises NotImplementedError); calibrate an FP8 KV cache"
                    " or drop kv_cache_scheme"
                )
        if ties_embeddings(dict(self.config)):
            quantized = [
                module.quantized_tensor()
                for module in self.modules.values()
                if module.role in ("lm_head", "embedding") and module.quantized
            ]
            if quantized:
                self.problems.append(
                    f"tie_word_embeddings is true but the checkpoint has quantized {', '.join(quantized)}: vLLM ties"
                    " lm_head to the embedding, whose quantized form is lookup-only; add lm_head and the embeddings"
                    " to ignore, or untie them and set tie_word_embeddings to false"
                )

    # layer → group, as vLLM maps it

    def _resolve(self, layer: _Layer, groups: list[_Group]) -> _Resolution:
        ignored = [any(_name_matches(entry, shard.name) for entry in self.ignore) for shard in layer.shards]
        matches = [_match_target(shard.name, layer.vllm_class, groups) for shard in layer.shards]
        consistent = True
        if len(set(ignored)) > 1:
            consistent = False
            self.layer_problems.add(
                f"{{layer}}: {rules.ERROR_FUSED_SHARDS}: {_shard_list(layer, ignored, True)} in ignore, "
                f"{_shard_list(layer, ignored, False)} not; vLLM requires all to use the same scheme, so ignore all"
                " of them or none",
                layer.name,
            )
        elif not ignored[0] and len({None if match is None else match.group.scheme_key for match in matches}) > 1:
            consistent = False
            described = ", ".join(
                f"{shard.short}: {match.group.name if match else 'no group'}"
                for shard, match in zip(layer.shards, matches, strict=True)
            )
            self.layer_problems.add(
                f"{{layer}}: {rules.ERROR_FUSED_SHARDS} ({described}); vLLM requires all to use the same scheme",
                layer.name,
            )
        match = None if ignored[0] else matches[0]
        if consistent:
            if layer.role == "lm_head":
                consistent = self._check_lm_head(layer, match, ignored[0])
            else:
                consistent = self._check_storage(layer, match, ignored[0])
        return _Resolution(layer, match, consistent)

    def _check_storage(self, layer: _Layer, match: _Match | None, ignored: bool) -> bool:
        """Whether the checkpoint stores the layer the way vLLM will load it (quantized or not)."""
        stored = [shard.quantized for shard in layer.shards]
        if match is not None and not match.group.usable:
            return False  # the group's own problem is reported; nothing more is known about this layer
        if match is not None and match.group.weights is not None:
            if all(stored):
                return True
            shard = layer.shards[stored.index(False)]
            self.layer_problems.add(
                f"{{layer}}: vLLM quantizes it (config group {match.group.name!r}, target {match.target!r}) but"
                f" the checkpoint stores {shard.stored_weight()}; add it to ignore or quantize it",
                layer.name,
            )
            return False
        if any(stored):
            why = "it is listed in ignore" if ignored else "no config group targets it"
            self.layer_problems.add(
                f"{{layer}}: the checkpoint has quantized tensors but vLLM loads it unquantized ({why}); make the"
                " config's ignore list and targets describe what was quantized",
                layer.name,
            )
            return False
        return True

    def _check_lm_head(self, layer: _Layer, match: _Match | None, ignored: bool) -> bool:
        """vLLM quantizes lm_head only when a target names it: its ParallelLMHead is no `Linear`."""
        module = layer.shards[0]
        if match is not None and match.group.weights is not None and module.quantized:
            self.warnings.append(
                f"{layer.name} is quantized (targeted by name through {match.target!r}): {_V} supports it through"
                " the linear path, but it is the least-tested one; prefer ignore: ['lm_head']"
            )
            return True
        class_target = next(
            (
                target
                for targets in _groups_of(self.quantization)
                for target in targets
                if not target.startswith(rules.REGEX_PREFIX) and target.lower() in rules.HF_LINEAR_CLASS.lower()
            ),
            None,
        )
        if match is None and module.quantized and class_target is not None and not ignored:
            self.warnings.append(
                f"{layer.name} has quantized tensors ({module.quantized_tensor()}) only through the class target"
                f" {class_target!r}: vLLM's ParallelLMHead is not a Linear, so it expects an unquantized lm_head and"
                " loading fails or the output is garbage; add lm_head to ignore, or target it by name"
            )
            return False
        return self._check_storage(layer, match, ignored)

    def _check_experts(self, groups: list[_Group]) -> None:
        """vLLM's MoE methods need one scheme for every expert of a layer; their kernels are not predicted."""
        experts: dict[str, set[Any]] = {}
        for module in self.modules.values():
            if module.role != "expert":
                continue
            parts = module.name.split(".")
            owner = ".".join(parts[: parts.index(rules.EXPERTS_PART) + 1])
            ignored = any(_name_matches(entry, module.name) for entry in self.ignore)
            match = None if ignored else _match_target(module.name, rules.VLLM_LAYER_CLASSES["expert"], groups)
            experts.setdefault(owner, set()).add(None if match is None else match.group.scheme_key)
        for owner, keys in experts.items():
            if len(keys) > 1:
                self.layer_problems.add(
                    "{layer}: the MoE experts do not share one quantization scheme; vLLM requires every expert of a"
                    " layer to use the same scheme dict (ValueError)",
                    owner,
                )
        if experts:
            self.notes.append(
                f"{len(experts)} MoE expert block(s) were only checked for one shared scheme: vLLM's MoE methods and"
                " kernels are not predicted here"
            )

    def _check_embeddings(self, resolutions: list[_Resolution]) -> None:
        """A quantized embedding is lookup-only and accepted only in the WNA16 shape."""
        for resolution in resolutions:
            layer, match = resolution.layer, resolution.match
            if layer.role != "embedding" or not resolution.consistent or match is None:
                continue
            group = match.group
            if group.weights is None or not group.usable:
                continue
            wna16_style = (
                _fits(rules.EMBEDDING_WEIGHTS, group.weights)
                and group.input_activations is None
                and group.format == rules.EMBEDDING_FORMAT
            )
            if not wna16_style:
                self.layer_problems.add(
                    f"{{layer}}: a quantized embedding must be INT weight-only (channel or group, 2-8 bit,"
                    f" {rules.EMBEDDING_FORMAT}); config group {group.name!r} ({group.describe()}) makes {_V}"
                    " raise ValueError; add the embedding to ignore",
                    layer.name,
                )
                continue
            for problem in _tensor_problems(layer.shards[0], _row_named("CompressedTensorsWNA16"), group):
                self.layer_problems.add(problem, layer.name)
            self.notes.append(
                f"{layer.name} is quantized: {_V} uses it for lookup only (it cannot act as a tied lm_head)"
            )

    # one GPU generation

    def _generation(self, generation: rules.GpuGeneration, resolutions: list[_Resolution]) -> _GenerationResult:
        result = _GenerationResult(generation)
        capability = generation.capability
        runtime_dtype = _runtime_dtype(self.model_dtype, capability)
        if capability < rules.CONFIG_MIN_CAPABILITY:
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
            self._check_layer(result, resolution.layer, group, runtime_dtype)
        if result.kernels_by_scheme and runtime_dtype != self.model_dtype:
            result.note(
                f"dtype='auto' runs this {self.model_dtype} checkpoint in {runtime_dtype} on capability {capability}"
                + (
                    f" (bfloat16 needs capability {rules.BFLOAT16_MIN_CAPABILITY})"
                    if self.model_dtype == "bfloat16"
                    else ""
                )
            )
        self._kernel_notes(result)
        return result

    def _check_layer(self, result: _GenerationResult, layer: _Layer, group: _Group, runtime_dtype: str) -> None:
        capability = result.generation.capability
        choice = _choose_scheme(group, capability)
        for note in choice.notes:
            result.note(note)
        if choice.row is not None:
            result.use_scheme(choice.row.scheme, group.format)
        if choice.refusal is not None or choice.row is None:
            result.reasons.add(choice.refusal or rules.ERROR_NO_SCHEME, layer.name)
            return
        row = choice.row
        problems = [problem for shard in layer.shards for problem in _tensor_problems(shard, row, group)]
        for problem in problems:
            result.reasons.add(problem, layer.name)
        if problems:
            return
        shapes = [_shard_shape(shard, row, group, self.weight_shapes) for shard in layer.shards]
        known = [shape for shape in shapes if shape is not None]
        if len(known) != len(shapes):
            return
        if not all(shape.exact for shape in known):
            result.note(
                f"K of {group.weights.num_bits if group.weights else '?'}-bit packed layers is inferred from the packed"
                " width (no weight_shape values were read): divisibility checks are approximate"
            )
        self._check_shapes(result, layer, group, row, known, runtime_dtype)

    def _check_shapes(
        self,
        result: _GenerationResult,
        layer: _Layer,
        group: _Group,
        row: rules.SchemeRow,
        shapes: list[_Shape],
        runtime_dtype: str,
    ) -> None:
        weights = group.weights
        assert weights is not None
        k = shapes[0].k
        n_total = sum(shape.n for shape in shapes)
        group_size = weights.group_size if weights.strategy == "group" and weights.group_size else None
        if group_size and k % group_size and row.checks_group_divisibility:
            columns = shapes[0].scale_columns
            flag = (
                f" (its weight_scale has ceil({k}/{group_size}) = {columns} columns: compressed-tensors let the"
                " indivisible shape through)"
                if columns == math.ceil(k / group_size)
                else ""
            )
            result.reasons.add(
                f"{{layer}}: Weight input_size_per_partition={k} {rules.ERROR_GROUP_DIVISIBILITY}={group_size}{flag};"
                " add it to ignore or use a group size that divides it",
                layer.name,
            )
            return
        bits = weights.num_bits
        for shape in shapes:
            wanted_columns = math.ceil(shape.k * bits / 32)
            if shape.packed_columns is not None and shape.packed_columns != wanted_columns:
                result.reasons.add(
                    f"{{layer}}: weight_packed has {shape.packed_columns} int32 columns where {_V} packs {shape.k}"
                    f" {bits}-bit values densely into {wanted_columns} (a padded layout from compressed-tensors"
                    " 0.17 or older); re-save with compressed-tensors 0.18 or newer",
                    layer.name,
                )
                return
            allowed = (None, shape.k // group_size, math.ceil(shape.k / group_size)) if group_size else (None,)
            if group_size and shape.exact and shape.scale_columns not in allowed:
                result.reasons.add(
                    f"{{layer}}: its weight_scale has {shape.scale_columns} columns where {shape.k}/{group_size}"
                    f" needs {shape.k // group_size}; the checkpoint does not match config group {group.name!r}",
                    layer.name,
                )
                return
        if row.k_multiple and k % row.k_multiple:
            result.reasons.add(
                f"{{layer}}: in_features {k} is not a multiple of {row.k_multiple}, which {row.scheme} needs;"
                " add it to ignore",
                layer.name,
            )
            return
        if row.static_input_needs_non_block and weights.strategy == "block":
            inputs = group.input_activations
            if inputs is not None and not inputs.dynamic:
                result.reasons.add(
                    "{layer}: block-quantized FP8 weights need dynamic input activations (vLLM asserts it);"
                    " re-quantize with dynamic per-token or group-128 activations",
                    layer.name,
                )
                return
        for tp in self.tp_sizes:
            split = self._split(result, layer, k, n_total, [shape.n for shape in shapes], tp)
            if split is None:
                continue
            k_part, n_part = split
            prefix = f"at tensor_parallel_size={tp}: " if tp > 1 else ""
            if group_size and row.checks_group_divisibility and k_part % group_size:
                result.reasons.add(
                    f"{prefix}{{layer}}: Weight input_size_per_partition={k_part}"
                    f" {rules.ERROR_GROUP_DIVISIBILITY}={group_size}; add it to ignore or use a group size that"
                    f" divides {k_part}",
                    layer.name,
                )
                continue
            if row.block_shape_checks and weights.block_structure:
                self._check_blocks(result, layer, weights.block_structure, shapes, k_part, tp, prefix)
            if row.kernel_selection == "mixed_precision":
                self._choose_kernel(result, layer, row, weights, k, k_part, n_part, runtime_dtype, prefix)

    def _split(
        self, result: _GenerationResult, layer: _Layer, k: int, n_total: int, shard_ns: list[int], tp: int
    ) -> tuple[int, int] | None:
        if tp == 1:
            return k, n_total
        if layer.row_parallel:
            if k % tp:
                result.reasons.add(
                    f"at tensor_parallel_size={tp}: {{layer}}: in_features {k} is not divisible by {tp}", layer.name
                )
                return None
            return k // tp, n_total
        if any(n % tp for n in shard_ns):
            result.reasons.add(
                f"at tensor_parallel_size={tp}: {{layer}}: out_features {'/'.join(map(str, shard_ns))} are not"
                f" divisible by {tp}",
                layer.name,
            )
            return None
        return k, n_total // tp

    def _check_blocks(
        self,
        result: _GenerationResult,
        layer: _Layer,
        block: tuple[int, int],
        shapes: list[_Shape],
        k_part: int,
        tp: int,
        prefix: str,
    ) -> None:
        block_n, block_k = block
        # Worded like vLLM's FP8 block-shape validation (from memory of older releases, not the research notes).
        if tp > 1 and layer.row_parallel and k_part % block_k:
            result.reasons.add(
                f"{prefix}{{layer}}: Weight input_size_per_partition = {k_part} is not divisible by weight"
                f" quantization block_k = {block_k}.",
                layer.name,
            )
        split_n = tp > 1 and not layer.row_parallel
        checked = shapes if split_n else shapes[:-1]
        for shape in checked:
            n = shape.n // tp if split_n else shape.n
            if n % block_n:
                result.reasons.add(
                    f"{prefix}{{layer}}: Weight output_partition_size = {n} is not divisible by weight quantization"
                    f" block_n = {block_n}.",
                    layer.name,
                )
                return

    def _choose_kernel(
        self,
        result: _GenerationResult,
        layer: _Layer,
        row: rules.SchemeRow,
        weights: _Args,
        k: int,
        k_part: int,
        n_part: int,
        runtime_dtype: str,
        prefix: str,
    ) -> None:
        assert row.mixed_precision_weight_type is not None
        request = KernelRequest(
            capability=result.generation.capability,
            weight_type=_weight_type(row.mixed_precision_weight_type, weights),
            group_size=weights.kernel_group_size,
            k=k,
            k_part=k_part,
            n_part=n_part,
            activation_dtype=runtime_dtype if row.mixed_precision_activation == "model_dtype" else "float8_e4m3fn",
            output_dtype=runtime_dtype,
        )
        choice = choose_mixed_precision_kernel(request, disabled=self.disabled_kernels)
        if choice.kernel is None:
            result.reasons.add(
                f"{prefix}{{layer}}: {rules.ERROR_NO_KERNEL}. Reasons: {' | '.join(choice.rejections)}; re-enable"
                " a kernel (VLLM_DISABLED_KERNELS) or pick a kernel-friendly scheme (4 or 8 bit, group 32/64/128)",
                layer.name,
            )
            return
        # Kernels refused for the activation dtype never serve this scheme; the others explain the fallback.
        relevant = [
            rejection
            for rejection in choice.rejections
            if "cannot implement" in rejection and "activation dtype" not in rejection
        ]
        result.use_kernel(row.scheme, choice.kernel, layer.name, relevant[-1] if relevant else None)

    def _kernel_notes(self, result: _GenerationResult) -> None:
        if len(result.kernel_layers) > 1:
            parts = []
            for kernel in sorted(result.kernel_layers, key=_KERNEL_ORDER.index):
                layers = result.kernel_layers[kernel]
                why = f": {result.kernel_why[kernel]}" if kernel in result.kernel_why else ""
                parts.append(f"{kernel} on {len(layers)} layer(s) (e.g. {layers[0]}{why})")
            result.note("kernels per layer: " + ", ".join(parts))
        humming = result.kernel_layers.get(rules.HUMMING_KERNEL)
        if humming:
            result.note(
                f"{rules.HUMMING_KERNEL} is the only kernel that takes {_layer_phrase(humming)}: it ships with {_V}"
                " (humming-kernels) but is its least-tested path"
            )

    # assembling the prediction

    def _prediction(self, results: list[_GenerationResult]) -> VllmPrediction:
        common = _Findings()
        for problem in self.problems:
            common.add(problem)
        common.extend(self.layer_problems)
        config_reasons = common.render()
        verdicts = []
        for result in results:
            reasons = list(dict.fromkeys([*config_reasons, *result.reasons.render()]))
            loads = not reasons
            kernels = (
                {kernel for kernels in result.kernels_by_scheme.values() for kernel in kernels} if loads else set()
            )
            verdicts.append(
                GenerationVerdict(
                    generation=result.generation.name,
                    capability=result.generation.capability,
                    loads=loads,
                    schemes=tuple(sorted(result.schemes, key=_SCHEME_ORDER.index)),
                    kernels=tuple(sorted(kernels, key=_KERNEL_ORDER.index)),
                    reasons=tuple(reasons),
                    notes=tuple(dict.fromkeys([*self.notes, *result.notes])),
                )
            )
        problems = [reason for reason in verdicts[0].reasons if all(reason in verdict.reasons for verdict in verdicts)]
        return VllmPrediction(
            vllm_version=rules.VLLM_VERSION,
            quantized=True,
            verdicts=tuple(verdicts),
            problems=tuple(problems),
            warnings=tuple(dict.fromkeys([*self.warnings, *self._generation_warnings(results, verdicts)])),
            expected_log_lines=tuple(_expected_log_lines(results, verdicts)),
        )

    def _generation_warnings(self, results: list[_GenerationResult], verdicts: list[GenerationVerdict]) -> list[str]:
        warnings: list[str] = []
        humming = [
            result.generation.name
            for result, verdict in zip(results, verdicts, strict=True)
            if verdict.loads
            and (
                rules.HUMMING_KERNEL in result.kernel_layers
                or any(_row_named(scheme).humming_only for scheme in result.schemes)
            )
        ]
        if humming:
            warnings.append(
                f"on {', '.join(humming)} some layers run only on vLLM's Humming kernels: they work with a default"
                f" {_V} install but are its least-tested path"
            )
        for result in results:
            for scheme, formats in result.formats_by_scheme.items():
                expected = _row_named(scheme).expected_format
                unusual = sorted(str(name) for name in formats if name != expected)
                if expected and unusual:
                    warnings.append(
                        f"{scheme} checkpoints are normally saved as {expected!r}; this one uses {', '.join(unusual)}"
                    )
        return warnings


def _shard_list(layer: _Layer, flags: list[bool], wanted: bool) -> str:
    return "/".join(shard.short for shard, flag in zip(layer.shards, flags, strict=True) if flag == wanted)


def _group_entries(quantization: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    groups = quantization.get("config_groups") or {}
    if not isinstance(groups, Mapping):
        return []
    return [entry for entry in groups.values() if isinstance(entry, Mapping)]


def _groups_of(quantization: Mapping[str, Any]) -> list[list[str]]:
    return [
        [target for target in entry.get("targets") or [] if isinstance(target, str)]
        for entry in _group_entries(quantization)
    ]


def _expected_log_lines(results: list[_GenerationResult], verdicts: list[GenerationVerdict]) -> list[str]:
    """Regular expressions (re.search) a smoke test's vLLM log should match on a GPU where the load succeeds."""
    kernels_by_scheme: dict[str, list[str]] = {}
    for result, verdict in zip(results, verdicts, strict=True):
        if not verdict.loads:
            continue
        for scheme, kernels in result.kernels_by_scheme.items():
            known = kernels_by_scheme.setdefault(scheme, [])
            known.extend(kernel for kernel in kernels if kernel not in known)
            known.sort(key=_KERNEL_ORDER.index)
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
    if not any(verdict.loads for verdict in verdicts):
        reasons = [reason for verdict in verdicts for reason in verdict.reasons]
        lines.extend(
            pattern for pattern in rules.VLLM_ERROR_PATTERNS if any(re.search(pattern, reason) for reason in reasons)
        )
    return lines


def _not_compressed_tensors(problems: list[str]) -> VllmPrediction:
    verdicts = tuple(
        GenerationVerdict(
            generation=generation.name,
            capability=generation.capability,
            loads=not problems,
            reasons=tuple(problems),
        )
        for generation in rules.GPU_GENERATIONS
    )
    return VllmPrediction(vllm_version=rules.VLLM_VERSION, quantized=False, verdicts=verdicts, problems=tuple(problems))
