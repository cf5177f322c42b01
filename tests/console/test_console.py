"""The console belongs to hubpub: other libraries' output during a stage goes to the stage's log file.

The stages here are test doubles: small functions in place of the real stage entries, which print, warn, log
and draw a progress bar as the libraries the real stages call do.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from hubpub import pipeline
from hubpub.errors import StageError
from hubpub.hubclient import UploadPlan
from hubpub.manifest import StageResult
from hubpub.pipeline import ReleaseOutcome
from hubpub.stages.context import StageContext, StageOutput
from hubpub.stages.publish import PublishResult
from tests.conftest import children_module, run_cli

pytestmark = pytest.mark.double

NOISE = ["printed to stdout", "printed to stderr", "UserWarning: a library warns", "a library logs a warning"]


class NoisyResolve:
    """Stands in for the resolve stage: it talks the way transformers, tqdm and friends do, then succeeds."""

    @staticmethod
    def run(ctx: StageContext) -> StageOutput:
        print("printed to stdout")
        print("printed to stderr", file=sys.stderr)
        warnings.warn("a library warns", UserWarning, stacklevel=1)
        logging.getLogger("somelibrary").warning("a library logs a warning")
        logging.getLogger("hubpub.stages.resolve").info("hubpub says where the base is")
        sys.stderr.write("\rRunning requests:  50%|#####     | 5/10 [00:01<00:01,  5.00it/s]")
        return StageOutput(metrics={"source_sha256": {}}, outputs={"base_dir": str(ctx.spec_path.parent)})


class FailingPreflight:
    """Stands in for the preflight stage: it prints its details, then fails as a gate does."""

    @staticmethod
    def run(ctx: StageContext) -> StageOutput:
        for number in range(20):
            print(f"detail line {number}")
        raise StageError("preflight failed: the layers do not fit")


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    # As Python's own showwarning: the text goes to sys.stderr as it is at the time of the warning.
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A spec over a local folder, with resolve and preflight replaced by the doubles and no fork servers."""
    monkeypatch.setitem(pipeline._RUNNERS, "resolve", NoisyResolve)
    monkeypatch.setitem(pipeline._RUNNERS, "preflight", FailingPreflight)
    monkeypatch.setattr(pipeline, "start_fork_server", lambda kind="stages": None)
    monkeypatch.setattr(warnings, "showwarning", _show_warning)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    base = tmp_path / "base"
    base.mkdir()
    (base / "weights.bin").write_bytes(b"0")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base_model: org/base\nsource: {{path: {base}}}\nrepo_id: org/base-w8a8\nscheme: W8A8\n")
    return spec


