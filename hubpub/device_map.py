"""The explicit device map a stage's child loads a model with, sized as the model is held once loaded.

transformers sizes `device_map="auto"` from the tensors it is about to read. For a compressed-tensors checkpoint
those are the packed ones (a 70B W4A16: 39.5 GB), while compressed-tensors then holds every quantized weight
decompressed to the model's dtype (about 141 GB), so "auto" puts on one GPU what only several can hold. Here
each module is sized as it is held after decompression (the base dtype's weights, plus the scales and shapes
that stay), and the modules fill the placement's GPU budgets in order, then CPU offload where it is allowed.

A compressed model whose map spans devices is decompressed while it loads (`dequantize=True`): left to
compressed-tensors' lazy hook (the default), the first forward pass removes accelerate's dispatch hooks from
under the call that runs them and fails. Loaded this way, each module is decompressed where it lives.

Imports torch, transformers and accelerate: only in a stage's child, never in the hubpub process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpub.checkpoint import read_config, read_tensors
from hubpub.errors import PlacementError
from hubpub.placement import Placement

Device = int | str
"""A CUDA device index, "cpu" or "disk", as transformers' device maps name them."""
Budgets = Mapping[int, int] | Mapping[Device, int]
"""Bytes each device may take, in the order the devices are filled."""

_FLOAT_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}


@dataclass(frozen=True)
class ModelSizes:
    """A checkpoint's modules, in the order the model runs them, with the bytes each holds once loaded."""

    source: str
    """The checkpoint (its folder, or the repository the plan sizes), for messages."""
    units: tuple[tuple[str, int], ...]
    """Modules placed whole (decoder layers, embeddings, norms, the head), with their bytes in the loaded model."""
    tied: Mapping[str, str]
    """A module whose weights are another's (a tied lm_head) -> that module: it goes where that one goes."""
    packed_bytes: int
    """The checkpoint's tensors as stored (what `device_map="auto"` sizes a compressed checkpoint by)."""
    dtype: str
    compressed: bool

    @property
    def loaded_bytes(self) -> int:
        """The whole model once loaded: for a compressed checkpoint, decompressed."""
        return sum(size for _, size in self.units)

    def device_map(self, budgets: Budgets, spill: tuple[Device, int] | None = None) -> dict[str, Device]:
        """Fill `budgets` (device -> bytes, in the order given) with the modules in order, never going back to a
        device once the next one is started; what is left goes to `spill` (device, bytes) when given, and the
        first device then keeps room to take the largest spilled module while it runs. Raises PlacementError
        when the model does not fit."""
        room: dict[Device, int] = dict(budgets.items())
        placed, left = _fill(self.units, dict(room))
        if left and spill is not None and room:
            first = next(iter(room))
            reserved = {**room, first: room[first] - max(size for _, size in left)}
            placed, left = _fill(self.units, reserved)
            spill_device, spill_bytes = spill
            if sum(size for _, size in left) <= spill_bytes:
                placed.update((name, spill_device) for name, _ in left)
                left = []
        if left:
            raise PlacementError(self._refusal(room, spill, left))
        for module, target in self.tied.items():
            placed[module] = placed[target]
        return placed

    def load_kwargs(self, device_map: Mapping[str, Device], offload_folder: Path | None = None) -> dict[str, Any]:
        """Arguments for `from_pretrained` that load this checkpoint as `device_map` places it."""
        kwargs: dict[str, Any] = {"device_map": dict(device_map)}
        if self.compressed:
            from transformers import CompressedTensorsConfig

            kwargs["quantization_config"] = CompressedTensorsConfig(dequantize=True)
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
        return kwargs

    def _refusal(
        self, budgets: Mapping[Device, int], spill: tuple[Device, int] | None, left: list[tuple[str, int]]
    ) -> str:
        held = (
            f"{_bytes(self.packed_bytes)} of packed weights that compressed-tensors decompresses to"
            f" {_bytes(self.loaded_bytes)} of {self.dtype} as it loads"
            if self.compressed
            else f"{_bytes(self.loaded_bytes)} of {self.dtype} weights"
        )
        devices = ", ".join(f"{_device_name(device)} {_bytes(budget)}" for device, budget in budgets.items())
        offload = f"{_bytes(spill[1])} of {_device_name(spill[0])} offload" if spill else "no CPU offload"
        rest = sum(size for _, size in left)
        return (
            f"{self.source} holds {held}; the placement ({devices}, {offload}) leaves {_bytes(rest)} of it"
            f" without a device, from {left[0][0]} on. Plan it on more or bigger GPUs, or allow"
            " `runner.cpu_offload: true`."
        )


