"""Float32 arithmetic over weights kept at the checkpoint's dtype, for loading models on a CPU.

torch's bfloat16 kernels are several times slower than its float32 ones on CPUs without bfloat16 instructions
(a 512-token forward of a 1.7B model: 616 s against 68 s here), while a float32 copy of the model holds twice
the checkpoint's memory, and loading it from a bfloat16 file holds both for a moment. So each module's weights
are widened to float32 only for the length of its own forward, into buffers reused from module to module.
Widening bfloat16 or float16 to float32 is exact: the results are those of a float32 load.
"""

from __future__ import annotations

from typing import Any


def compute_in_float32(model: Any) -> Any:
    """Hook `model` (in place, and returned) so that every forward computes in float32 while its parameters stay
    in their loaded dtype; parameters already in float32 are left alone."""
    import torch

    free_buffers: dict[int, list[Any]] = {}

    def narrow_parameters(module: Any) -> list[tuple[str, Any]]:
        return [
            (name, parameter)
            for name, parameter in module.named_parameters(recurse=False)
            if parameter.is_floating_point() and parameter.dtype != torch.float32
        ]

    def widen(module: Any, args: Any) -> None:
        held = []
        for name, parameter in narrow_parameters(module):
            buffers = free_buffers.setdefault(parameter.numel(), [])
            buffer = buffers.pop() if buffers else torch.empty(parameter.numel(), dtype=torch.float32)
            held.append((name, parameter.data, buffer))
            parameter.data = buffer.view(parameter.shape).copy_(parameter.data)
        module._hubpub_widened = held

    def narrow_back(module: Any, args: Any, output: Any) -> None:
        for name, data, buffer in getattr(module, "_hubpub_widened", []):
            getattr(module, name).data = data
            free_buffers[buffer.numel()].append(buffer)
        module._hubpub_widened = []

    def widen_output(module: Any, args: Any, output: Any) -> Any:
        return output.float()

    for module in model.modules():
        if not narrow_parameters(module):
            continue
        if isinstance(module, torch.nn.Embedding):
            # A lookup reads a few rows: widening them beats widening the whole table.
            module.register_forward_hook(widen_output)
        else:
            module.register_forward_pre_hook(widen)
            module.register_forward_hook(narrow_back, always_call=True)
    return model
