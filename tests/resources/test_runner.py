"""The runner: detected without torch (nvidia-smi, /proc/meminfo, free disk), declared in the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub.resources.runner import GB, available_ram_bytes, detect_machine, visible_gpus
from tests.conftest import write_spec

NVIDIA_SMI = """\
0, GPU-aaaa1111-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559
1, GPU-bbbb2222-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559
2, GPU-cccc3333-0000-0000-0000-000000000000, NVIDIA L4, 23034
"""


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [(0, "NVIDIA H100 80GB HBM3"), (1, "NVIDIA H100 80GB HBM3"), (2, "NVIDIA L4")]),
        ("2,0", [(0, "NVIDIA L4"), (1, "NVIDIA H100 80GB HBM3")]),
        ("GPU-cccc3333", [(0, "NVIDIA L4")]),
        ("1,7,0", [(0, "NVIDIA H100 80GB HBM3")]),  # CUDA stops at the first entry naming no device
        ("", []),
        ("-1", []),
    ],
)
def test_cuda_visible_devices_selects_and_renumbers(visible: str | None, expected: list[tuple[int, str]]) -> None:
    gpus = visible_gpus(NVIDIA_SMI, visible)
    assert [(gpu.index, gpu.name) for gpu in gpus] == expected


def test_memory_is_read_in_mib() -> None:
    (l4,) = visible_gpus(NVIDIA_SMI, "2")
    assert l4.memory_bytes == 23034 * 2**20


@pytest.mark.double
def test_detection_calls_nvidia_smi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncat <<'CSV'\n{NVIDIA_SMI}CSV\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    machine = detect_machine(tmp_path)
    assert [gpu.memory_bytes for gpu in machine.gpus] == [81559 * 2**20]
    assert machine.disk_bytes and machine.ram_bytes


def test_host_ram_is_memavailable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       65536000 kB\nMemFree: 1000 kB\nMemAvailable:   32768000 kB\n")
    assert available_ram_bytes(meminfo) == 32768000 * 1024


@pytest.mark.parametrize(
    ("runner", "message"),
    [
        ("runner:\n  gpus: 2\n", "gpus: 2 needs gpu_memory_gb"),
        ("runner:\n  gpu_memory_gb: 24\n", "gpu_memory_gb needs gpus above 0"),
        ("runner:\n  gpus: 1\n  gpu_memory_gb: 24\n  ram: 64\n", "unknown key 'ram'; did you mean 'ram_gb'?"),
        (
            "runner:\n  gpus: cpu\n",
            "gpus takes a whole number of GPUs (0 for a CPU run), not 'cpu'; for a CPU run write `gpus: 0`",
        ),
        ("runner:\n  gpus: -1\n", "runner.gpus: Input should be greater than or equal to 0"),
    ],
)
def test_runner_section_errors_point_at_the_line(tmp_path: Path, runner: str, message: str) -> None:
    from hubpub.errors import SpecError
    from hubpub.spec import load_spec

    (tmp_path / "model").mkdir()
    spec = write_spec(tmp_path, tmp_path / "model", runner)
    with pytest.raises(SpecError) as raised:
        load_spec(spec)
    assert f"{spec}:1" in str(raised.value) and message in str(raised.value)


def test_declared_runner_in_gb() -> None:
    from hubpub.resources import declared_machine
    from hubpub.spec import Runner

    machine = declared_machine(Runner(gpus=2, gpu_memory_gb=24, ram_gb=64, disk_gb=100))
    assert [gpu.memory_bytes for gpu in machine.gpus] == [24 * GB, 24 * GB]
    assert (machine.ram_bytes, machine.disk_bytes) == (64 * GB, 100 * GB)
