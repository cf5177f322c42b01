"""§1 of the rules: how vLLM reads `quantization_config` before it looks at any layer.

The quantization arguments are parsed as compressed-tensors 0.17 (vLLM's pin) parses them: unknown keys are
refused, actorder group/dynamic is refused, the strategy is inferred. Each config group gets its effective
format; the config-wide refusals (sparsity, g_idx tensors, an unsupported KV cache scheme, bad `ignore`
regexes) apply on every GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hubpub.vllm import rules
from hubpub.vllm.findings import VLLM


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
class QuantArgs:
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

    def fits(self, pattern: rules.ArgsPattern) -> bool:
        return (
            (pattern.type is None or self.type == pattern.type)
            and (pattern.num_bits is None or self.num_bits in pattern.num_bits)
            and (pattern.strategies is None or self.strategy in pattern.strategies)
            and (pattern.group_size is None or self.group_size == pattern.group_size)
            and (pattern.symmetric is None or self.symmetric == pattern.symmetric)
            and (pattern.dynamic is None or bool(self.dynamic) == pattern.dynamic)
            and (pattern.scale_dtype is None or self.scale_dtype == pattern.scale_dtype)
        )

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


def parse_args(data: Any, where: str, *, weights: bool) -> tuple[QuantArgs | None, list[str]]:
    """Parse like compressed-tensors 0.17 would inside vLLM; problems are worded for the user."""
    if not isinstance(data, Mapping):
        return None, [f"{where}: expected quantization arguments (a mapping), got {data!r}: {VLLM} cannot parse it"]
    try:
        model = _QuantizationArgs.model_validate(dict(data))
    except ValidationError as exc:
        return None, [_validation_problem(where, error) for error in exc.errors()]
    problems: list[str] = []
    actorder = "true" if model.actorder is True else None if model.actorder is False else model.actorder
    if weights and actorder in rules.REFUSED_ACTORDERS:
        problems.append(
            f"{where}.actorder is {data.get('actorder')!r}: {rules.ERROR_ACTORDER} in {VLLM} (it raises ValueError"
            " at config parse); re-quantize with actorder 'weight' or null"
        )
    strategy, strategy_problem = _infer_strategy(model)
    if strategy_problem:
        problems.append(
            f"{where}: {strategy_problem}; compressed-tensors rejects it, so {VLLM} cannot parse the config"
        )
    block = _block_structure(model.block_structure)
    if isinstance(block, str):
        problems.append(f"{where}.block_structure: {block}")
        block = None
    scale_dtype = model.scale_dtype.removeprefix("torch.") if model.scale_dtype else None
    args = QuantArgs(
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
            f' forbids extra fields ("{rules.ERROR_EXTRA_KEY}"), so {VLLM} cannot parse the config; remove the key'
        )
    return f"{where}.{location}: {error.get('msg', 'invalid value')}; {VLLM} cannot parse the config"


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
class ConfigGroup:
    """One `config_groups` entry as vLLM reads it, with its effective format (§1.4)."""

    name: str
    targets: tuple[str, ...]
    weights: QuantArgs | None
    input_activations: QuantArgs | None
    output_activations: QuantArgs | None
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
class ConfigReading:
    groups: list[ConfigGroup] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_groups(quantization: Mapping[str, Any]) -> ConfigReading:
    """The config groups vLLM keeps (attention-only groups are dropped), with their parse problems."""
    reading = ConfigReading()
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
) -> tuple[ConfigGroup, list[str]]:
    problems = [
        f"{where}.targets: {target!r} is not a valid regular expression ({error}); {VLLM} cannot match layers"
        for target, error in regex_errors(targets)
    ]
    weights, weight_problems = parse_args(entry.get("weights"), f"{where}.weights", weights=True)
    problems.extend(weight_problems)
    input_activations = output_activations = None
    if entry.get("input_activations"):
        input_activations, input_problems = parse_args(
            entry["input_activations"], f"{where}.input_activations", weights=False
        )
        problems.extend(input_problems)
    if entry.get("output_activations"):
        output_activations, output_problems = parse_args(
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
            f"{where}: {weights.type} weight-only quantization saved as {effective_format!r} fails {VLLM}'s"
            " config assert (an activation-quantization format without input_activations must have float weights);"
            f" save integer weight-only checkpoints as {rules.PACK_QUANTIZED!r}"
        )
    group = ConfigGroup(
        name=name,
        targets=targets,
        weights=weights,
        input_activations=input_activations,
        output_activations=output_activations,
        format=effective_format,
        usable=weights is not None and not problems,
    )
    return group, problems


def regex_errors(entries: Iterable[str]) -> list[tuple[str, str]]:
    """The `re:` entries Python cannot compile, with the compiler's complaint."""
    errors = []
    for entry in entries:
        if entry.startswith(rules.REGEX_PREFIX):
            try:
                re.compile(entry.removeprefix(rules.REGEX_PREFIX))
            except re.error as exc:
                errors.append((entry, str(exc)))
    return errors


def ignore_entries(quantization: Mapping[str, Any]) -> list[str]:
    ignore = quantization.get("ignore") or []
    return [entry for entry in ignore if isinstance(entry, str)] if isinstance(ignore, list) else []


def raw_targets(quantization: Mapping[str, Any]) -> list[str]:
    """Every target string of every config group as written, dropped or not (what llm-compressor matched)."""
    groups = quantization.get("config_groups") or {}
    if not isinstance(groups, Mapping):
        return []
    entries = [entry for entry in groups.values() if isinstance(entry, Mapping)]
    return [target for entry in entries for target in entry.get("targets") or [] if isinstance(target, str)]


# --- config-wide refusals -----------------------------------------------------------------------------------------


def config_problems(quantization: Mapping[str, Any], tensor_names: Iterable[str], ignore: list[str]) -> list[str]:
    """What makes vLLM refuse the config on every GPU: sparsity, bad ignore regexes, g_idx, the KV cache scheme."""
    problems: list[str] = []
    sparsity = quantization.get("sparsity_config")
    if isinstance(sparsity, Mapping) and sparsity and sparsity.get("targets", True):
        problems.append(
            f"quantization_config.sparsity_config is set: {rules.ERROR_SPARSITY} in {VLLM} (2:4 sparse,"
            " sparse-24-bitmask and marlin-24 checkpoints do not load); re-quantize without sparsity"
        )
    problems.extend(
        f"quantization_config.ignore: {entry!r} is not a valid regular expression ({error}); {VLLM} cannot match"
        " layers against it"
        for entry, error in regex_errors(ignore)
    )
    g_idx = sorted(name for name in tensor_names if name.endswith(f".{rules.G_IDX_SUFFIX}"))
    if g_idx:
        problems.append(
            f"the checkpoint has {len(g_idx)} g_idx tensor(s) (e.g. {g_idx[0]}): {rules.ERROR_ACTORDER} in {VLLM};"
            " re-quantize with actorder 'weight' or null"
        )
    kv_cache = quantization.get("kv_cache_scheme")
    if kv_cache:
        problems.extend(_kv_cache_problems(kv_cache))
    return problems


def _kv_cache_problems(kv_cache: Any) -> list[str]:
    args, problems = parse_args(kv_cache, "quantization_config.kv_cache_scheme", weights=False)
    if args is not None and not args.fits(rules.KV_CACHE_SCHEME):
        problems.append(
            f"quantization_config.kv_cache_scheme is {args.describe()}: {rules.ERROR_KV_CACHE}, symmetric,"
            f" strategy tensor or attn_head ({VLLM} raises NotImplementedError); calibrate an FP8 KV cache"
            " or drop kv_cache_scheme"
        )
    return problems
