"""`hubpub plan` shows each stage's resources; `hubpub release` refuses a runner too small before any download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.resources.shapes import LLAMA_3_1_70B

SMALL_RUNNER = "runner:\n  gpus: 1\n  gpu_memory_gb: 24\n  ram_gb: 64\n  disk_gb: 100\n"


def _spec(folder: Path, runner: str) -> Path:
    """A 70B-shaped base in a local folder that holds config.json only, no weights."""
    model = folder / "llama-70b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_3_1_70B), encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(
        f"base_model: meta-llama/Llama-3.1-70B-Instruct\nsource:\n  path: {model}\nrepo_id: test/llama-70b-w4a16\n"
        f"scheme: W4A16\nversion: 1.0.0\n{runner}",
        encoding="utf-8",
    )
    return spec


def test_plan_shows_every_stage_against_the_declared_runner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path, SMALL_RUNNER)
    code, out, err = run_cli(["plan", "--json", str(spec)], capsys)
    assert code == 0, err
    (plan,) = json.loads(out)
    resources = plan["resources"]
    assert resources["estimable"] and resources["machine"].startswith("declared: 1 × 24 GB GPU")
    assert resources["base_bytes"] == pytest.approx(141e9, rel=0.005)
    assert resources["checkpoint_bytes"] == pytest.approx(39.5e9, rel=0.005)
    stages = {stage["stage"]: stage for stage in resources["stages"]}
    assert list(stages) == ["resolve", "preflight", "quantize", "verify", "vllm", "card", "publish"]
    assert stages["quantize"]["placement"]["gpu_budgets"] == {"0": pytest.approx(20.99e9, rel=0.01)}
    assert "host RAM" in stages["quantize"]["refusal"]

    code, out, _ = run_cli(["plan", str(spec)], capsys)
    assert code == 0 and "141.11 B" not in out and "checkpoint 39.50 GB" in out and "quantize" in out


def test_plan_says_when_it_cannot_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path, "")
    config = tmp_path / "llama-70b" / "config.json"
    config.write_text(json.dumps({**LLAMA_3_1_70B, "num_local_experts": 8}), encoding="utf-8")
    code, out, err = run_cli(["plan", str(spec)], capsys)
    assert code == 0, err
    assert "not estimated" in out and "mixture of experts" in out


def test_a_plan_that_cannot_size_the_model_still_places_every_stage_on_the_gpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown shape on a runner with GPUs must not move the model-loading stages to the CPU (the placement
    an unestimable plan once gave every stage)."""
    spec = _spec(tmp_path, "runner:\n  gpus: 2\n  gpu_memory_gb: 80\n")
    config = tmp_path / "llama-70b" / "config.json"
    config.write_text(json.dumps({**LLAMA_3_1_70B, "num_local_experts": 8}), encoding="utf-8")
    code, out, err = run_cli(["plan", "--json", str(spec)], capsys)
    assert code == 0, err
    (plan,) = json.loads(out)
    resources = plan["resources"]
    assert not resources["estimable"] and "mixture of experts" in resources["reason"]
    budgets = {stage["stage"]: stage["placement"]["gpu_budgets"] for stage in resources["stages"]}
    usable = 80e9 * 0.9 - 600e6
    assert budgets == {
        "quantize": {"0": usable},
        "verify": {"0": usable, "1": usable},
        "card": {"0": usable, "1": usable},
        "publish": {"0": usable, "1": usable},
        "vllm": {"0": 80e9 * 0.8},
    }
    assert all(stage["refusal"] is None for stage in resources["stages"])
    code, out, err = run_cli(["plan", str(spec)], capsys)
    assert code == 0, err
    assert "verify: GPU 0,1 (size unknown" in out and "quantize: GPU 0 (size unknown" in out


def test_release_on_a_runner_too_small_exits_2_before_any_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, SMALL_RUNNER)
    hub_dir, workdir = tmp_path / "hub", tmp_path / "work"
    code, _, err = run_cli(["release", str(spec), "--workdir", str(workdir), "--hub-dir", str(hub_dir)], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert "too small" in err and "stage quantize needs" in err and "the runner has 64.0 GB" in err
    assert not (workdir / "releases").exists() or not any((workdir / "releases").rglob("stages"))
    assert not any(hub_dir.rglob("*.safetensors"))


def test_release_declaring_gpus_fails_at_the_start_without_cuda(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    assert not torch.cuda.is_available(), "this test is for machines without CUDA"
    spec = _spec(tmp_path, "runner:\n  gpus: 2\n  gpu_memory_gb: 80\n")
    workdir = tmp_path / "work"
    code, _, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(workdir)], capsys)
    assert code == 2, err
    assert "declares 2 GPU(s), but CUDA is not usable here" in err and "does not fall back to the CPU" in err
    assert "Traceback" not in err
    assert not (workdir / "releases").exists()
