"""Peak memory of this process: resident host memory and reserved memory on each visible GPU.

Every child process that loads a model reports these with its result, so the parent can record a
stage's peaks without ever holding a model itself. Standard library only: it also runs by path as a
wrapper around a script that cannot report for itself (a model card's snippet):

    python peaks.py PEAKS.json SCRIPT [ARGS...]
"""

from __future__ import annotations

import json
import resource
import runpy
import sys
from pathlib import Path
from typing import Any


def own_peaks() -> dict[str, Any]:
    """`peak_rss_mb` (this process, or its largest finished child) and `peak_gpu_mb` per device index, or None."""
    scale = 1 if sys.platform == "darwin" else 1024
    rss = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"peak_rss_mb": rss * scale / 2**20, "peak_gpu_mb": gpu_peaks()}


def gpu_peaks() -> dict[str, float] | None:
    """Peak memory the caching allocator reserved on each visible GPU, when this process used CUDA."""
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    # Reading counters must not create a CUDA context (hundreds of MB per device) in a process that had none.
    initialized = getattr(cuda, "is_initialized", None)
    if cuda is None or initialized is None or not initialized():
        return None
    return {str(index): cuda.max_memory_reserved(index) / 2**20 for index in range(cuda.device_count())}


def _run(peaks_path: str, script: str, *args: str) -> None:
    sys.argv = [script, *args]
    # Run by path, this file's folder leads sys.path; the script must see its own folder there instead, as
    # `python SCRIPT` gives it, or hubpub's modules (spec, version, ...) would shadow top-level imports.
    sys.path[0] = str(Path(script).resolve().parent)
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        Path(peaks_path).write_text(json.dumps(own_peaks()), encoding="utf-8")


if __name__ == "__main__":
    _run(*sys.argv[1:])
