"""Wall time and peak memory of a block of work, sampled while it runs, with the peaks its children report."""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpub.peaks import gpu_peaks

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
    """The largest resident memory of this process or of any child that reported its peaks."""
    peak_gpu_mb: dict[str, float] | None = None
    """Per CUDA device index: the most reserved there by this process or by any one child; None without CUDA."""

    def add(self, peak_rss_mb: float | None, peak_gpu_mb: Mapping[str, float] | None) -> None:
        if peak_rss_mb is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb)
        if peak_gpu_mb is not None:
            merged = dict(self.peak_gpu_mb or {})
            for device, value in peak_gpu_mb.items():
                merged[device] = max(merged.get(device, 0.0), value)
            self.peak_gpu_mb = merged

    def rounded_gpu(self) -> dict[str, float] | None:
        if self.peak_gpu_mb is None:
            return None
        return {device: round(value, 1) for device, value in sorted(self.peak_gpu_mb.items(), key=lambda i: int(i[0]))}


_ACTIVE: ContextVar[tuple[Measurement, ...]] = ContextVar("hubpub_measurements", default=())


def record_child_peaks(report: Mapping[str, Any]) -> None:
    """Count a child process's own `peak_rss_mb` / `peak_gpu_mb` (as `hubpub.peaks.own_peaks` reports them)
    in every measurement running around this call. Values that are not numbers are ignored."""
    reported_rss: Any = report.get("peak_rss_mb")
    gpu = report.get("peak_gpu_mb")
    rss = float(reported_rss) if _is_number(reported_rss) else None
    gpu = (
        {str(device): float(value) for device, value in gpu.items() if _is_number(value)}
        if isinstance(gpu, Mapping)
        else None
    )
    for measurement in _ACTIVE.get():
        measurement.add(rss, gpu)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@contextmanager
def measured(interval: float = 0.05) -> Iterator[Measurement]:
    """Time the block and sample its resident memory; take in the peaks its child processes report."""
    result = Measurement()
    peak = [current_rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], current_rss_bytes())

    sampler = threading.Thread(target=sample, name="hubpub-rss-sampler", daemon=True)
    cuda = _initialized_cuda()
    if cuda is not None:
        for index in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(index)
    token = _ACTIVE.set((*_ACTIVE.get(), result))
    started = time.perf_counter()
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        _ACTIVE.reset(token)
        result.seconds = time.perf_counter() - started
        result.add(max(peak[0], current_rss_bytes()) / 2**20, gpu_peaks())


def _initialized_cuda() -> Any:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda
