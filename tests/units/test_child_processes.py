"""Child processes of the stages: placement arguments, peak memory bookkeeping, the warm interpreter pool.

No GPU here: every GPU below is a test double (a Placement naming CUDA devices, a simulated device count).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from hubpub import warm
from hubpub.errors import GateError, StageError
from hubpub.manifest import StageResult
from hubpub.measure import measured, record_child_peaks
from hubpub.placement import CPU, Placement
from hubpub.stages import _child
from hubpub.stages._evaluate_child import hf_model_args
from hubpub.stages._verify_child import load_arguments
from hubpub.stages.card import gpu_peaks

GIB = 2**30
# Test doubles: placements as the resource plan would decide them for machines with one and with four GPUs.
ONE_GPU = Placement(gpu_budgets={0: 70 * GIB})
FOUR_GPUS = Placement(gpu_budgets={index: (60 + index) * GIB for index in range(4)})
TWO_GPUS_WITH_OFFLOAD = Placement(gpu_budgets={0: 40 * GIB, 1: 40 * GIB}, cpu_offload_bytes=200 * GIB)


def test_verify_child_loads_on_the_cpu_without_placement_arguments() -> None:
    assert load_arguments(CPU, cuda_available=True) == ("cpu", {})
    assert load_arguments(ONE_GPU, cuda_available=False) == ("cpu", {})


def test_verify_child_spreads_over_the_planned_gpus() -> None:
    assert load_arguments(ONE_GPU, cuda_available=True) == ("cuda", {"device_map": "auto", "max_memory": {0: 70 * GIB}})
    device, kwargs = load_arguments(TWO_GPUS_WITH_OFFLOAD, cuda_available=True)
    assert device == "cuda"
    assert kwargs == {"device_map": "auto", "max_memory": {0: 40 * GIB, 1: 40 * GIB, "cpu": 200 * GIB}}


def test_placement_travels_through_the_request_unchanged() -> None:
    for placement in (CPU, ONE_GPU, FOUR_GPUS, TWO_GPUS_WITH_OFFLOAD):
        assert Placement.from_request(json.loads(json.dumps(placement.as_request()))) == placement


def test_lm_eval_on_the_cpu_keeps_float32() -> None:
    assert hf_model_args(CPU, "/m", device_count=0) == ({"pretrained": "/m", "dtype": "float32"}, "cpu")
    assert hf_model_args(ONE_GPU, "/m", device_count=0) == ({"pretrained": "/m", "dtype": "float32"}, "cpu")


def test_lm_eval_on_one_gpu_uses_that_device() -> None:
    assert hf_model_args(Placement(gpu_budgets={1: GIB}), "/m", device_count=2) == (
        {"pretrained": "/m", "dtype": "auto"},
        "cuda:1",
    )


def test_lm_eval_over_several_gpus_parallelizes_within_the_smallest_budget() -> None:
    args, device = hf_model_args(FOUR_GPUS, "/m", device_count=4)
    assert device == "cuda"
    assert args == {"pretrained": "/m", "dtype": "auto", "parallelize": True, "max_memory_per_gpu": 60 * GIB}
    args, _ = hf_model_args(TWO_GPUS_WITH_OFFLOAD, "/m", device_count=2)
    assert args["parallelize"] is True and args["max_cpu_memory"] == 200 * GIB


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


class _FakeInterpreter:
    """Test double of WarmInterpreter: records its preloads, starts no process."""

    started: ClassVar[list[tuple[str, ...]]] = []

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.preload = tuple(preload)
        self.closed = False
        _FakeInterpreter.started.append(self.preload)

    def close(self) -> None:
        self.closed = True


def test_warm_pool_starts_the_next_child_while_the_current_one_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm, "WarmInterpreter", _FakeInterpreter)
    _FakeInterpreter.started = []
    order = ("resolve", "preflight", "quantize", "verify", "vllm", "evaluate")
    pool = warm.WarmPool(order, {"quantize": ("llmcompressor",), "verify": (), "evaluate": ("lm_eval",)})
    pool.begin("resolve")  # no child of its own: the quantize child's interpreter starts behind it
    assert _FakeInterpreter.started == [("llmcompressor",)]
    pool.begin("preflight")
    pool.begin("quantize")
    quantizer = pool.take()
    assert quantizer.preload == ("llmcompressor",)  # type: ignore[attr-defined]
    assert _FakeInterpreter.started == [("llmcompressor",), ()]  # verify's, started while quantize runs
    pool.begin("verify")
    pool.take()
    pool.begin("vllm")
    pool.begin("evaluate")
    pool.take()
    assert _FakeInterpreter.started == [("llmcompressor",), (), ("lm_eval",)]
    pool.close()


def test_warm_pool_leaves_nothing_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm, "WarmInterpreter", _FakeInterpreter)
    _FakeInterpreter.started = []
    pool = warm.WarmPool(("resolve", "quantize", "verify"), {"quantize": (), "verify": ()})
    pool.begin("resolve")
    (spare,) = [item for item in [pool._spare] if item is not None]
    pool.close()
    assert spare.closed  # type: ignore[attr-defined]
    pool.begin("verify")
    pool.take()
    assert pool._spare is None  # nothing after verify needs one
