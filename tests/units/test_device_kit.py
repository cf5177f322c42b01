"""The device kit's wheel set (scripts/device_kit.py): the closure hubpub needs on the GPU machine, and the check
that a built kit is consistent. Nothing is downloaded: the closure is walked over this environment's installed
metadata, and the kit check reads wheels written here."""

from __future__ import annotations

import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import load_script

kit = load_script("scripts/device_kit.py")


def roots() -> list[Requirement]:
    return [*kit.hubpub_requirements(), *map(Requirement, kit.EXTRA_ROOTS)]


def test_the_kit_carries_what_the_machine_lacks_and_nothing_torch_or_transformers_bring() -> None:
    found = kit.closure(roots(), kit.machine_packages())
    assert found.machine_conflicts == []
    for carried in ("llmcompressor", "compressed-tensors", "lm-eval", "pydantic", "pydantic-core", "datasets"):
        assert carried in found.pins, carried
    brought = ("torch", "transformers", "accelerate", "numpy", "tokenizers", "safetensors", "huggingface-hub")
    for name in (*brought, "filelock", "fsspec", "pyarrow", "jinja2", "click", "rich", "nvidia-ml-py"):
        assert name not in found.pins, name
    assert found.pins["llmcompressor"] == Version("0.14.0.1")
    assert found.pins["lm-eval"] == Version("0.4.13")


def test_every_carried_distribution_finds_each_need_in_the_kit_or_on_the_machine() -> None:
    """The closure is closed: walked again over the installed metadata of each pin, nothing is left out."""
    machine = kit.machine_packages()
    found = kit.closure(roots(), machine)
    unmet = []
    for name, version in found.pins.items():
        dist = metadata.distribution(name)
        assert Version(dist.version) == version
        for text in dist.requires or []:
            requirement = Requirement(text)
            need = canonicalize_name(requirement.name)
            if kit.applies(requirement) and need not in found.pins and need not in machine:
                unmet.append(f"{name} needs {requirement}")
    assert unmet == []


def test_a_requirement_the_machines_known_version_excludes_is_a_conflict() -> None:
    found = kit.closure([Requirement("torch>=2.12")], kit.machine_packages())
    assert found.machine_conflicts == ["hubpub needs torch>=2.12; the machine has torch 2.11.0"]
    assert found.pins == {}


def test_a_requirement_for_another_python_or_an_unasked_extra_is_not_followed() -> None:
    assert not kit.applies(Requirement('tomli; python_version < "3.11"'))
    assert not kit.applies(Requirement('aiohttp; extra == "http"'))
    assert kit.applies(Requirement('aiohttp; extra == "http"'), frozenset({"http"}))
    assert not kit.applies(Requirement('pywin32; sys_platform == "win32"'))


def write_wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any") -> Path:
    wheel = folder / f"{name}-{version}-{tag}.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
    return wheel


MACHINE = {"torch": Version("2.11.0"), "numpy": None}


def test_a_consistent_kit_has_no_problems(tmp_path: Path) -> None:
    write_wheel(tmp_path, "alpha", "1.0", ["beta>=2", "torch>=2.10", "numpy", 'gamma; extra == "more"'])
    write_wheel(tmp_path, "beta", "2.1", ['colorama; sys_platform == "win32"'], tag="cp312-cp312-manylinux_2_17_x86_64")
    assert kit.check_kit(tmp_path, MACHINE) == []


def test_the_kit_check_names_each_unmet_need(tmp_path: Path) -> None:
    write_wheel(tmp_path, "alpha", "1.0", ["beta>=3", "torch>=2.12", "missing-one"])
    write_wheel(tmp_path, "beta", "2.1", [])
    write_wheel(tmp_path, "gamma", "1.0", [], tag="cp311-cp311-manylinux_2_17_x86_64")
    write_wheel(tmp_path, "delta", "1.0", [], tag="py3-none-macosx_11_0_arm64")
    assert kit.check_kit(tmp_path, MACHINE) == [
        "delta-1.0-py3-none-macosx_11_0_arm64.whl does not run on CPython 3.12 manylinux x86_64",
        "gamma-1.0-cp311-cp311-manylinux_2_17_x86_64.whl does not run on CPython 3.12 manylinux x86_64",
        "alpha needs beta>=3; the kit has beta 2.1",
        "alpha needs torch>=2.12; the machine has torch 2.11.0",
        "alpha needs missing-one: neither in the kit nor on the machine",
    ]


def test_two_versions_of_one_distribution_are_refused(tmp_path: Path) -> None:
    write_wheel(tmp_path, "alpha", "1.0", [])
    write_wheel(tmp_path, "alpha", "1.1", [])
    assert kit.check_kit(tmp_path, MACHINE) == ["two wheels of alpha: 1.0 and 1.1"]


def test_a_kit_over_the_size_limit_fails_its_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_wheel(tmp_path, "alpha", "1.0", [])
    (tmp_path / "tokenizer.json").write_bytes(b"\0" * (kit.LIMIT_BYTES + 1))
    assert kit.check(tmp_path) == 1
    captured = capsys.readouterr()
    assert "1 wheels, 60.0 MiB in all (limit 60 MiB)" in captured.out
    assert "error: the kit is 60.0 MiB, over the 60 MiB limit" in captured.err


def test_pip_refuses_a_kit_wheel_built_for_another_python(tmp_path: Path) -> None:
    write_wheel(tmp_path, "alpha", "1.0", [], tag="cp311-cp311-manylinux_2_17_x86_64")
    refusal = kit.pip_refusal(tmp_path)
    assert refusal is not None and refusal.startswith("pip would not install the kit: ")
    assert "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl is not a supported wheel on this platform" in refusal
