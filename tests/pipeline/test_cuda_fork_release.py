"""A real `hubpub release --no-push` of the tiny Llama, with torch made to look like a CUDA build with one device.

The probe (tests/cuda_probe/sitecustomize.py, a test double for the GPU we do not have) is loaded by every
interpreter of the run: hubpub's CLI and its fork servers, whose forked children inherit it. It records each
question for CUDA's devices and each fork. On a CUDA build, a process that asked the CUDA runtime
(`torch._C._cuda_getDeviceCount`) and then forked leaves a child whose first CUDA call fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, write_spec
from tests.units.test_cuda_fork import PROBE, probe_records


def test_a_release_has_no_process_that_asks_cuda_for_its_devices_and_then_forks(
    tiny_llama: Path, tmp_path: Path
) -> None:
    records = tmp_path / "probe"
    records.mkdir()
    spec = write_spec(tmp_path, tiny_llama)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROBE), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "HUBPUB_TEST_CUDA_PROBE": str(records),
    }
    workdir = tmp_path / "work"
    command = [sys.executable, "-m", "hubpub", "release", str(spec), "--no-push", "--workdir", str(workdir)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr

    found = probe_records(records)
    forks = [record for record in found if record["kind"] == "fork"]
    assert [fork for fork in forks if fork["parent_poisoned"]] == []
    servers = {fork["ppid"] for fork in forks}
    by_server = [fork for fork in forks if fork["forked_by"] == "_answer"]
    # The scripts server forked the stages server; the stages server forked quantize and verify, the scripts
    # server the card's snippet.
    assert len([fork for fork in forks if fork["forked_by"] == "_serve"]) == 1 and len(by_server) >= 3
    asked_in_servers = [record for record in found if record["kind"] != "fork" and record["pid"] in servers]
    assert [record["kind"] for record in asked_in_servers] == ["nvml"]
    assert "llmcompressor/utils/dev.py:" in asked_in_servers[0]["asker"]  # get_main_device, at import
    children = {fork["pid"] for fork in by_server}
    assert {record["pid"] for record in found if record["kind"] == "runtime"} <= children
    (release,) = workdir.glob("releases/*")
    verify = json.loads(next(release.glob("stages/verify-*/result.json")).read_text(encoding="utf-8"))
    assert verify["status"] == "done"
