"""`hubpub release --on hf-jobs` against the embedded Hub, whose jobs are its LOCAL STAND-IN for Hugging Face's
machines (boxed subprocesses running hubpub on this machine): the tiny Llama family, one job per variant, its
base hosted by the same Hub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub import api
from hubpub.errors import UsageError
from hubpub.hfjobs import BUNDLE_ENV, JobsFailedError
from hubpub.hub import HubServer, Identity
from tests.conftest import run_cli
from tests.jobs.conftest import FAILING_VARIANT, TOKEN, TWO_VARIANTS, hub_with_base, tiny_family, upload_base


def group_is_gone(pgid: int, seconds: float = 10.0) -> bool:
    """Whether no process of the group is left (a killed process may take a moment to be reaped)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def tags(hub_dir: Path, repo_id: str) -> dict[str, str]:
    with HubServer(hub_dir, tokens={TOKEN: Identity(name="tester")}) as server:
        return {
            ref.name: ref.target_commit for ref in HfApi(endpoint=server.url, token=TOKEN).list_repo_refs(repo_id).tags
        }


@pytest.mark.timeout(600)
def test_each_variant_runs_as_a_job_and_publishes(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny_family(tmp_path / "project", TWO_VARIANTS)
    hub_dir = tmp_path / "hub"
    hub_with_base(hub_dir, tiny_llama)
    code, out, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub-dir", str(hub_dir)], capsys)
    assert code == 0, err[-3000:]
    for variant, repo_id, flavor in (
        ("W4A16-g64", "tester/tiny-w4a16-g64", "a10g-large"),
        ("W4A16-g32", "tester/tiny-w4a16-g32", "h200"),
    ):
        streamed = [line for line in out.splitlines() if line.startswith(f"[{variant}] ")]
        assert (
            f"[{variant}] hubpub embedded Hub: local stand-in for {flavor} (image ignored): running hubpub release"
            in (streamed[0])
        )
        assert any(f"{variant}: publish done" in line for line in streamed), streamed
        assert f"{repo_id} ({variant}): job COMPLETED" in out
        assert list(tags(hub_dir, repo_id)) == ["v0.0.1"]
    # Each job worked in its own folder under the Hub's store, in the repos' namespace, from the spec bundle.
    bundles = sorted(hub_dir.glob("jobs/tester/*/.hubpub/job-spec/tiny.yaml"))
    assert len(bundles) == 2 and all(path.read_bytes() == spec.read_bytes() for path in bundles)


@pytest.mark.timeout(600)
def test_a_failing_job_fails_the_command_with_its_last_log_lines(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny_family(tmp_path / "project", FAILING_VARIANT)
    hub_with_base(tmp_path / "hub", tiny_llama)
    code, _, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub-dir", str(tmp_path / "hub")], capsys)
    assert code == 7
    assert "1 of 1 Hugging Face jobs failed:" in err
    assert "- W8A16: ERROR (the command exited with code 2), http://127.0.0.1:" in err
    tail = err[err.index("last log lines of W8A16:") :]
    assert "[W8A16] W8A16: preflight failed" in tail
    assert "group_size 128 does not divide the input size (64)" in tail


@pytest.mark.timeout(600)
def test_the_token_is_a_secret_never_an_env_value_or_an_argument(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_family(tmp_path / "project", FAILING_VARIANT)
    lines: list[tuple[str, str]] = []
    os.environ["HF_TOKEN"] = TOKEN
    try:
        with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="tester")}, jobs=True) as server:
            upload_base(server.url, tiny_llama)
            with pytest.raises(JobsFailedError) as failed:
                api.release_on_jobs([spec], hub=server.url, on_line=lambda name, line: lines.append((name, line)))
            (job,) = HfApi(endpoint=server.url, token=TOKEN).list_jobs(namespace="tester")
    finally:
        del os.environ["HF_TOKEN"]
    assert job.secrets == {"HF_TOKEN": None}
    assert set(job.environment or {}) == {BUNDLE_ENV}
    assert not any(TOKEN in value for value in [*(job.command or []), *(job.environment or {}).values()])
    assert job.command is not None and job.command[job.command.index("--hub") + 1] == server.url
    (outcome,) = failed.value.outcomes
    assert (outcome.stage, outcome.job_id, outcome.url) == ("ERROR", job.id, f"{server.url}/jobs/tester/{job.id}")
    assert lines and {name for name, _ in lines} == {"W8A16"}
    assert outcome.last_lines == tuple(line for _, line in lines)[-len(outcome.last_lines) :]
    assert not any(TOKEN in line for _, line in lines)


