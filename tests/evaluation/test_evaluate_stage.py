"""The evaluate stage with real lm-eval on the tiny Llama and the demo's local tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubpub import api
from hubpub.errors import GateError
from hubpub.hub import HubServer, Identity
from hubpub.manifest import Manifest
from hubpub.quality import recovery_text
from hubpub.stages._evaluate_child import SCORES_KEY
from tests.conftest import REPO_ROOT, run_cli, write_spec

TASKS = REPO_ROOT / "model_specs" / "demo" / "tasks"


def family_spec(folder: Path, model: Path, gates: str = "") -> Path:
    evaluation = (
        "evaluation:\n  tasks: [demo_capitals, demo_wikitext]\n"
        f"  include_path: [{TASKS}]\n  limit: 8\n  batch_size: 4\n{gates}"
    )
    spec = write_spec(folder, model, f"family: tiny\n{evaluation}")
    text = spec.read_text().replace("repo_id: test/tiny-w4a16\nscheme: W4A16\ngroup_size: 64\n", "")
    text += (
        "variants:\n  - {scheme: W4A16, group_size: 64, repo_id: test/tiny-w4a16}\n"
        "  - {scheme: W8A8, repo_id: test/tiny-w8a8}\n"
    )
    spec.write_text(text)
    return spec


@pytest.fixture(scope="module")
def family(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[api.ReleaseOutcome]]:
    folder = tmp_path_factory.mktemp("family")
    outcomes = api.release([family_spec(folder, tiny_llama)], workdir=folder / "w", push=False)
    return folder, outcomes


def test_a_family_evaluates_its_base_once(family: tuple[Path, list[api.ReleaseOutcome]]) -> None:
    _, (first, second) = family
    assert first.stages["evaluate"].metrics["base_cached"] is False
    assert second.stages["evaluate"].metrics["base_cached"] is True
    rows = {(row["task"], row["metric"]) for row in first.stages["evaluate"].metrics["rows"]}
    assert {("demo_capitals", "acc"), ("demo_capitals", "acc_norm"), ("demo_wikitext", "word_perplexity")} <= rows
    card = (first.staged_dir / "README.md").read_text()
    assert "| demo_capitals | acc |" in card and "| demo_wikitext | word_perplexity ↓ |" in card
    assert "model-index:" in card and "Not evaluated" not in card


def test_the_per_example_scores_of_both_runs_are_kept_paired_by_doc_id(
    family: tuple[Path, list[api.ReleaseOutcome]],
) -> None:
    workdir, (first, second) = family
    (folder,) = first.staged_dir.parent.glob("stages/evaluate-*")
    base = json.loads((folder / "base-results.json").read_text())[SCORES_KEY]
    quantized = json.loads((folder / "quantized-results.json").read_text())[SCORES_KEY]
    capitals = base["demo_capitals"]["acc,none"]
    assert capitals["aggregation"] == "mean" and capitals["doc_ids"] == list(range(8))
    assert set(capitals["values"]) <= {0.0, 1.0}
    wikitext = quantized["demo_wikitext"]["word_perplexity,none"]
    assert wikitext["aggregation"] == "weighted_perplexity" and wikitext["doc_ids"] == list(range(8))
    assert all(len(pair) == 2 and pair[0] < 0 < pair[1] for pair in wikitext["values"])
    # The cached base results that the second variant reused carry the same scores.
    (cached,) = (workdir / "w" / "cache" / "base-evaluation").glob("*.json")
    assert json.loads(cached.read_text())[SCORES_KEY] == base
    assert second.stages["evaluate"].metrics["base_cached"] is True


def test_each_recovery_has_its_interval_on_the_card_and_in_the_manifest(
    family: tuple[Path, list[api.ReleaseOutcome]],
) -> None:
    _, outcomes = family
    for outcome in outcomes:
        manifest = Manifest.read(outcome.staged_dir)
        metrics = manifest.stages["evaluate"].metrics
        assert metrics["bootstrap"] == {
            "method": "paired percentile",
            "resamples": 2000,
            "seed": 20260,
            "confidence": 0.95,
        }
        assert metrics["primary"] == {"task": "demo_capitals", "metric": "acc"}
        card = (outcome.staged_dir / "README.md").read_text()
        assert "with its 95% interval from a paired bootstrap over the examples both models answered" in card
        perplexity = next(row for row in metrics["rows"] if row["metric"] == "word_perplexity")
        low, high = perplexity["ratio_interval"]
        assert low <= perplexity["ratio"] <= high and perplexity["examples"] == 8
        assert perplexity["recovery_interval"] == pytest.approx([1 / high, 1 / low])
        assert f"| {recovery_text(perplexity)} |" in card and recovery_text(perplexity).startswith("×")
        for row in metrics["rows"]:
            shown = recovery_text(row)
            assert f"| {row['task']} | {row['metric']}{'' if row['higher_is_better'] else ' ↓'} |" in card
            assert f"| {shown} |" in card
            if row["ratio_interval"] is None:
                # A tiny random model can score 0 on 8 questions: then there is no recovery to bound.
                assert row["interval_note"] == "the base scored 0" and row["base"] == 0
            else:
                assert "(" in shown and ("measurable" in shown or "better" in shown)


def test_a_strict_gate_fails_before_publishing(
    family: tuple[Path, list[api.ReleaseOutcome]], tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = family
    (folder / "strict").mkdir()
    spec = family_spec(folder / "strict", tiny_llama, "  min_recovery: 1.5\n")
    monkeypatch.setenv("HF_TOKEN", "hf_gate")
    with (
        HubServer(folder / "strict" / "hub", tokens={"hf_gate": Identity(name="test")}) as hub,
        pytest.raises(GateError, match=r"recovery .* < min_recovery 1.5"),
    ):
        api.release([spec], workdir=folder / "w", hub=hub.url)
    assert not list((folder / "strict" / "hub" / "repos").rglob("meta.json"))


def test_a_gate_on_the_lower_bound_fails_where_the_point_gate_passes(
    family: tuple[Path, list[api.ReleaseOutcome]],
    tiny_llama: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, (first, _) = family
    rows = [row for row in first.stages["evaluate"].metrics["rows"] if row["task"] == "demo_wikitext"]
    # Between the lowest lower bound and the lowest recovery of the task: every recovery reaches it, not every
    # interval does.
    lowest = min(row["recovery"] for row in rows)
    threshold = round((lowest + min(row["recovery_interval"][0] for row in rows)) / 2, 6)
    assert min(row["recovery_interval"][0] for row in rows) < threshold <= lowest
    (folder / "lower").mkdir()
    gates = f"  min_recovery: {{demo_wikitext: {threshold}}}\n  min_recovery_lower: {{demo_wikitext: {threshold}}}\n"
    spec = family_spec(folder / "lower", tiny_llama, gates)
    monkeypatch.setenv("HF_TOKEN", "hf_gate")
    with HubServer(folder / "lower" / "hub", tokens={"hf_gate": Identity(name="test")}) as hub:
        code, _, err = run_cli(["release", str(spec), "--workdir", str(folder / "w"), "--hub", hub.url], capsys)
    assert code == 4
    assert f"lower bound < min_recovery_lower {threshold}" in " ".join(err.split())
    assert "W4A16: recovery's 95% interval reaches below evaluation.min_recovery_lower" in " ".join(err.split())
    assert not list((folder / "lower" / "hub" / "repos").rglob("meta.json"))
