"""No silent CPU: a GPU machine whose CUDA is unusable stops a release at the start; a CPU run is declared.

This machine has no GPU and a CPU build of torch. The GPU machine is a test double: a fake `nvidia-smi` on PATH
that reports an H100, as the NVIDIA driver's tool does on a GPU runner; torch is the real, CPU-only one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubpub.manifest import Manifest
from hubpub.placement import Placement
from hubpub.resources.runner import cgroup_memory_limit, describe_cuda, host_ram_bytes, nvidia_gpu_found
from tests.conftest import run_cli, write_spec

H100_LIST = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa1111-0000-0000-0000-000000000000)"
H100_QUERY = "0, GPU-aaaa1111-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559"
NO_PROC_GPUS = Path("/nonexistent/proc/driver/nvidia/gpus")


@pytest.fixture
def fake_h100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Test double: an `nvidia-smi` that answers `-L` and `--query-gpu` as the driver's does for one H100."""
    fake = tmp_path / "fake-bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = "-L" ]; then echo "{H100_LIST}"; else echo "{H100_QUERY}"; fi\n', encoding="utf-8"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


@pytest.mark.double
def test_release_on_a_gpu_machine_without_usable_cuda_stops_before_anything_is_staged(
    fake_h100: Path, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    assert torch.version.cuda is None, "this test needs the CPU build of torch"
    spec = write_spec(tmp_path, tiny_llama)
    workdir = tmp_path / "work"
    code, _, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(workdir)], capsys)
    assert code == 2, err
    assert f"W4A16: this machine has an NVIDIA GPU (`nvidia-smi -L` lists {H100_LIST})" in err
    assert f"CUDA is not usable here: torch {torch.__version__} is a CPU-only build" in err
    assert "does not fall back to the CPU" in err and "runner: {gpus: 0}" in err
    assert "Traceback" not in err
    assert not (workdir / "releases").exists()


@pytest.mark.double
def test_a_declared_cpu_run_on_a_gpu_machine_runs_on_the_cpu_and_the_card_says_so(
    fake_h100: Path, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_llama, "runner:\n  gpus: 0\n")
    workdir = tmp_path / "work"
    code, out, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(workdir), "--json"], capsys)
    assert code == 0, err
    staged = Path(json.loads(out)[0]["staged_dir"])
    manifest = Manifest.read(staged)
    assert manifest.device == "cpu"
    assert manifest.stages["verify"].metrics["device"] == "cpu"
    # The plan placed no stage on the H100 that nvidia-smi reports.
    assert manifest.resources is not None
    assert all(not stage["placement"]["gpu_budgets"] for stage in manifest.resources["stages"].values())
    # The quantize child is told to show llm-compressor no GPU (it takes any CUDA device it sees).
    (request_file,) = (workdir / "releases").rglob("quantize-request.json")
    assert json.loads(request_file.read_text(encoding="utf-8"))["cpu_run"] is True
    card = (staged / "README.md").read_text(encoding="utf-8")
    assert "| Quantized on | cpu: a CPU run, declared in the spec (`runner.gpus: 0`) |" in card


def test_a_machine_with_a_gpu_is_found_by_nvidia_smi_or_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert nvidia_gpu_found(NO_PROC_GPUS) is None
    proc_gpus = tmp_path / "gpus"
    (proc_gpus / "0000:01:00.0").mkdir(parents=True)
    assert nvidia_gpu_found(proc_gpus) == f"{proc_gpus} lists 0000:01:00.0"


@pytest.mark.double
def test_cuda_visible_devices_does_not_hide_the_gpu_from_the_check(
    fake_h100: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvidia_gpu_found(NO_PROC_GPUS) == f"`nvidia-smi -L` lists {H100_LIST}"


def test_the_cuda_check_names_the_cause() -> None:
    # What the probe reports (hubpub.resources.runner._CUDA_PROBE) from a CUDA build whose driver is too old.
    old_driver = {
        "torch": "2.11.0+cu128",
        "cuda": "12.8",
        "available": False,
        "warning": "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).",
    }
    assert describe_cuda(old_driver) == (
        "torch 2.11.0+cu128 built for CUDA 12.8: CUDA initialization: The NVIDIA driver on your system is too old"
        " (found version 11040)."
    )
    assert describe_cuda({"torch": "2.13.0+cpu", "cuda": None, "available": False}) == (
        "torch 2.13.0+cpu is a CPU-only build (torch.version.cuda is None)"
    )
    assert describe_cuda({"available": False, "error": "ModuleNotFoundError: No module named 'torch'"}) == (
        "torch could not be imported (ModuleNotFoundError: No module named 'torch')"
    )


@pytest.mark.parametrize("child", ["_verify_child", "_evaluate_child", "_quantize_child"])
def test_a_child_placed_on_a_gpu_fails_naming_cuda_instead_of_using_the_cpu(child: str, tmp_path: Path) -> None:
    import torch

    request = {"placement": Placement(gpu_budgets={0: 70 * 2**30}).as_request(), "quiet": True}
    request_path, result_path = tmp_path / "request.json", tmp_path / "result.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", f"hubpub.stages.{child}", str(request_path), str(result_path)], check=True, timeout=300
    )
    error = json.loads(result_path.read_text(encoding="utf-8"))["error"]
    stage = child.strip("_").removesuffix("_child")
    assert error == {
        "type": "CudaUnavailableError",
        "message": f"{stage}: the resource plan placed the model on GPUs, but CUDA is not usable in this process:"
        f" torch {torch.__version__} is a CPU-only build (torch.version.cuda is None). A GPU release does not fall"
        " back to the CPU; declare a CPU run with `runner: {gpus: 0}`.",
    }


GIB = 2**30
MEMINFO = "MemTotal:       65536000 kB\nMemFree: 1000 kB\nMemAvailable:   32768000 kB\n"


@pytest.mark.parametrize(
    ("v2", "v1", "limit"),
    [
        ("max\n", None, None),
        (f"{8 * GIB}\n", None, 8 * GIB),
        (None, f"{4 * GIB}\n", 4 * GIB),
        (None, "9223372036854771712\n", None),  # cgroup v1's "no limit"
        (None, None, None),
        ("not a number\n", f"{4 * GIB}\n", 4 * GIB),
    ],
)
def test_the_cgroup_memory_limit_is_read_from_v2_then_v1(
    tmp_path: Path, v2: str | None, v1: str | None, limit: int | None
) -> None:
    paths = (tmp_path / "memory.max", tmp_path / "memory" / "memory.limit_in_bytes")
    for path, text in zip(paths, (v2, v1), strict=True):
        if text is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="ascii")
    assert cgroup_memory_limit(paths) == limit


def test_host_ram_is_the_smaller_of_the_cgroup_limit_and_memavailable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO, encoding="ascii")
    cgroup = tmp_path / "memory.max"
    cgroup.write_text(f"{16 * GIB}\n", encoding="ascii")
    assert host_ram_bytes(meminfo, (cgroup,)) == 16 * GIB
    cgroup.write_text(f"{64 * GIB}\n", encoding="ascii")
    assert host_ram_bytes(meminfo, (cgroup,)) == 32768000 * 1024
    cgroup.write_text("max\n", encoding="ascii")
    assert host_ram_bytes(meminfo, (cgroup,)) == 32768000 * 1024
    assert host_ram_bytes(tmp_path / "no-meminfo", (cgroup,)) is None
