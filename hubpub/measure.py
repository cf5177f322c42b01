"""Wall time and peak memory of a block of work, sampled while it runs."""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PAGE_BYTES = resource.getpagesize()
_STATM = Path("/proc/self/statm")


def current_rss_bytes() -> int:
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE_BYTES
    except OSError:
        # Not Linux: the lifetime peak is the best available figure.
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None


@contextmanager
def measured(interval: float = 0.05) -> Iterator[Measurement]:
    """Time the block and sample its resident memory; records peak CUDA memory when torch uses it."""
    result = Measurement()
    peak = [current_rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], current_rss_bytes())

    sampler = threading.Thread(target=sample, name="hubpub-rss-sampler", daemon=True)
    cuda = _cuda_module()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result.seconds = time.perf_counter() - started
        result.peak_rss_mb = max(peak[0], current_rss_bytes()) / 2**20
        cuda = cuda or _cuda_module()
        if cuda is not None:
            result.peak_gpu_mb = cuda.max_memory_allocated() / 2**20


def _cuda_module() -> Any:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda
