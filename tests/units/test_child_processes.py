"""Child processes of the stages: placement arguments, peak memory bookkeeping, the warm interpreter pool.

No GPU here: every GPU below is a test double (a Placement naming CUDA devices, a simulated device count).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hubpub import warm
from hubpub.errors import CudaUnavailableError, GateError, StageError
from hubpub.manifest import StageResult
from hubpub.measure import measured, record_child_peaks
from hubpub.placement import CPU, Placement
from hubpub.stages import _child
from hubpub.stages._evaluate_child import cpu_model_args, gpu_load_kwargs
from hubpub.stages._verify_child import load_device
from hubpub.stages.card import gpu_peaks
from tests.conftest import children_module

GIB = 2**30
# Test doubles: placements as the resource plan would decide them for machines with one and with four GPUs.
ONE_GPU = Placement(gpu_budgets={0: 70 * GIB})
FOUR_GPUS = Placement(gpu_budgets={index: (60 + index) * GIB for index in range(4)})
TWO_GPUS_WITH_OFFLOAD = Placement(gpu_budgets={0: 40 * GIB, 1: 40 * GIB}, cpu_offload_bytes=200 * GIB)


def test_verify_child_loads_on_the_cpu_without_placement_arguments() -> None:
    assert load_device(CPU, cuda_problem=None) == "cpu"


def test_verify_child_never_falls_back_to_the_cpu_from_a_planned_gpu() -> None:
    with pytest.raises(CudaUnavailableError) as raised:
        load_device(ONE_GPU, cuda_problem="torch 2.13.0+cpu is a CPU-only build")
    message = str(raised.value)
    assert message.startswith("verify: the resource plan placed the model on GPUs, but CUDA is not usable")
    assert "torch 2.13.0+cpu is a CPU-only build" in message and "runner: {gpus: 0}" in message


def test_verify_child_loads_on_the_planned_gpus() -> None:
    # The explicit device map from the decompressed size: tests/resources/test_device_map.py.
    assert load_device(TWO_GPUS_WITH_OFFLOAD, cuda_problem=None) == "cuda"


def test_placement_travels_through_the_request_unchanged() -> None:
    for placement in (CPU, ONE_GPU, FOUR_GPUS, TWO_GPUS_WITH_OFFLOAD):
        assert Placement.from_request(json.loads(json.dumps(placement.as_request()))) == placement


def test_lm_eval_on_the_cpu_keeps_float32() -> None:
    assert cpu_model_args("/m") == {"pretrained": "/m", "dtype": "float32"}


def test_lm_eval_never_falls_back_to_the_cpu_from_a_planned_gpu() -> None:
    # On GPUs lm-eval gets a model loaded by the decompressed map: tests/resources/test_device_map.py.
    with pytest.raises(CudaUnavailableError, match=r"^evaluate: the resource plan placed the model on GPUs, but CUDA"):
        gpu_load_kwargs(ONE_GPU, "/m", device_count=0)


def test_a_stage_peak_is_the_largest_of_the_process_and_its_children() -> None:
    with measured() as outer:
        record_child_peaks({"peak_rss_mb": 10**6, "peak_gpu_mb": {"0": 500.0, "1": 20.0}})
        with measured() as inner:
            record_child_peaks({"peak_rss_mb": 5.0, "peak_gpu_mb": {"0": 700.0}})
        record_child_peaks({"peak_rss_mb": "not a number", "peak_gpu_mb": None})
    record_child_peaks({"peak_rss_mb": 10**9})  # outside any measurement: counted nowhere
    assert outer.peak_rss_mb == 10**6
    assert outer.rounded_gpu() == {"0": 700.0, "1": 20.0}
    assert inner.peak_gpu_mb == {"0": 700.0} and inner.peak_rss_mb > 5.0


def test_no_gpu_peaks_on_a_cpu_run() -> None:
    with measured() as measurement:
        record_child_peaks({"peak_rss_mb": 1.0, "peak_gpu_mb": None})
    assert measurement.peak_gpu_mb is None


def test_manifests_with_one_gpu_number_still_read() -> None:
    old = StageResult(stage="quantize", status="done", fingerprint="f", peak_gpu_mb=1024.0)  # type: ignore[arg-type]
    assert old.peak_gpu_mb == {"0": 1024.0}


def test_card_lists_gpu_peaks_per_stage_only_when_there_are_some() -> None:
    manifest = SimpleNamespace(
        stages={
            "quantize": StageResult(stage="quantize", status="done", fingerprint="f", peak_gpu_mb={"0": 2048.0}),
            "verify": StageResult(stage="verify", status="done", fingerprint="f"),
        }
    )
    assert gpu_peaks(manifest) == [{"stage": "quantize", "text": "cuda:0 2.15 GB"}]  # type: ignore[arg-type]


def test_child_reports_its_result_pid_and_peaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request, result = tmp_path / "request.json", tmp_path / "result.json"
    request.write_text(json.dumps({"x": 2}), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["child", str(request), str(result)])
    _child.serve(lambda asked: {"double": asked["x"] * 2})
    reported = json.loads(result.read_text(encoding="utf-8"))
    assert reported["double"] == 4 and isinstance(reported["pid"], int)
    assert reported["peak_rss_mb"] > 0 and "peak_gpu_mb" in reported


def test_child_errors_keep_their_class_and_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request, result = tmp_path / "request.json", tmp_path / "result.json"
    request.write_text("{}", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["child", str(request), str(result)])

    def gate(_: dict[str, Any]) -> dict[str, Any]:
        raise GateError("the ratio is too high")

    _child.serve(gate)
    assert json.loads(result.read_text(encoding="utf-8"))["error"] == {
        "type": "GateError",
        "message": "the ratio is too high",
    }
    assert _child._error_class("GateError") is GateError
    assert _child._error_class("SpecError") is StageError
    assert _child._error_class("os") is StageError


def test_each_child_is_a_fork_of_one_server_with_the_callers_environment(
    light_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = children_module(
        tmp_path,
        "import os, sys\nprint(os.getpid(), os.getppid(), os.environ.get('PROBE'), os.getcwd(), sys.argv[1:])\n"
        "sys.exit(int(sys.argv[1]))\n",
    )
    monkeypatch.chdir(tmp_path)
    first, second = warm.WarmInterpreter(), warm.WarmInterpreter()
    assert first.run(module, ["0", "a"], timeout=60) == 0
    assert second.run(module, ["3"], timeout=60) == 3
    first_pid, first_parent, probe, cwd, argv = first.output().split(maxsplit=4)
    second_pid, second_parent = second.output().split()[:2]
    assert first_parent == second_parent != str(os.getpid())  # one server, forked twice
    assert first_pid != second_pid
    assert (probe, cwd, argv.strip()) == ("None", str(tmp_path), "['0', 'a']")
    monkeypatch.setenv("PROBE", "changed")
    third = warm.WarmInterpreter()
    assert third.run(module, ["0"], timeout=60) == 0
    assert third.output().split()[2] == "changed"
    assert third.output().split()[1] != first_parent  # another environment: a new server
    for interpreter in (first, second, third):
        interpreter.close()


def test_a_child_past_its_time_is_killed_and_the_server_serves_on(light_server: None, tmp_path: Path) -> None:
    module = children_module(
        tmp_path, "import sys, time\nprint('started', flush=True)\ntime.sleep(float(sys.argv[1]))\n"
    )
    slow = warm.WarmInterpreter()
    with pytest.raises(subprocess.TimeoutExpired):
        slow.run(module, ["60"], timeout=2)
    assert slow.output().strip() == "started"
    quick = warm.WarmInterpreter()
    assert quick.run(module, ["0"], timeout=30) == 0
    slow.close()
    quick.close()


def test_a_crashing_child_reports_its_traceback(light_server: None, tmp_path: Path) -> None:
    module = children_module(tmp_path, "raise ValueError('broken on purpose')\n")
    child = warm.WarmInterpreter()
    assert child.run(module, [], timeout=30) == 1
    assert "ValueError: broken on purpose" in child.output()
    child.close()


def test_a_script_runs_in_a_clean_interpreter_and_the_stages_server_is_forked_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card snippet's server has imported torch and transformers, none of llm-compressor, lm-eval or hubpub's
    stages; the stages server is its child, with those on top."""
    monkeypatch.setattr(warm, "_pair", None)
    probe = (
        "import os, sys\n"
        "print(sorted(name for name in ('torch', 'transformers', 'llmcompressor', 'lm_eval', 'hubpub.stages')"
        " if name in sys.modules))\n"
        "print(os.getppid(), open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    )
    script = tmp_path / "snippet.py"
    script.write_text(
        f"{probe}print('hello from', os.getcwd())\nprint('to the log', file=sys.stderr)\nsys.exit('stopped')\n",
        encoding="utf-8",
    )
    package = children_module(tmp_path, probe)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    printed = tmp_path / "stdout.txt"
    snippet, stage = warm.WarmInterpreter("scripts"), warm.WarmInterpreter("stages")
    try:
        code = snippet.run(
            "hubpub.peaks", [str(tmp_path / "peaks.json"), str(script)], 120, stdout=printed, cwd=tmp_path
        )
        assert stage.run(package, [], 120) == 0
        log, stage_output = snippet.output(), stage.output().splitlines()
    finally:
        snippet.close()
        stage.close()
        assert warm._pair is not None
        warm._pair.close()
    assert code == 1
    modules, parents, hello = printed.read_text(encoding="utf-8").splitlines()
    assert (modules, hello) == ("['torch', 'transformers']", f"hello from {tmp_path}")
    assert log.split() == ["to", "the", "log", "stopped"]
    assert json.loads((tmp_path / "peaks.json").read_text(encoding="utf-8"))["peak_rss_mb"] > 0
    assert stage_output[0] == "['llmcompressor', 'lm_eval', 'torch', 'transformers']"
    scripts_server = parents.split()[0]
    assert stage_output[1].split()[1] == scripts_server  # the stages server's parent is the scripts server


def test_a_request_whose_child_never_started_in_time_leaves_no_reply_for_the_next(
    light_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pid reply of a request that timed out before it came must not answer the next request: the pair
    ends and the next request gets fresh servers (once read as the next child's, its exit code was wrong)."""
    (tmp_path / "slowimport.py").write_text("import time\ntime.sleep(4)\n", encoding="utf-8")
    monkeypatch.setattr(warm, "PRELOAD", ("slowimport",))
    module = children_module(tmp_path, "import sys\nprint('ran', sys.argv[1])\nsys.exit(int(sys.argv[1]))\n")
    late = warm.WarmInterpreter()
    with pytest.raises(subprocess.TimeoutExpired):
        late.run(module, ["3"], timeout=0.5)
    first_pair = warm._pair
    assert first_pair is not None and not first_pair.alive
    on_time = warm.WarmInterpreter()
    assert on_time.run(module, ["0"], timeout=60) == 0
    assert on_time.output().strip() == "ran 0"
    assert warm._pair is not first_pair
    late.close()
    on_time.close()
