"""A release killed during quantization finishes correctly when started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hubpub import api
from hubpub.hashing import sha256_file
from tests.conftest import write_spec


def _release_command(spec: Path, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "hubpub", "release", str(spec), "--no-push", "--workdir", str(workdir), "--json"]


def test_killed_during_quantize_then_rerun_gives_the_same_staged_result(tiny_llama: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    workdir = tmp_path / "killed"
    process = subprocess.Popen(_release_command(spec, workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(workdir.glob("releases/*/stages/quantize-*")):
        assert process.poll() is None, "the release ended before quantization started"
        assert time.monotonic() < deadline, "quantization never started"
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    (quantize_dir,) = workdir.glob("releases/*/stages/quantize-*")
    assert not (quantize_dir / "result.json").exists()
    assert not (workdir / "releases" / "test__tiny-w4a16" / "staged").exists()

    # -X importtime lists this process's imports on stderr (not its children's): the models stay in children.
    resumed = subprocess.run(
        [sys.executable, "-X", "importtime", *_release_command(spec, workdir)[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in resumed.stderr.splitlines() if line.startswith("import time:")}
    assert "llmcompressor" not in imported and "lm_eval" not in imported
    (outcome,) = api.release([spec], workdir=workdir, push=False)
    assert outcome.stages["quantize"].status == "cached"

    (clean,) = api.release([spec], workdir=tmp_path / "clean", push=False)
    for name in ("model.safetensors", "config.json", "recipe.yaml", "tokenizer.json"):
        assert sha256_file(outcome.staged_dir / name) == sha256_file(clean.staged_dir / name), name
