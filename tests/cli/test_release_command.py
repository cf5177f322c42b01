from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_spec


def test_release_json_reports_each_variant(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_llama, scheme="W8A8")
    code, out, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(tmp_path / "w"), "--json"], capsys)
    assert code == 0, err
    (variant,) = json.loads(out)
    assert variant["repo_id"] == "test/tiny-w8a8"
    assert variant["stages"]["quantize"] == "done" and variant["stages"]["publish"] == "skipped"
    assert Path(variant["staged_dir"], "model.safetensors").is_file()
    assert Path(variant["manifest"]).name == "hubpub-manifest.json"


def test_release_publishes_to_the_embedded_hub_by_default(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    hub_dir = tmp_path / "hub"
    args = ["release", str(spec), "--workdir", str(tmp_path / "w"), "--hub-dir", str(hub_dir), "--no-roundtrip"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "committed" in out and "test/tiny-w4a16" in out and "tag v0.0.1 (created)" in out
    assert f"hubpub hub serve --dir {hub_dir}" in out
    assert (hub_dir / "repos" / "models" / "test" / "tiny-w4a16" / "meta.json").is_file()


def test_release_of_an_invalid_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("base_model: org/base\nrepo_id: org/x\nscheme: W4A16\nalgorithm: gptq\n")
    code, _, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(tmp_path / "w")], capsys)
    assert code == 2
    assert f"{spec}:1:1: calibration: a calibration dataset is required" in err
    assert not (tmp_path / "w").exists()


def test_preflight_failure_exits_2_without_traceback(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_llama, "group_size: 48\n", scheme="W8A16")
    code, _, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(tmp_path / "w")], capsys)
    assert code == 2
    assert "preflight failed" in err and "use group_size 64" in err
    assert "Traceback" not in err
