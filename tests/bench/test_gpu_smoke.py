"""bench/gpu_smoke.py. Its --dry-run: every step of the GPU smoke run on this CPU, so the script is proven before the
first GPU machine runs it. The fork step runs hubpub's real fork servers under the CUDA probe double
(tests/cuda_probe); the releases are real `hubpub release --no-push` runs of a tiny random model. Its report: the
section of docs/benchmarks.md written from a GPU run's step JSONs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, load_script

SMOKE = REPO_ROOT / "bench" / "gpu_smoke.py"
# The whole dry run takes 4-5 minutes on a small shared CPU; the W8A8 release repeats the W4A16 one's path with
# another scheme (tests/pipeline covers W8A8 releases), so the test leaves it out.
STEPS = ["env", "fork", "release-w4a16", "peaks", "placement", "parallelize"]


def smoke(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SMOKE), "--dry-run", "--out", str(out), "--work", str(tmp_path / "work"), *args],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=REPO_ROOT,
        env={key: value for key, value in os.environ.items() if key != "OUT"},
    )
    reports = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in out.glob("*.json")}
    return done, reports


@pytest.mark.model
def test_the_dry_run_passes_every_step_and_writes_one_json_each(demo_model: Path, tmp_path: Path) -> None:
    done, reports = smoke(tmp_path, "--only", *STEPS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(reports) == set(STEPS)
    failed = {name: report["error"] for name, report in reports.items() if not report["ok"]}
    assert failed == {}
    for name, report in reports.items():
        assert report["step"] == name and report["dry_run"] is True
        assert 0 < report["seconds"] <= report["budget_s"]
    assert "6/6 steps ok" in done.stdout

    environment = reports["env"]["measurements"]
    assert environment["import_failed"] == {}
    assert {"hubpub", "llmcompressor", "compressed_tensors", "lm_eval"} <= set(environment["imported"])

    fork = reports["fork"]["measurements"]
    assert fork["probe"]["forks"] >= 3  # the stages server and one child of each server
    assert fork["probe"]["poisoned_forks"] == [] and fork["probe"]["servers_asking_the_cuda_runtime"] == []
    assert fork["probe"]["servers_asking_nvml"]  # llm-compressor's import asked, NVML answered
    assert fork["children"]["stages"]["llmcompressor_loaded"] is True
    assert fork["children"]["scripts"]["llmcompressor_loaded"] is False
    assert not fork["children"]["stages"]["bad_fork"] and not fork["children"]["scripts"]["bad_fork"]

    release = reports["release-w4a16"]["measurements"]
    assert release["scheme"] == "W4A16" and release["device"] == "cpu"
    assert release["recipe_modifiers"] == ["GPTQModifier"]
    assert {release["stages"][stage]["status"] for stage in ("quantize", "verify", "evaluate", "card")} == {"done"}
    assert release["stages"]["vllm"]["status"] == "skipped"
    assert release["perplexity"]["ratio"] < 1.5
    assert len(release["generations"][0].split()) >= 2  # the random model counts upwards: no degenerate answer
    assert {row["task"] for row in release["evaluation"]} == {"demo_capitals"}

    peaks = reports["peaks"]["measurements"]
    assert peaks["release-w8a8"] == {"skipped": "needs the output of step release-w8a8, which did not finish"}
    stages = peaks["release-w4a16"]["stages"]
    assert {"quantize", "verify", "evaluate"} <= set(stages)
    assert all(row["measured_gpu_mb"] == {} and row["planned_gpu_mb"] == 0 for row in stages.values())
    assert stages["quantize"]["measured_rss_mb"] > 0 and stages["quantize"]["planned_ram_mb"] > 0

    placement = reports["placement"]["measurements"]
    assert placement["packed_bytes"] < placement["budget_bytes"] < placement["decompressed_bytes"]
    assert placement["first_forward"] == "ok"
    assert placement["device_map_from"] == "hubpub.device_map (decompressed sizes)"
    assert set(placement["modules_per_device"]) == {"cpu", "disk"}  # the budget holds part of the model only

    parallelize = reports["parallelize"]["measurements"]
    assert parallelize["devices_in_map"] == ["0", "cpu"]
    assert parallelize["scores"]["demo_capitals"]["sample_len"] == 8


@pytest.mark.model
def test_a_failing_step_hides_none_of_the_others(demo_model: Path, tmp_path: Path) -> None:
    """Without the W4A16 release, the steps that need it fail with that reason; the others still run."""
    done, reports = smoke(tmp_path, "--only", "placement", "env", "peaks")
    assert done.returncode == 1
    assert set(reports) == {"placement", "env", "peaks"}
    assert reports["env"]["ok"] is True
    assert reports["placement"]["ok"] is False
    assert reports["placement"]["error"] == "needs the output of step release-w4a16, which did not finish"
    assert reports["peaks"]["error"] == "no release finished, so there is nothing to compare"
    assert "1/3 steps ok" in done.stdout


def step_json(folder: Path, step: str, *, ok: bool, dry_run: bool, error: str | None = None, **measured: Any) -> None:
    report = {"step": step, "ok": ok, "error": error, "seconds": 12.5, "budget_s": 45, "dry_run": dry_run}
    (folder / f"{step}.json").write_text(json.dumps({**report, "measurements": measured}), encoding="utf-8")


def test_the_report_renders_a_gpu_runs_steps_into_the_benchmarks_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import report

    benchmarks = tmp_path / "benchmarks.md"
    monkeypatch.setattr(report, "BENCHMARKS", benchmarks)
    runs = tmp_path / "runs"
    runs.mkdir()
    step_json(runs, "placement", ok=False, dry_run=False, error="GPU 0 held 3 bytes | over\nits budget")
    step_json(runs, "env", ok=True, dry_run=False, gpu={"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.2})
    load_script("bench/gpu_smoke.py").report(runs)
    text = benchmarks.read_text(encoding="utf-8")
    assert "## GPU smoke (bench/gpu_smoke.py) on NVIDIA H100 80GB HBM3" in text
    assert "| env | ok | 12.5 (45) |  |\n| placement | failed | 12.5 (45) | GPU 0 held 3 bytes / over |" in text
    assert text.count("<!-- bench:gpu_smoke -->") == 1


def test_the_report_refuses_a_dry_runs_steps(tmp_path: Path) -> None:
    step_json(tmp_path, "env", ok=True, dry_run=True)
    done = subprocess.run(
        [sys.executable, str(SMOKE), "--report-from", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path} holds no GPU run's step JSONs (a dry run's are not reported)"


def test_a_step_past_its_budget_is_killed_and_the_next_one_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smoke_module = load_script("bench/gpu_smoke.py")
    monkeypatch.setitem(smoke_module.STEPS, "env", smoke_module.Step(smoke_module.env, gpu_s=1, dry_s=1))
    options = smoke_module.Options(dry_run=True, work=tmp_path / "work")
    reports = smoke_module.drive(["env", "peaks"], options, tmp_path / "out")
    assert [(report["step"], report["ok"], report["error"]) for report in reports] == [
        ("env", False, "timed out after its budget of 1 s"),
        ("peaks", False, "no release finished, so there is nothing to compare"),
    ]
    written = json.loads((tmp_path / "out" / "env.json").read_text(encoding="utf-8"))
    assert written["error"] == "timed out after its budget of 1 s" and 1 <= written["seconds"] < 30
    assert not (tmp_path / "work" / "env.result.json").exists()  # killed before it could write a result
