"""Where a stage puts a model: which GPUs, how much of each, or the CPU.

The resource plan decides a placement per stage before anything runs; stages hand it to the child
process that loads the model, as plain JSON, so children need nothing else from the plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Placement:
    gpu_budgets: dict[int, int] = field(default_factory=dict)
    """CUDA device index (as this process sees it, after CUDA_VISIBLE_DEVICES) -> bytes the stage may use there."""
    cpu_offload_bytes: int = 0
    """Host RAM that may take layers the GPUs cannot hold (0: no offload)."""
    tensor_parallel_size: int = 1
    """For vLLM: how many of the GPUs one engine spans."""

    @property
    def on_gpu(self) -> bool:
        return bool(self.gpu_budgets)

    def as_request(self) -> dict[str, Any]:
        return {
            "gpu_budgets": {str(index): budget for index, budget in sorted(self.gpu_budgets.items())},
            "cpu_offload_bytes": self.cpu_offload_bytes,
            "tensor_parallel_size": self.tensor_parallel_size,
        }

    @classmethod
    def from_request(cls, value: dict[str, Any] | None) -> Placement:
        if not value:
            return CPU
        return cls(
            gpu_budgets={int(index): int(budget) for index, budget in value.get("gpu_budgets", {}).items()},
            cpu_offload_bytes=int(value.get("cpu_offload_bytes", 0)),
            tensor_parallel_size=int(value.get("tensor_parallel_size", 1)),
        )


CPU = Placement()


def cuda_problem() -> str | None:
    """Why this process cannot use CUDA, in words; None when it can. Imports torch and asks CUDA: only for a
    stage's child whose placement names GPUs, never in a process that forks. A child in a poisoned fork never
    gets here: the fork server stops it before its module runs (hubpub.warm)."""
    import torch

    if torch.cuda.is_available():
        return None
    if not torch.version.cuda:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return f"torch {torch.__version__} built for CUDA {torch.version.cuda} finds no usable device{hidden}"
