from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fetch_demo_model


def test_demo_model_is_the_expected_file(demo_model: Path) -> None:
    assert demo_model.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert fetch_demo_model.sha256_of(demo_model) == fetch_demo_model.SHA256


def test_does_nothing_when_the_file_is_already_there(demo_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(_: Path) -> Path:
        raise AssertionError("must not download again")

    monkeypatch.setattr(fetch_demo_model, "_download_wheel", no_download)
    before = demo_model.stat().st_mtime_ns
    assert fetch_demo_model.ensure_demo_model(demo_model.parent) == demo_model
    assert demo_model.stat().st_mtime_ns == before


def test_a_corrupt_copy_is_replaced_from_the_package(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / demo_model.name
    target.write_bytes(b"truncated")
    monkeypatch.setattr(fetch_demo_model, "_installed_copy", lambda: demo_model)
    assert fetch_demo_model.ensure_demo_model(tmp_path) == target
    assert fetch_demo_model.sha256_of(target) == fetch_demo_model.SHA256


def test_a_wrong_checksum_is_refused(demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not the model")
    monkeypatch.setattr(fetch_demo_model, "_installed_copy", lambda: fake)
    with pytest.raises(SystemExit, match="does not match"):
        fetch_demo_model.ensure_demo_model(tmp_path / "out")
    assert not (tmp_path / "out" / demo_model.name).exists()
