"""Build `.device-kit/`: what a GPU machine with no package registry needs to run hubpub and bench/gpu_smoke.py.

The GPU machines this project is sometimes lent have Python 3.12, a CUDA build of torch and many packages
(scripts/device_machine_packages.txt), reach no registry, and take at most 64 MiB along with the working tree.
The kit holds, for CPython 3.12 on manylinux x86_64:

- a wheel of every distribution hubpub needs there that the machine lacks: the closure of hubpub's requirements
  over the distributions installed in this .venv (their versions pinned), minus the machine's packages;
- a wheel of hubpub built from this tree;
- the SmolLM2 tokenizer, converted from the demo GGUF (which is too large to travel), for the smoke's models;
- install.sh (scripts/device_install.sh), which installs the wheels beside the machine's own torch.

Run with the .venv's Python (`make device-kit`); PyPI must be reachable. `--check` only checks an existing kit.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / ".device-kit"
MACHINE_LIST = Path(__file__).resolve().parent / "device_machine_packages.txt"
INSTALL_SCRIPT = Path(__file__).resolve().parent / "device_install.sh"
DEMO_GGUF = ROOT / ".cache" / "demo-models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENIZER_FOLDER = "smollm2-tokenizer"
LIMIT_BYTES = 60 * 2**20
# Besides hubpub's own requirements; the issue names them for the kit.
EXTRA_ROOTS = ("pydantic", "pydantic-core")
# The target machine: CPython 3.12 on Linux x86_64, as pip and requirement markers see it.
MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


class KitError(Exception):
    """The kit cannot be built or is not consistent; the message says what to do."""


def machine_packages(path: Path = MACHINE_LIST) -> dict[str, Version | None]:
    """The machine's packages by canonical name, with their version where it is known."""
    packages: dict[str, Version | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            packages[canonicalize_name(name)] = Version(version) if version else None
    return packages


def applies(requirement: Requirement, extras: frozenset[str] = frozenset()) -> bool:
    """Whether a requirement holds on the target machine, for a distribution installed with `extras`."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**MARKERS, "extra": extra}) for extra in ({""} | extras))


def hubpub_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """hubpub's runtime requirements as this tree declares them (not the metadata of an older install)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project["dependencies"]]


@dataclass
class Closure:
    """The distributions to carry (name -> pinned version) and why each is there."""

    pins: dict[str, Version] = field(default_factory=dict)
    needed_by: dict[str, str] = field(default_factory=dict)
    machine_conflicts: list[str] = field(default_factory=list)


def closure(
    roots: list[Requirement],
    machine: dict[str, Version | None],
    installed: dict[str, metadata.Distribution] | None = None,
) -> Closure:
    """Every distribution the roots need (with the extras they name) that the machine lacks, pinned to the version
    installed here; a machine package whose known version a requirement excludes is reported as a conflict."""
    if installed is None:
        installed = {canonicalize_name(dist.metadata["Name"]): dist for dist in metadata.distributions()}
    found = Closure()
    queue: list[tuple[Requirement, str]] = [(requirement, "hubpub") for requirement in roots]
    expanded: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, parent = queue.pop(0)
        if not applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        if name in machine:
            version = machine[name]
            if version is not None and not requirement.specifier.contains(version, prereleases=True):
                found.machine_conflicts.append(f"{parent} needs {requirement}; the machine has {name} {version}")
        elif name == "hubpub":
            continue
        else:
            dist = installed.get(name)
            if dist is None:
                raise KitError(f"{parent} needs {requirement}, which is not installed in this environment to pin")
            version = Version(dist.version)
            if not requirement.specifier.contains(version, prereleases=True):
                raise KitError(f"{parent} needs {requirement}; this environment has {name} {version}")
            found.pins.setdefault(name, version)
            found.needed_by.setdefault(name, parent)
        extras = frozenset(requirement.extras)
        if (name, extras) in expanded or name in machine:
            continue  # a machine package's own needs are the machine's
        expanded.add((name, extras))
        dist = installed[name]
        for text in dist.requires or []:
            child = Requirement(text)
            if applies(child, extras):
                queue.append((child, name))
    return found


def wheel_requirements(wheel: Path) -> tuple[str, Version, list[Requirement]]:
    """A wheel's distribution name, version and requirements, from its METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(archive.read(member).decode("utf-8"))
    requires = [Requirement(text) for text in headers.get_all("Requires-Dist") or []]
    return canonicalize_name(headers["Name"]), Version(headers["Version"]), requires


def check_kit(folder: Path, machine: dict[str, Version | None]) -> list[str]:
    """What is wrong with the kit in `folder`: every requirement of every wheel (Python 3.12, Linux x86_64, no
    extras) must be met by one wheel of the kit or a package of the machine; one wheel per distribution."""
    wheels: dict[str, Version] = {}
    problems: list[str] = []
    requirements: list[tuple[str, Requirement]] = []
    for wheel in sorted(folder.glob("*.whl")):
        name, version, requires = wheel_requirements(wheel)
        if name in wheels:
            problems.append(f"two wheels of {name}: {wheels[name]} and {version}")
        wheels[name] = version
        requirements += [(name, requirement) for requirement in requires]
        tags = parse_wheel_filename(wheel.name)[3]
        if not any(_runs_on_target(str(tag.interpreter), str(tag.abi), str(tag.platform)) for tag in tags):
            problems.append(f"{wheel.name} does not run on CPython 3.12 manylinux x86_64")
    for owner, requirement in requirements:
        if not applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        if name in wheels:
            if not requirement.specifier.contains(wheels[name], prereleases=True):
                problems.append(f"{owner} needs {requirement}; the kit has {name} {wheels[name]}")
        elif name in machine:
            known = machine[name]
            if known is not None and not requirement.specifier.contains(known, prereleases=True):
                problems.append(f"{owner} needs {requirement}; the machine has {name} {known}")
        else:
            problems.append(f"{owner} needs {requirement}: neither in the kit nor on the machine")
    return problems


def _runs_on_target(interpreter: str, abi: str, platform: str) -> bool:
    python = interpreter in ("py3", "cp312", "py312") or (interpreter.startswith("cp3") and abi == "abi3")
    return python and (platform == "any" or (platform.startswith("manylinux") and platform.endswith("x86_64")))


def kit_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def download(pins: dict[str, Version], folder: Path) -> list[str]:
    """The wheels of `pins` from PyPI; a distribution published only as a source archive (rouge-score,
    sqlitedict, word2number) is built into a wheel here, which the kit check then requires to be pure Python.
    Returns the names built from source."""
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    fetch += ["--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder)]
    built = []
    for name, version in sorted(pins.items()):
        pin = f"{name}=={version}"
        if subprocess.run([*fetch, pin], capture_output=True).returncode != 0:
            build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder), pin]
            subprocess.run(build, check=True)
            built.append(pin)
    return built


def build_hubpub_wheel(folder: Path) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-w", str(folder), str(ROOT)], check=True)
    shutil.rmtree(ROOT / "build", ignore_errors=True)


def convert_tokenizer(gguf: Path, target: Path) -> None:
    """SmolLM2's tokenizer files (one 49,152-token vocabulary across its sizes), from the demo GGUF."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(target)


def build(folder: Path) -> int:
    machine = machine_packages()
    found = closure([*hubpub_requirements(), *map(Requirement, EXTRA_ROOTS)], machine)
    if found.machine_conflicts:
        raise KitError("the machine's packages do not meet hubpub's needs:\n  " + "\n  ".join(found.machine_conflicts))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    built = download(found.pins, folder)
    if built:
        print(f"built from source archives (no wheel on PyPI): {', '.join(built)}")
    build_hubpub_wheel(folder)
    if not DEMO_GGUF.is_file():
        raise KitError(f"{DEMO_GGUF} is missing: run `python scripts/fetch_demo_model.py` first")
    convert_tokenizer(DEMO_GGUF, folder / TOKENIZER_FOLDER)
    shutil.copyfile(INSTALL_SCRIPT, folder / "install.sh")
    (folder / "install.sh").chmod(0o755)
    (folder / "PINS.txt").write_text(
        "".join(f"{name}=={version}  # for {found.needed_by[name]}\n" for name, version in sorted(found.pins.items())),
        encoding="utf-8",
    )
    return check(folder)


def pip_refusal(folder: Path) -> str | None:
    """What pip says when asked to install every wheel of the kit for CPython 3.12 on manylinux x86_64 without an
    index (a dry run: nothing is installed), or None when it would."""
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index", "--no-deps"]
    command += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", *platforms]
    with tempfile.TemporaryDirectory() as target:
        command += ["--target", target, "--find-links", str(folder), *map(str, sorted(folder.glob("*.whl")))]
        done = subprocess.run(command, capture_output=True, text=True)
    return None if done.returncode == 0 else f"pip would not install the kit: {done.stderr.strip()[-1500:]}"


def check(folder: Path) -> int:
    problems = check_kit(folder, machine_packages())
    refusal = pip_refusal(folder)
    if refusal is not None:
        problems.append(refusal)
    total = kit_bytes(folder)
    wheels = len(list(folder.glob("*.whl")))
    print(f"{folder}: {wheels} wheels, {total / 2**20:.1f} MiB in all (limit {LIMIT_BYTES / 2**20:.0f} MiB)")
    if total > LIMIT_BYTES:
        problems.append(f"the kit is {total / 2**20:.1f} MiB, over the {LIMIT_BYTES / 2**20:.0f} MiB limit")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", type=Path, default=KIT, help="the kit folder (default .device-kit)")
    parser.add_argument("--check", action="store_true", help="only check an existing kit")
    args = parser.parse_args()
    try:
        sys.exit(check(args.kit) if args.check else build(args.kit))
    except (KitError, subprocess.CalledProcessError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
