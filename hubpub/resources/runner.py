"""The machine a release runs on: declared in the spec, or detected here without importing torch."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hubpub.spec import Runner as DeclaredRunner

GB = 10**9
_MIB = 2**20
NVIDIA_SMI_QUERY = ("--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits")
_MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Gpu:
    index: int
    """As CUDA numbers it in this process, after CUDA_VISIBLE_DEVICES."""
    name: str
    memory_bytes: int


@dataclass(frozen=True)
class Machine:
    """GPUs, host RAM and free disk the plan is checked against; None where a size is not known."""

    gpus: tuple[Gpu, ...]
    ram_bytes: int | None
    disk_bytes: int | None
    cpu_offload: bool = False
    origin: Literal["declared", "detected"] = "detected"

    def describe(self) -> str:
        gpus = (
            f"{len(self.gpus)} × {min(gpu.memory_bytes for gpu in self.gpus) / GB:.0f} GB GPU"
            if self.gpus
            else "no GPU"
        )
        ram = f"{self.ram_bytes / GB:.0f} GB RAM" if self.ram_bytes else "RAM not checked"
        disk = f"{self.disk_bytes / GB:.0f} GB disk" if self.disk_bytes else "disk not checked"
        return f"{self.origin}: {gpus}, {ram}, {disk}"


def declared_machine(runner: DeclaredRunner) -> Machine:
    memory = int((runner.gpu_memory_gb or 0) * GB)
    return Machine(
        gpus=tuple(Gpu(index, "declared", memory) for index in range(runner.gpus)),
        ram_bytes=int(runner.ram_gb * GB) if runner.ram_gb else None,
        disk_bytes=int(runner.disk_gb * GB) if runner.disk_gb else None,
        cpu_offload=runner.cpu_offload,
        origin="declared",
    )


def detect_machine(workdir: Path, *, cpu_offload: bool = False) -> Machine:
    """This machine: the GPUs CUDA would show this process, available host RAM, free disk under `workdir`."""
    return Machine(
        gpus=visible_gpus(_nvidia_smi(), os.environ.get("CUDA_VISIBLE_DEVICES")),
        ram_bytes=available_ram_bytes(),
        disk_bytes=free_disk_bytes(workdir),
        cpu_offload=cpu_offload,
    )


def _nvidia_smi() -> str:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return ""
    try:
        return subprocess.run(
            [executable, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def visible_gpus(nvidia_smi_csv: str, cuda_visible_devices: str | None) -> tuple[Gpu, ...]:
    """The GPUs of `nvidia-smi --query-gpu=index,uuid,name,memory.total` output that CUDA would show.

    CUDA_VISIBLE_DEVICES lists indexes or UUIDs (a unique prefix is enough); CUDA stops at the first
    entry that names no device, and numbers the devices it keeps from 0 in the listed order.
    """
    rows = []
    for line in nvidia_smi_csv.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        try:
            rows.append((int(parts[0]), parts[1], parts[2], int(float(parts[3]) * _MIB)))
        except ValueError:
            continue
    if cuda_visible_devices is None:
        chosen = sorted(rows)
    else:
        chosen = []
        for entry in (item.strip() for item in cuda_visible_devices.split(",")):
            found = [
                row
                for row in rows
                if (entry.isdigit() and row[0] == int(entry))
                or (entry and not entry.isdigit() and row[1].startswith(entry))
            ]
            if len(found) != 1 or found[0] in chosen:
                break
            chosen.append(found[0])
    return tuple(Gpu(index, name, memory) for index, (_, _, name, memory) in enumerate(chosen))


def available_ram_bytes(meminfo: Path = _MEMINFO) -> int | None:
    try:
        lines = meminfo.read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name] = int(fields[0]) * 1024
    return values.get("MemAvailable", values.get("MemTotal"))


def free_disk_bytes(workdir: Path) -> int | None:
    folder = workdir.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def cuda_usable() -> tuple[bool, str]:
    """Whether torch can use CUDA here, and what it found. Imports torch: for the release path only."""
    import torch

    if torch.cuda.is_available():
        return True, f"{torch.cuda.device_count()} CUDA device(s)"
    build = f"torch {torch.__version__}" + ("" if torch.version.cuda else " (a CPU-only build)")
    return False, f"torch.cuda.is_available() is false with {build}"
