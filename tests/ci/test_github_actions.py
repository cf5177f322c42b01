"""Under GitHub Actions hubpub folds its log per stage, writes step outputs and a step summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub import ci
from hubpub.hubclient import UploadPlan
from hubpub.manifest import StageResult
from hubpub.output import StageProgress
from hubpub.pipeline import ReleaseOutcome
from hubpub.stages.publish import PublishResult
from tests.conftest import run_cli


@pytest.fixture
def actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    files = {"output": tmp_path / "github_output", "summary": tmp_path / "step_summary"}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    return files


def test_each_stage_is_a_log_group(actions: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with StageProgress() as progress:
        progress.update("W4A16", "quantize", "started")
        progress.update("W4A16", "quantize", "done")
        progress.update("W4A16", "vllm", "started")
        progress.update("W4A16", "vllm", "skipped")
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "::group::W4A16: quantize",
        "::endgroup::",
        "::group::W4A16: vllm",
        "::endgroup::",
    ]
    assert "W4A16: quantize done (" in captured.err
    assert "W4A16: vllm skipped" in captured.err


def test_outputs_append_and_multiline_values_use_a_delimiter(actions: dict[str, Path]) -> None:
    ci.set_outputs({"commit": "abc"})
    ci.set_outputs({"notes": "one\ntwo"})
    lines = actions["output"].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "commit=abc"
    assert lines[1].startswith("notes<<hubpub_")
    assert lines[2:4] == ["one", "two"]
    assert lines[4] == lines[1].split("<<")[1]


def test_nothing_is_written_outside_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    ci.set_outputs({"commit": "abc"})
    ci.append_summary("# nothing")
    assert list(tmp_path.iterdir()) == []


def published(commit: str | None, status: str = "committed") -> PublishResult:
    return PublishResult(
        repo_id="org/tiny-W4A16",
        url="http://127.0.0.1:1/org/tiny-W4A16",
        target="hf",
        status=status,
        commit=commit,
        plan=UploadPlan(repo_exists=False, head=None),
        tag="v1.0.0",
        tag_status="created",
    )


def test_release_summary_lists_stages_metrics_and_the_commit(tmp_path: Path) -> None:
    stages = {
        "quantize": StageResult(
            stage="quantize", status="done", fingerprint="f", seconds=12.5, metrics={"checkpoint_bytes": 123_000_000}
        ),
        "verify": StageResult(
            stage="verify",
            status="cached",
            fingerprint="f",
            metrics={"perplexity": {"base": 10.0, "quantized": 11.0, "ratio": 1.1, "max_ratio": 1.5}},
        ),
        "vllm": StageResult(stage="vllm", status="skipped", fingerprint="", reason="no vLLM environment"),
        "evaluate": StageResult(
            stage="evaluate",
            status="done",
            fingerprint="f",
            seconds=3.0,
            metrics={
                "rows": [
                    {
                        "task": "demo",
                        "metric": "acc",
                        "base": 0.5,
                        "quantized": 0.45,
                        "higher_is_better": True,
                        "recovery": 0.9,
                        "ratio_interval": [0.8, 0.95],
                    },
                    {
                        "task": "wiki",
                        "metric": "word_perplexity",
                        "base": 20.0,
                        "quantized": 21.0,
                        "higher_is_better": False,
                        "ratio": 1.05,
                        "recovery": 20 / 21,
                        "ratio_interval": [0.99, 1.1],
                    },
                ]
            },
        ),
    }
    commit = "0123456789abcdef0123456789abcdef01234567"
    outcome = ReleaseOutcome("W4A16", "org/tiny-W4A16", tmp_path, tmp_path / "m.json", stages, published(commit))
    summary = ci.release_summary([outcome])
    assert summary.splitlines() == [
        "## hubpub release",
        "",
        "### W4A16: `org/tiny-W4A16`",
        "",
        "Stages: quantize done 12.5 s, verify cached, vllm skipped, evaluate done 3.0 s",
        "",
        "- checkpoint 123.0 MB",
        "- perplexity 11.000 vs base 10.000 (ratio 1.100, limit 1.5)",
        "- vLLM: no vLLM environment",
        "- demo acc: 0.4500 vs base 0.5000, recovery 90.0% (80.0–95.0%), a measurable loss",
        "- wiki word_perplexity: 21.0000 vs base 20.0000, ratio ×1.050 (×0.990–×1.100), no measurable loss",
        "",
        f"Committed: [org/tiny-W4A16](http://127.0.0.1:1/org/tiny-W4A16) at"
        f" [`0123456789ab`](http://127.0.0.1:1/org/tiny-W4A16/commit/{commit}), tag `v1.0.0`.",
    ]
    assert ci.publish_outputs([published(commit).as_dict()]) == {
        "repo_url": "http://127.0.0.1:1/org/tiny-W4A16",
        "commit": commit,
    }
    assert ci.publish_outputs([published(None, "dry-run").as_dict()]) == {}


def test_a_failure_becomes_an_annotation_and_a_summary(
    actions: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("family: fam\nbase_model: org/base\nrepo_id: org/x\nscheme: W8A16\nversion: 1.0.0\n")
    code, out, err = run_cli(["matrix", str(spec), "--tag", "release/fam/v2.0.0"], capsys)
    assert code == 2
    message = f"tag 'release/fam/v2.0.0' releases version 2.0.0, but {spec} gives W8A16 version 1.0.0"
    assert message in " ".join(err.split())
    assert out.startswith(f"::error title=hubpub%3A UsageError::{message}")
    assert actions["summary"].read_text(encoding="utf-8").startswith(f"## hubpub failed\n\n{message}")
    assert not actions["output"].exists()
