"""The machine a release runs on: declared in the spec, or detected here without importing torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hubpub.spec import Runner as DeclaredRunner

GB = 10**9
_MIB = 2**20
NVIDIA_SMI_QUERY = ("--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits")
_MEMINFO = Path("/proc/meminfo")
CGROUP_V2_LIMIT = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
_NO_CGROUP_LIMIT = 2**60
"""cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit number; anything this big is none."""
PROC_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
CUDA_PROBE_TIMEOUT = 120


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
    origin: str = "detected"
    """declared (the spec's runner), detected (this machine), or `Jobs flavor <name>`."""

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
        gpus=tuple(Gpu(index, "declared", memory) for index in range(runner.gpus or 0)),
        ram_bytes=int(runner.ram_gb * GB) if runner.ram_gb else None,
        disk_bytes=int(runner.disk_gb * GB) if runner.disk_gb else None,
        cpu_offload=runner.cpu_offload,
        origin="declared",
    )


def detect_machine(workdir: Path, *, cpu_offload: bool = False) -> Machine:
    """This machine: the GPUs CUDA would show this process, available host RAM, free disk under `workdir`."""
    return Machine(
        gpus=visible_gpus(_nvidia_smi(), os.environ.get("CUDA_VISIBLE_DEVICES")),
        ram_bytes=host_ram_bytes(),
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


def host_ram_bytes(
    meminfo: Path = _MEMINFO, cgroup_limits: tuple[Path, ...] = (CGROUP_V2_LIMIT, CGROUP_V1_LIMIT)
) -> int | None:
    """The host RAM a release may use: the machine's available RAM, or the container's cgroup memory limit
    when that is smaller (containers, Hugging Face Jobs, Kubernetes runners see the host's /proc/meminfo)."""
    sizes = [size for size in (available_ram_bytes(meminfo), cgroup_memory_limit(cgroup_limits)) if size is not None]
    return min(sizes) if sizes else None


def cgroup_memory_limit(paths: tuple[Path, ...] = (CGROUP_V2_LIMIT, CGROUP_V1_LIMIT)) -> int | None:
    """The first cgroup memory limit found among `paths` (v2 `memory.max`, v1 `memory.limit_in_bytes`);
    None when there is none ("max", or v1's huge number)."""
    for path in paths:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text == "max":
            return None
        if text.isdigit():
            limit = int(text)
            return limit if 0 < limit < _NO_CGROUP_LIMIT else None
    return None


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


def nvidia_gpu_found(proc_gpus: Path = PROC_NVIDIA_GPUS) -> str | None:
    """What shows this machine has an NVIDIA GPU (a line of `nvidia-smi -L`, or the driver's /proc entries),
    whatever CUDA_VISIBLE_DEVICES says; None on a machine without one."""
    executable = shutil.which("nvidia-smi")
    if executable is not None:
        try:
            listed = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        gpus = [line.strip() for line in listed.splitlines() if line.startswith("GPU ")]
        if gpus:
            return f"`nvidia-smi -L` lists {gpus[0]}" + (f" and {len(gpus) - 1} more" if len(gpus) > 1 else "")
    try:
        entries = sorted(entry.name for entry in proc_gpus.iterdir())
    except OSError:
        entries = []
    return f"{proc_gpus} lists {', '.join(entries)}" if entries else None


_CUDA_PROBE = """
import json, warnings
found = {}
with warnings.catch_warnings(record=True) as warned:
    warnings.simplefilter("always")
    try:
        import torch
        found.update(torch=torch.__version__, cuda=torch.version.cuda, available=torch.cuda.is_available())
        if found["available"]:
            found["devices"] = torch.cuda.device_count()
            torch.zeros(1, device="cuda")
    except Exception as exc:
        found.update(available=False, error=f"{type(exc).__name__}: {exc}")
cuda_warnings = [str(item.message) for item in warned if "CUDA" in str(item.message)]
if cuda_warnings and not found.get("error"):
    found["warning"] = cuda_warnings[0]
print(json.dumps(found))
"""


def cuda_usable(timeout: float = CUDA_PROBE_TIMEOUT) -> tuple[bool, str]:
    """Whether torch can use CUDA here, and what it found, asked in a short-lived interpreter: this process
    forks the stages' children later, and a CUDA build of torch that has asked CUDA here poisons every fork."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _CUDA_PROBE], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"the CUDA probe could not run: {type(exc).__name__}: {exc}"
    try:
        found = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"the CUDA probe failed (exit {probe.returncode}): {tail}"
    return bool(found.get("available")), describe_cuda(found)


def describe_cuda(found: dict[str, object]) -> str:
    """The probe's findings in words: the devices, or why CUDA is unusable."""
    torch_version = found.get("torch")
    if torch_version is None:
        return f"torch could not be imported ({found.get('error')})"
    if found.get("available") and not found.get("error"):
        return f"torch {torch_version} sees {found.get('devices')} CUDA device(s)"
    if not found.get("cuda"):
        return f"torch {torch_version} is a CPU-only build (torch.version.cuda is None)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    cause = found.get("error") or found.get("warning") or "torch.cuda.is_available() is false"
    return f"torch {torch_version} built for CUDA {found['cuda']}: {cause}{hidden}"
