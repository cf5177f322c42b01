"""The evaluate stage with real lm-eval on the tiny Llama and the demo's local tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub import api
from hubpub.errors import GateError
from hubpub.hub import HubServer, Identity
from tests.conftest import REPO_ROOT, write_spec

TASKS = REPO_ROOT / "model_specs" / "demo" / "tasks"


def family_spec(folder: Path, model: Path, min_recovery: str = "") -> Path:
    evaluation = (
        "evaluation:\n  tasks: [demo_capitals, demo_wikitext]\n"
        f"  include_path: [{TASKS}]\n  limit: 8\n  batch_size: 4\n{min_recovery}"
    )
    spec = write_spec(folder, model, f"family: tiny\n{evaluation}")
    text = spec.read_text().replace("repo_id: test/tiny-w4a16\nscheme: W4A16\ngroup_size: 64\n", "")
    text += (
        "variants:\n  - {scheme: W4A16, group_size: 64, repo_id: test/tiny-w4a16}\n"
        "  - {scheme: W8A8, repo_id: test/tiny-w8a8}\n"
    )
    spec.write_text(text)
    return spec


def test_a_family_evaluates_its_base_once(tiny_llama: Path, tmp_path: Path) -> None:
    spec = family_spec(tmp_path, tiny_llama)
    first, second = api.release([spec], workdir=tmp_path / "w", push=False)
    assert first.stages["evaluate"].metrics["base_cached"] is False
    assert second.stages["evaluate"].metrics["base_cached"] is True
    rows = {(row["task"], row["metric"]) for row in first.stages["evaluate"].metrics["rows"]}
    assert {("demo_capitals", "acc"), ("demo_capitals", "acc_norm"), ("demo_wikitext", "word_perplexity")} <= rows
    card = (first.staged_dir / "README.md").read_text()
    assert "| demo_capitals | acc |" in card and "| demo_wikitext | word_perplexity ↓ |" in card
    assert "model-index:" in card and "Not evaluated" not in card


def test_a_strict_gate_fails_before_publishing(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = family_spec(tmp_path, tiny_llama, "  min_recovery: 1.5\n")
    monkeypatch.setenv("HF_TOKEN", "hf_gate")
    with (
        HubServer(tmp_path / "hub", tokens={"hf_gate": Identity(name="test")}) as hub,
        pytest.raises(GateError, match=r"recovery .* < min_recovery 1.5"),
    ):
        api.release([spec], workdir=tmp_path / "w", hub=hub.url)
    assert not list((tmp_path / "hub" / "repos").rglob("meta.json"))
