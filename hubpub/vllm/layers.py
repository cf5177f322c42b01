"""§1.6 and §4 of the rules: which vLLM layers a checkpoint has, and which config group each one maps to.

Modules come from the safetensors tensor names (`X.weight_packed`, `X.weight` + `X.weight_scale`, ...); vLLM
fuses q/k/v and gate/up into one layer whose shards must share one ignore status and one scheme. A layer maps
to a group the way vLLM looks it up: `ignore` first, then an exact name or `re:` target, then a class-name
substring; the checkpoint must store each layer the way that lookup says vLLM will load it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hubpub.checkpoint import TensorInfo
from hubpub.vllm import rules
from hubpub.vllm.config import ConfigGroup

Role = Literal["linear", "lm_head", "embedding", "expert"]


@dataclass(frozen=True)
class Module:
    """One HF module and its tensors."""

    name: str
    role: Role
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


def modules_of(tensors: Mapping[str, TensorInfo]) -> dict[str, Module]:
    """The modules that hold a weight matrix, by name, each with the role vLLM gives it."""
    by_module: dict[str, dict[str, TensorInfo]] = {}
    for name, info in tensors.items():
        module, _, suffix = name.rpartition(".")
        if module:
            by_module.setdefault(module, {})[suffix] = info
    modules: dict[str, Module] = {}
    for name, module_tensors in sorted(by_module.items()):
        weight = module_tensors.get("weight")
        has_matrix = "weight_packed" in module_tensors or (weight is not None and len(weight.shape) == 2)
        parts = name.split(".")
        if not has_matrix or parts[-1] in rules.NOT_LINEAR_MODULES:
            continue
        role: Role = "linear"
        if parts[-1] in rules.LM_HEAD_MODULES:
            role = "lm_head"
        elif parts[-1] in rules.EMBEDDING_MODULES:
            role = "embedding"
        elif rules.EXPERTS_PART in parts[:-1]:
            role = "expert"
        modules[name] = Module(name, role, module_tensors)
    return modules


@dataclass(frozen=True)
class Layer:
    """One vLLM layer: a single HF module, or the HF shards vLLM fuses (q/k/v, gate/up)."""

    name: str
    shards: tuple[Module, ...]
    vllm_class: str
    row_parallel: bool

    @property
    def role(self) -> Role:
        return self.shards[0].role


def layers_of(modules: Mapping[str, Module]) -> list[Layer]:
    """vLLM's layers in natural name order; MoE experts are left out (vLLM builds them as one fused method)."""
    layers: list[Layer] = []
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
                layers.append(Layer(name, present, rules.VLLM_LAYER_CLASSES[role_class], row_parallel=False))
    for module in modules.values():
        if module.name in fused_members or module.role == "expert":
            continue
        if module.role == "linear":
            row_parallel = module.short in rules.ROW_PARALLEL_MODULES
            layer_class = rules.VLLM_LAYER_CLASSES["row" if row_parallel else "column"]
            layers.append(Layer(module.name, (module,), layer_class, row_parallel))
        else:
            layers.append(Layer(module.name, (module,), rules.VLLM_LAYER_CLASSES[module.role], row_parallel=False))
    return sorted(layers, key=lambda layer: _natural_key(layer.name))


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


# --- ignore and targets -------------------------------------------------------------------------------------------


def name_matches(entry: str, name: str) -> bool:
    """An `ignore` or target entry against a module name: exact, or `re:` with `re.match` (anchored at the start)."""
    if entry.startswith(rules.REGEX_PREFIX):
        try:
            return re.match(entry.removeprefix(rules.REGEX_PREFIX), name) is not None
        except re.error:
            return False
    return entry == name


def is_ignored(name: str, ignore: Iterable[str]) -> bool:
    return any(name_matches(entry, name) for entry in ignore)


@dataclass(frozen=True)
class Match:
    group: ConfigGroup
    target: str
    by: Literal["name", "class"]


def match_target(name: str, layer_class: str, groups: Iterable[ConfigGroup]) -> Match | None:
    """vLLM's order: exact name or `re:` regex over all targets first, then class-name substring."""
    candidates = list(groups)
    for group in candidates:
        for target in group.targets:
            if name_matches(target, name):
                return Match(group, target, "name")
    for group in candidates:
        for target in group.targets:
            if not target.startswith(rules.REGEX_PREFIX) and target.lower() in layer_class.lower():
                return Match(group, target, "class")
    return None


@dataclass(frozen=True)
class LayerLookup:
    """The group vLLM maps a layer to (None when ignored or untargeted), or why its fused shards disagree."""

    match: Match | None
    ignored: bool
    shard_problem: str | None  # worded with a `{layer}` placeholder


def look_up(layer: Layer, groups: list[ConfigGroup], ignore: list[str]) -> LayerLookup:
    """Ignore first, then targets, for every shard; the shards of a fused layer must agree on both."""
    ignored = [is_ignored(shard.name, ignore) for shard in layer.shards]
    matches = [match_target(shard.name, layer.vllm_class, groups) for shard in layer.shards]
    problem = None
    if len(set(ignored)) > 1:
        problem = (
            f"{{layer}}: {rules.ERROR_FUSED_SHARDS}: {_shard_list(layer, ignored, True)} in ignore, "
            f"{_shard_list(layer, ignored, False)} not; vLLM requires all to use the same scheme, so ignore all"
            " of them or none"
        )
    elif not ignored[0] and len({None if match is None else match.group.scheme_key for match in matches}) > 1:
        described = ", ".join(
            f"{shard.short}: {match.group.name if match else 'no group'}"
            for shard, match in zip(layer.shards, matches, strict=True)
        )
        problem = f"{{layer}}: {rules.ERROR_FUSED_SHARDS} ({described}); vLLM requires all to use the same scheme"
    return LayerLookup(None if ignored[0] else matches[0], ignored[0], problem)


def _shard_list(layer: Layer, flags: list[bool], wanted: bool) -> str:
    return "/".join(shard.short for shard, flag in zip(layer.shards, flags, strict=True) if flag == wanted)


# --- does the checkpoint store what the lookup says? --------------------------------------------------------------


@dataclass(frozen=True)
class LayerCheck:
    """Whether the checkpoint stores a layer the way vLLM will load it; problems carry a `{layer}` placeholder."""

    consistent: bool
    problem: str | None = None
    warning: str | None = None


def check_storage(layer: Layer, match: Match | None, ignored: bool) -> LayerCheck:
    """Quantized in the checkpoint exactly when vLLM quantizes it."""
    stored = [shard.quantized for shard in layer.shards]
    if match is not None and not match.group.usable:
        return LayerCheck(False)  # the group's own problem is reported; nothing more is known about this layer
    if match is not None and match.group.weights is not None:
        if all(stored):
            return LayerCheck(True)
        shard = layer.shards[stored.index(False)]
        return LayerCheck(
            False,
            f"{{layer}}: vLLM quantizes it (config group {match.group.name!r}, target {match.target!r}) but"
            f" the checkpoint stores {shard.stored_weight()}; add it to ignore or quantize it",
        )
    if any(stored):
        why = "it is listed in ignore" if ignored else "no config group targets it"
        return LayerCheck(
            False,
            f"{{layer}}: the checkpoint has quantized tensors but vLLM loads it unquantized ({why}); make the"
            " config's ignore list and targets describe what was quantized",
        )
    return LayerCheck(True)


@dataclass(frozen=True)
class Resolution:
    """How vLLM sees one layer: the matched group, or None when it is ignored or no target matches."""

    layer: Layer
    match: Match | None
    consistent: bool  # shards agree and the checkpoint holds what vLLM expects
