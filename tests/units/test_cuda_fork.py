"""CUDA in the fork servers' children, under a probe that makes this CPU build of torch look like a CUDA build.

The probe (tests/cuda_probe/sitecustomize.py) is a test double for the GPU we do not have: it records every
question for CUDA's devices (through the CUDA runtime, which poisons later forks, or through NVML) and every
fork, and simulates torch's bad-fork flag in children forked from a process that asked the poisoning way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hubpub import warm
from hubpub.errors import StageError
from hubpub.stages._child import run_child
from tests.conftest import children_module

PROBE = Path(__file__).resolve().parent.parent / "cuda_probe"
# What llm-compressor's import does (utils/dev.py get_main_device) and then a child's own question.
ASKS_AT_IMPORT = "import torch\nASKED = torch.accelerator.is_available()\n"


def probe_records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


@pytest.fixture
def probed(light_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fork servers that import torch and a module asking for an accelerator at import, under the probe."""
    records = tmp_path / "probe"
    records.mkdir()
    (tmp_path / "asks_at_import.py").write_text(ASKS_AT_IMPORT, encoding="utf-8")
    monkeypatch.setattr(warm, "SCRIPT_PRELOAD", ("torch",))
    monkeypatch.setattr(warm, "PRELOAD", ("asks_at_import",))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PROBE), os.environ["PYTHONPATH"]]))
    monkeypatch.setenv("HUBPUB_TEST_CUDA_PROBE", str(records))
    return records


def child_reporting_cuda(tmp_path: Path) -> str:
    return children_module(
        tmp_path,
        "import json, sys\nimport torch\nfrom hubpub.stages._child import serve\n"
        "serve(lambda request: {'available': torch.cuda.is_available()})\n",
    )


def test_the_servers_answer_an_accelerator_question_through_nvml_and_children_ask_cuda_themselves(
    probed: Path, tmp_path: Path
) -> None:
    result = run_child(child_reporting_cuda(tmp_path), {}, tmp_path, "probe", what="probing", timeout=120)
    records = probe_records(probed)
    forks = [record for record in records if record["kind"] == "fork"]
    stages_server = next(fork["pid"] for fork in forks if fork["forked_by"] == "_serve")
    asked = {(record["pid"], record["kind"]) for record in records if record["kind"] != "fork"}
    assert (stages_server, "nvml") in asked  # the import's question was asked, and answered by NVML
    assert not any(pid == stages_server for pid, kind in asked if kind == "runtime")
    assert [fork["parent_poisoned"] for fork in forks] == [False, False]
    # The child asks CUDA's runtime itself (here it sees the CPU again), in its own unpoisoned process.
    assert (result["pid"], "runtime") in asked and result["available"] is False


def test_where_nvml_cannot_answer_the_servers_still_never_ask_the_cuda_runtime(
    probed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MIG devices named in CUDA_VISIBLE_DEVICES: torch's NVML count gives up and falls back on the runtime."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4b3ba3a4-a9e9-5b6c-a8b3-6a2f2b1e5c01")
    result = run_child(child_reporting_cuda(tmp_path), {}, tmp_path, "probe", what="probing", timeout=120)
    records = probe_records(probed)
    forks = [record for record in records if record["kind"] == "fork"]
    servers = {fork["ppid"] for fork in forks}
    assert not [record for record in records if record["kind"] == "runtime" and record["pid"] in servers]
    assert [fork["parent_poisoned"] for fork in forks] == [False, False]
    runtime = [record for record in records if record["kind"] == "runtime"]
    assert {record["pid"] for record in runtime} == {result["pid"]}  # the child has the runtime's count back


@pytest.mark.parametrize("kind", ["stages", "scripts"])
def test_a_child_forked_from_a_poisoned_server_stops_naming_cuda_and_the_cause(
    probed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: warm.Kind
) -> None:
    monkeypatch.setenv("HUBPUB_TEST_CUDA_PROBE_POISONED", "1")  # as if each server had asked the poisoning way
    module = children_module(tmp_path, "print('the child ran')\n")
    child = warm.WarmInterpreter(kind)
    try:
        code = child.run(module, [], timeout=120)
        output = child.output()
    finally:
        child.close()
    assert code == 1
    assert "the child ran" not in output
    assert output.strip().splitlines()[-1].startswith("CUDA cannot be used in this child process (pid ")
    assert "had asked CUDA for its devices before forking" in output and "rather than run on the CPU" in output


def test_a_poisoned_stage_child_fails_its_stage_with_that_message(
    probed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPUB_TEST_CUDA_PROBE_POISONED", "1")
    with pytest.raises(StageError) as failed:
        run_child(child_reporting_cuda(tmp_path), {}, tmp_path, "probe", what="probing", timeout=120)
    assert "probing failed" in str(failed.value)
    assert "CUDA cannot be used in this child process" in str(failed.value)
    assert not (tmp_path / "probe-result.json").exists()
