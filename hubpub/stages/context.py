"""What every stage receives and returns. Stages share these types, never each other's code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpub.hashing import HashCache
from hubpub.manifest import StageResult
from hubpub.placement import CPU, Placement
from hubpub.spec import ReleaseSpec


@dataclass(frozen=True)
class StageContext:
    release: ReleaseSpec
    spec_path: Path
    cache_dir: Path
    """Shared by every release in the work folder: GGUF conversions, file hashes, base metrics."""
    output_dir: Path
    """This stage's own folder, empty at the start; its content is kept once the stage succeeds."""
    previous: Mapping[str, StageResult]
    hashes: HashCache
    vllm_python: Path | None = None
    """The Python interpreter of a separate environment that has vLLM, when one is configured."""
    placement: Placement = CPU
    """Where this stage's model goes (GPUs and budgets, or the CPU), decided by the resource plan."""

    def output_of(self, stage: str, key: str) -> Path:
        return Path(self.previous[stage].outputs[key])


@dataclass
class StageOutput:
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    """Set when the stage's main check could not run here; the stage is then recorded as skipped, with this reason."""