def test_a_bad_flavor_is_exit_2_before_anything_is_submitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny_family(tmp_path / "project", TWO_VARIANTS, jobs="jobs: {flavor: a100-larg}\n")
    hub_dir = tmp_path / "hub"
    code, out, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub-dir", str(hub_dir)], capsys)
    assert code == 2
    assert f"{spec}:10:" in err and "unknown Jobs flavor 'a100-larg'; did you mean 'a100-large'?" in err
    assert out == "" and not hub_dir.exists()


def test_a_spec_without_jobs_settings_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny_family(tmp_path / "project", TWO_VARIANTS, jobs="")
    code, _, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub-dir", str(tmp_path / "hub")], capsys)
    assert code == 2
    assert "variant W4A16-g64 has no `jobs:` section" in err
    assert not (tmp_path / "hub" / "jobs").exists()


@pytest.mark.parametrize("hub", ["local", "https://hub.example.invalid"])
@pytest.mark.parametrize(
    "line",
    ["source: {path: ../model}", "source: {path: MODEL}", "calibration: {dataset: ../data.jsonl}"],
)
def test_a_path_outside_the_specs_folder_is_refused_for_every_hub(
    tiny_llama: Path, tmp_path: Path, hub: str, line: str
) -> None:
    spec = tiny_family(tmp_path / "project", TWO_VARIANTS)
    line = line.replace("MODEL", str(tiny_llama))
    spec.write_text(spec.read_text().replace("license:", f"{line}\nlicense:"), encoding="utf-8")
    (tmp_path / "project" / "model").symlink_to(tiny_llama, target_is_directory=True)
    (tmp_path / "project" / "data.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    os.environ["HF_TOKEN"] = TOKEN
    try:
        with pytest.raises(UsageError, match="is outside the spec's folder, which a job cannot read") as refused:
            api.release_on_jobs([spec], hub=hub, hub_dir=tmp_path / "hub", on_line=lambda name, line: None)
    finally:
        del os.environ["HF_TOKEN"]
    assert "take the base from the Hub (drop `source`)" in str(refused.value)
    assert not (tmp_path / "hub" / "jobs").exists()


def test_a_link_in_the_specs_folder_that_leads_out_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_family(tmp_path / "project", TWO_VARIANTS)
    spec.write_text(spec.read_text().replace("license:", "source: {path: model}\nlicense:"), encoding="utf-8")
    (spec.parent / "model").symlink_to(tiny_llama, target_is_directory=True)
    os.environ["HF_TOKEN"] = TOKEN
    try:
        with pytest.raises(UsageError, match="model is outside the spec's folder"):
            api.release_on_jobs([spec], hub="https://hub.example.invalid", on_line=lambda name, line: None)
    finally:
        del os.environ["HF_TOKEN"]


@pytest.mark.timeout(300)
def test_ctrl_c_cancels_the_jobs_it_started(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_family(tmp_path / "project", TWO_VARIANTS)
    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="tester")}, jobs=True) as server:
        upload_base(server.url, tiny_llama)
        env = {**os.environ, "HF_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "hubpub", "release", str(spec), "--on", "hf-jobs", "--hub", server.url]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if ": resolve done" in line:
                break
        assert seen and ": resolve done" in seen[-1], "".join(seen)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 130, err[-3000:]
        assert "canceled" in err and "interrupted" in err
        client = HfApi(endpoint=server.url, token=TOKEN)
        jobs = list(client.list_jobs(namespace="tester"))
        assert len(jobs) == 2
        for job in jobs:
            assert client.wait_for_job(job.id, timeout=60).status.stage == "CANCELED"
            process_group = server.jobs._jobs[job.id].process
            assert process_group is not None and process_group.poll() is not None
            assert group_is_gone(process_group.pid)
        assert not client.repo_exists("tester/tiny-w4a16-g64") and not client.repo_exists("tester/tiny-w4a16-g32")