def _bytes(value: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} bytes"


def _device_name(device: Device) -> str:
    return f"GPU {device}" if isinstance(device, int) else str(device)


def _fill(
    units: tuple[tuple[str, int], ...], room: dict[Device, int]
) -> tuple[dict[str, Device], list[tuple[str, int]]]:
    devices = list(room)
    placed: dict[str, Device] = {}
    current = 0
    for index, (name, size) in enumerate(units):
        while current < len(devices) and size > room[devices[current]]:
            current += 1
        if current == len(devices):
            return placed, list(units[index:])
        room[devices[current]] -= size
        placed[name] = devices[current]
    return placed, []


def model_sizes(folder: Path) -> ModelSizes:
    """The modules of the checkpoint in `folder` and their bytes once loaded, from its config and safetensors
    headers alone: the model is built on the meta device, without its quantization, in the checkpoint's dtype."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.accelerate import compute_module_sizes

    tensors = read_tensors(folder)
    quantization = read_config(folder).get("quantization_config") or {}
    compressed = quantization.get("quant_method") == "compressed-tensors"
    config = AutoConfig.from_pretrained(folder)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dtype = config.dtype if isinstance(config.dtype, torch.dtype) else _stored_float_dtype(tensors)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    sizes, _ = compute_module_sizes(model)
    held = {name for name, _ in model.named_parameters(remove_duplicate=False)} | {
        name for name, _ in model.named_buffers()
    }
    tied = dict(getattr(model, "all_tied_weights_keys", {}) or {})
    units = _units(model, "", set(model._no_split_modules or ()))
    extra = dict.fromkeys(units, 0)
    for name, info in tensors.items():
        # Packed weights become the base-dtype weights counted above; scales, zero points and shapes stay.
        if name in held or name.endswith("weight_packed"):
            continue
        owner = _owner(units, name)
        if owner:
            extra[owner] += info.data_length
    tied_units = {
        _owner(units, key): _owner(units, target)
        for key, target in tied.items()
        if _owner(units, key) != _owner(units, target)
    }
    return ModelSizes(
        source=str(folder),
        units=tuple((unit, sizes.get(unit, 0) + extra[unit]) for unit in units if unit not in tied_units),
        tied={module: target for module, target in tied_units.items() if module and target},
        packed_bytes=sum(info.data_length for info in tensors.values()),
        dtype=str(dtype).removeprefix("torch."),
        compressed=compressed,
    )


def _units(module: Any, prefix: str, no_split: set[str]) -> list[str]:
    """Modules placed whole: a no-split block (a decoder layer), a module with tensors of its own, or a leaf;
    modules without any tensor need no device."""
    children = list(module.named_children())
    if not any(True for _ in module.parameters()) and not any(True for _ in module.buffers()):
        return []
    direct = next(module.named_parameters(recurse=False), None) or next(module.named_buffers(recurse=False), None)
    if not children or direct is not None or type(module).__name__ in no_split:
        return [prefix]
    return [
        unit for name, child in children for unit in _units(child, f"{prefix}.{name}" if prefix else name, no_split)
    ]


def _owner(units: list[str], tensor: str) -> str:
    return max((unit for unit in units if tensor.startswith(f"{unit}.")), key=len, default="")


def _stored_float_dtype(tensors: Mapping[str, Any]) -> Any:
    import torch

    stored = [_FLOAT_DTYPES[info.dtype] for info in tensors.values() if info.dtype in _FLOAT_DTYPES]
    return getattr(torch, max(set(stored), key=stored.count)) if stored else torch.float32


def placement_kwargs(folder: Path, placement: Placement) -> dict[str, Any]:
    """`from_pretrained` arguments that put the checkpoint in `folder` on the placement's GPUs, sized as it is held
    once loaded (decompressed), with CPU offload only where the placement allows it. For GPU placements only."""
    sizes = model_sizes(folder)
    spill: tuple[Device, int] | None = ("cpu", placement.cpu_offload_bytes) if placement.cpu_offload_bytes else None
    budgets: dict[Device, int] = dict(sorted(placement.gpu_budgets.items()))
    return sizes.load_kwargs(sizes.device_map(budgets, spill))