def _release(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        return run_cli([*flags, "release", str(spec), "--no-push", "--workdir", str(tmp_path / "w")], capsys)


def test_other_libraries_output_goes_to_the_stage_log_alone(
    fake_stages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _release(fake_stages, tmp_path, capsys)
    assert code == 3
    console = out + err
    for line in NOISE:
        assert line not in console
    assert "Running requests" not in console
    assert "hubpub says where the base is" in console
    assert "resolve done" in console
    log = (tmp_path / "w" / "releases" / "org__base-w8a8" / "logs" / "resolve.log").read_text(encoding="utf-8")
    for line in [*NOISE, "hubpub says where the base is", "5/10"]:
        assert line in log


def test_a_failed_stage_shows_the_message_the_log_tail_and_the_log_path(
    fake_stages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _release(fake_stages, tmp_path, capsys)
    assert code == 3
    log = tmp_path / "w" / "releases" / "org__base-w8a8" / "logs" / "preflight.log"
    lines = err.splitlines()
    tail = [line for line in lines if line.startswith("  │ ")]
    assert tail == [f"  │ detail line {number}" for number in range(5, 20)]
    assert f"  log: {log}" in lines
    assert lines[-1] == "error: preflight failed: the layers do not fit"
    assert "detail line 19" in log.read_text(encoding="utf-8")


def test_vv_streams_other_libraries_output(
    fake_stages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _release(fake_stages, tmp_path, capsys, "-vv")
    assert code == 3
    assert "printed to stdout" in out
    for line in NOISE[1:]:
        assert line in err


def test_github_actions_gets_a_group_per_variant_and_stage(
    fake_stages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, err = _release(fake_stages, tmp_path, capsys)
    assert code == 3
    assert [line for line in out.splitlines() if line.startswith("::") and "group" in line] == [
        "::group::W8A8: resolve",
        "::endgroup::",
        "::group::W8A8: preflight",
        "::endgroup::",
    ]
    assert "W8A8: resolve done" in err and "printed to stderr" not in err
    logs = tmp_path / "w" / "releases" / "org__base-w8a8" / "logs"
    assert f"`{logs / 'preflight.log'}`" in summary.read_text(encoding="utf-8")


def test_progress_bars_become_progress_events(fake_stages: Path, tmp_path: Path) -> None:
    from hubpub.spec import load_spec

    events: list[pipeline.StageEvent] = []
    (release,) = load_spec(fake_stages).releases
    with pytest.raises(StageError):
        pipeline.run_releases([(fake_stages, release)], workdir=tmp_path / "w", progress=events.append, capture=True)
    assert [(event.stage, event.event) for event in events if event.event != "progress"] == [
        ("resolve", "started"),
        ("resolve", "done"),
        ("preflight", "started"),
        ("preflight", "failed"),
    ]
    assert [event.progress for event in events if event.event == "progress"] == [("Running requests", 5, 10)]


def test_the_release_ends_with_a_summary_per_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hubpub.cli import _print_release_summary

    stages = {
        "quantize": StageResult(stage="quantize", status="done", fingerprint="f", metrics={"checkpoint_bytes": 69e6}),
        "verify": StageResult(
            stage="verify", status="cached", fingerprint="f", metrics={"perplexity": {"ratio": 1.04}}
        ),
        "vllm": StageResult(stage="vllm", status="done", fingerprint="f", metrics={"smoke": {"ok": True}}),
        "evaluate": StageResult(
            stage="evaluate",
            status="done",
            fingerprint="f",
            metrics={
                "rows": [
                    {
                        "task": "wiki",
                        "metric": "word_perplexity",
                        "higher_is_better": False,
                        "recovery": 0.5,
                        "ratio": 2.0,
                    },
                    {"task": "arc", "metric": "acc", "higher_is_better": True, "recovery": 0.987},
                ],
                "primary": {"task": "arc", "metric": "acc"},
            },
        ),
    }
    published = PublishResult(
        "org/m-W4A16",
        "http://hub/org/m-W4A16",
        "local",
        "committed",
        "c" * 40,
        UploadPlan(repo_exists=False, head=None),
    )
    root = tmp_path / "releases" / "org__m-W4A16"
    outcomes = [
        ReleaseOutcome(
            "W4A16", "org/m-W4A16", root / "staged", root / "staged" / "m.json", stages, published, logs=root / "logs"
        ),
        ReleaseOutcome(
            "W8A8", "org/m-W8A8", tmp_path / "s8", tmp_path / "s8" / "m.json", stages, None, logs=tmp_path / "l8"
        ),
    ]
    _print_release_summary(outcomes, tmp_path / "hub")
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("  ") for line in lines if line.startswith(("W4A16 ", "W8A8 "))]
    assert rows == [
        ["W4A16", "org/m-W4A16", "committed", "69.0 MB", "ppl ×1.040", "vLLM loaded", "arc acc recovery 98.7%"],
        ["W8A8", "org/m-W8A8", "staged", "69.0 MB", "ppl ×1.040", "vLLM loaded", "arc acc recovery 98.7%"],
    ]
    assert f"  stage logs {root / 'logs'}" in lines
    assert f"  committed {'c' * 40} in the embedded Hub at {tmp_path / 'hub'}" in lines
    assert lines[-1].startswith(f"next: hubpub hub serve --dir {tmp_path / 'hub'}")


def test_a_child_reports_progress_and_its_output_joins_the_stage_log(light_server: None, tmp_path: Path) -> None:
    from hubpub import stagelog
    from hubpub.stages._child import run_child

    module = children_module(
        tmp_path,
        "import sys, time\nfor done in range(1, 4):\n"
        "    sys.stderr.write(f'\\rlayers: {done * 33}%|###| {done}/3 [00:01<00:00]')\n"
        "    sys.stderr.flush()\n    time.sleep(1.2)\n"
        "print(file=sys.stderr)\nprint('the child gives up')\nsys.exit(1)\n",
    )
    reports: list[tuple[str, int, int]] = []
    log = tmp_path / "logs" / "quantize.log"
    with pytest.raises(StageError) as failed, stagelog.StageLog(log, progress=lambda *bar: reports.append(bar)):
        run_child(module, {}, tmp_path, "probe", what="probing", timeout=60)
    assert str(failed.value) == "probing failed: the child gives up"
    assert ("layers", 2, 3) in reports
    assert stagelog.tail(log)[-2:] == ["layers: 99%|###| 3/3 [00:01<00:00]", "the child gives up"]
    with pytest.raises(StageError) as outside:
        run_child(module, {}, tmp_path, "probe", what="probing", timeout=60)
    assert str(outside.value).splitlines()[0] == "probing failed:"
    assert str(outside.value).splitlines()[-1] == "the child gives up"
