"""Attacks on the embedded Hub's Jobs, over real HTTP with huggingface_hub's own Jobs methods.

Jobs are off unless the server turns them on; when on, a job gets nothing of the server's environment, a token
for its own namespace that ends with it, a command line the server builds, a bundle within limits, slots and a
timeout within limits, and a box (new user, mount and PID namespaces) that hides the store, the tokens file
and the server user's Hugging Face token.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import BadRequestError, HfHubHTTPError

import hubpub
from hubpub.hub import BUNDLE_MAX_BYTES, BUNDLE_MAX_FILES, HubConfigError, HubServer, JobLimits, encode_spec_bundle
from hubpub.hub import jobs as jobs_module
from hubpub.hub.jobs import Job, box_command
from tests.conftest import run_cli
from tests.hub.harness import ALICE, BOB, TOKENS, exchange, json_request, request

IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"
SPEC = (
    "base_model: alice/tiny-llama\nrepo_id: alice/tiny-w4a16\nscheme: W4A16\ngroup_size: 64\n"
    "version: 0.0.1\nlicense: apache-2.0\n"
)
BUNDLE = encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode()})
VALIDATE = ["hubpub", "validate", "spec.yaml", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"]
RELEASE = ["hubpub", "release", "spec.yaml", "--no-push", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"]


def jobs_hub(root: Path, limits: JobLimits | None = None, **options: object) -> HubServer:
    """A server with jobs on (not started: use it as a context manager)."""
    return HubServer(root, tokens=TOKENS, jobs=True, job_limits=limits, **options)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubServer]:
    with jobs_hub(tmp_path / "store") as hub:
        yield hub


def run(api: HfApi, command: list[str] = VALIDATE, bundle: str = BUNDLE, **options: object) -> str:
    job = api.run_job(image=IMAGE, command=command, env={"HUBPUB_SPEC_BUNDLE": bundle}, **options)  # type: ignore[arg-type]
    return job.id


def hold_in_resolve(server: HubServer, seconds: float = 60.0) -> None:
    """Release jobs then wait in their resolve stage: the Hub answers their first model_info call late."""
    server.faults.add("repo_info", delay=seconds, times=10)


# -- 1. off by default ----------------------------------------------------------------------------
def test_a_plain_server_refuses_every_jobs_route(tmp_path: Path) -> None:
    with HubServer(tmp_path / "store", tokens=TOKENS) as plain:
        api = HfApi(endpoint=plain.url, token=ALICE)
        for call in (
            lambda: run(api),
            lambda: list(api.list_jobs(namespace="alice")),
            lambda: api.inspect_job(job_id="0" * 24, namespace="alice"),
            lambda: api.cancel_job(job_id="0" * 24, namespace="alice"),
        ):
            with pytest.raises(HfHubHTTPError) as refused:
                call()
            assert refused.value.response.status_code == 403
            assert "Jobs are off on this Hub" in str(refused.value)
            assert "hubpub hub serve --jobs" in str(refused.value)
        anonymous = exchange(plain.url, json_request("POST", "/api/jobs/alice", {"command": VALIDATE}, token=None))
        assert anonymous.status == 403
        assert not (tmp_path / "store" / "jobs").exists()


def test_hub_serve_runs_jobs_only_with_the_jobs_flag(tmp_path: Path) -> None:
    for flag, expected in (([], 403), (["--jobs"], 200)):
        command = [sys.executable, "-m", "hubpub", "hub", "serve", "--dir", str(tmp_path / "hub"), "--port", "0"]
        command += ["--token", ALICE, "--user", "alice", *flag]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split(" at ")[-1].strip()
            reply = exchange(url, request("GET", "/api/jobs/alice", token=ALICE))
            assert reply.status == expected, reply.body
        finally:
            process.terminate()
            process.wait(30)


def test_hub_serve_jobs_fails_at_start_when_the_box_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for unshare in ("/nonexistent/unshare", "/bin/false"):
        monkeypatch.setattr(jobs_module, "UNSHARE", unshare)
        code, out, err = run_cli(["hub", "serve", "--dir", str(tmp_path / "hub"), "--port", "0", "--jobs"], capsys)
        assert code == 2
        assert "jobs cannot be boxed on this machine" in err
        assert "serving" not in out
        with pytest.raises(HubConfigError, match="jobs cannot be boxed"):
            HubServer(tmp_path / "hub", tokens=TOKENS, jobs=True)


# -- 2. a fresh environment -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["PYTHONPATH", "LD_PRELOAD", "HF_ENDPOINT", "HF_HOME", "PATH", "HUBPUB_JOB_CONFINED"])
def test_no_environment_name_but_the_bundle_passes(server: HubServer, name: str) -> None:
    api = HfApi(endpoint=server.url, token=ALICE)
    with pytest.raises(BadRequestError, match=f"environment may not set {name}"):
        api.run_job(image=IMAGE, command=VALIDATE, env={"HUBPUB_SPEC_BUNDLE": BUNDLE, name: "/tmp/evil"})
    with pytest.raises(BadRequestError, match=f"secrets may not set {name}"):
        api.run_job(image=IMAGE, command=VALIDATE, env={"HUBPUB_SPEC_BUNDLE": BUNDLE}, secrets={name: "/tmp/evil"})
    assert list(api.list_jobs(namespace="alice")) == []


# -- 3. a token minted for the job ----------------------------------------------------------------
def test_the_job_token_writes_its_namespace_only_and_ends_with_the_job(server: HubServer) -> None:
    api = HfApi(endpoint=server.url, token=ALICE)
    hold_in_resolve(server)
    job_id = run(api, RELEASE, secrets={"HF_TOKEN": ALICE})
    token = server.jobs._jobs[job_id].token
    assert token is not None and token != ALICE
    minted = HfApi(endpoint=server.url, token=token)
    assert minted.whoami()["name"] == "alice"
    minted.create_repo("alice/made-by-the-job")
    with pytest.raises(HfHubHTTPError) as refused:
        minted.create_repo("bob/made-by-the-job")
    assert refused.value.response.status_code == 403
    api.cancel_job(job_id=job_id)
    assert api.wait_for_job(job_id, timeout=60).status.stage == "CANCELED"
    with pytest.raises(HfHubHTTPError) as expired:
        minted.whoami()
    assert expired.value.response.status_code == 401


# -- 4. a fixed command line ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ([*RELEASE, "--workdir", "/elsewhere"], "do not take '--workdir' for release"),
        ([*RELEASE, "--workdir=/elsewhere"], "do not take '--workdir' for release"),
        ([*RELEASE, "--hub-dir", "/store"], "do not take '--hub-dir' for release"),
        ([*RELEASE, "--vllm-python", "/bin/sh"], "do not take '--vllm-python' for release"),
        ([*RELEASE, "--on", "hf-jobs"], "do not take '--on' for release"),
        ([*RELEASE, "--build-vllm-env", "/bin/sh"], "--build-vllm-env takes gpu or cpu"),
        ([*RELEASE, "--build-vllm-env"], "--build-vllm-env needs a value"),
        ([*RELEASE, "--force", "publish"], "do not take '--force' for release"),
        ([*RELEASE, "--variant", "a", "--variant=b"], "do not take '--variant' twice"),
        ([*VALIDATE, "--variant", "a"], "do not take '--variant' for validate"),
        (["hubpub", "plan", "spec.yaml", "--workdir", "/x", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"], "'--workdir'"),
        (["hubpub", "release", "/etc/spec.yaml", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"], "'/etc/spec.yaml' is not"),
        (["hubpub", "release", "../spec.yaml", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"], "'../spec.yaml' is not"),
        (["hubpub", "release", "a/../spec.yaml", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"], "is not a file of"),
        (["hubpub", "release", "other.yaml", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"], "is not a file of"),
        (["hubpub", "release", "spec.yaml"], "give --spec-bundle-env HUBPUB_SPEC_BUNDLE"),
        (["hubpub", "release", "spec.yaml", "--spec-bundle-env", "OTHER"], "give --spec-bundle-env HUBPUB_SPEC_BUNDLE"),
        (["hubpub", "validate", "spec.yaml", "spec.yaml", "--spec-bundle-env", "HUBPUB_SPEC_BUNDLE"], "not 2"),
        (["python", "-c", "print(1)"], "run hubpub only"),
        (["hubpub", "hub", "serve"], "run `hubpub release|validate|plan` only"),
    ],
)
def test_only_the_fixed_command_line_runs(server: HubServer, command: list[str], message: str) -> None:
    api = HfApi(endpoint=server.url, token=ALICE)
    with pytest.raises(BadRequestError) as refused:
        run(api, command)
    assert message in str(refused.value)
    assert list(api.list_jobs(namespace="alice")) == []


def test_hub_is_always_this_server(server: HubServer) -> None:
    api = HfApi(endpoint=server.url, token=ALICE)
    hold_in_resolve(server)
    job_id = run(api, [*RELEASE, "--hub", "http://attacker.example:1"])
    first = next(iter(api.fetch_job_logs(job_id=job_id)))
    assert first.endswith(
        f"running hubpub release spec.yaml --no-push --spec-bundle-env=HUBPUB_SPEC_BUNDLE --hub={server.loopback_url}"
    )
    assert "attacker" not in first
    api.cancel_job(job_id=job_id)
    assert api.wait_for_job(job_id, timeout=60).status.stage == "CANCELED"


# -- 5. bundle limits -----------------------------------------------------------------------------
def raw_bundle(document: dict[str, object]) -> str:
    return base64.b64encode(zlib.compress(json.dumps(document).encode(), 9)).decode()


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (
            encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode(), "bomb.bin": bytes(BUNDLE_MAX_BYTES)}),
            "it unpacks to more than",
        ),
        (
            encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode(), **{f"f{n}": b"" for n in range(600)}}),
            f"over {BUNDLE_MAX_FILES}",
        ),
        (encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode()}, {"model": "/etc"}), "must name a relative"),
        (encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode()}, {"a/model": "../../etc"}), "must name a"),
        (encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode()}, {"m": "x/../../etc"}), "must name a relative"),
        (encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode(), "../x": b""}), "not a relative path inside"),
        (encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.encode(), "m/x": b""}, {"m": "spec.yaml"}), "inside the"),
        (raw_bundle({"spec": "spec.yaml", "files": {"spec.yaml": 1}}), "is not base64"),
        ("not base64!", "not base64 of zlib-compressed JSON"),
    ],
)
def test_a_bundle_past_its_limits_is_refused_at_submission(server: HubServer, bundle: str, message: str) -> None:
    api = HfApi(endpoint=server.url, token=ALICE)
    with pytest.raises(BadRequestError) as refused:
        run(api, bundle=bundle)
    assert message in str(refused.value)
    assert list(api.list_jobs(namespace="alice")) == []


# -- 6. slots and lifetimes -----------------------------------------------------------------------
def test_slots_per_namespace_and_on_the_machine(tmp_path: Path) -> None:
    with jobs_hub(tmp_path / "store", JobLimits(running=3, running_per_namespace=2)) as hub:
        hold_in_resolve(hub)
        alice, bob = HfApi(endpoint=hub.url, token=ALICE), HfApi(endpoint=hub.url, token=BOB)
        bundle = encode_spec_bundle("spec.yaml", {"spec.yaml": SPEC.replace("alice/", "bob/").encode()})
        started = [(alice, run(alice, RELEASE)), (alice, run(alice, RELEASE))]
        with pytest.raises(HfHubHTTPError, match="2 jobs of alice are running already") as refused:
            run(alice, RELEASE)
        assert refused.value.response.status_code == 429
        started.append((bob, run(bob, RELEASE, bundle)))
        with pytest.raises(HfHubHTTPError, match="3 jobs are running on this machine already"):
            run(bob, RELEASE, bundle)
        for api, job_id in started:
            api.cancel_job(job_id=job_id)
            assert api.wait_for_job(job_id, timeout=60).status.stage == "CANCELED"
        run(alice, VALIDATE)


def test_a_timeout_over_the_limit_is_refused_and_a_job_past_its_own_is_stopped(tmp_path: Path) -> None:
    with jobs_hub(tmp_path / "store", JobLimits(max_timeout_seconds=3600)) as hub:
        api = HfApi(endpoint=hub.url, token=ALICE)
        with pytest.raises(BadRequestError, match="from 0 to 3600"):
            run(api, timeout="2h")
        hold_in_resolve(hub)
        job_id = run(api, RELEASE, timeout=3)
        token = hub.jobs._jobs[job_id].token
        assert token is not None and HfApi(endpoint=hub.url, token=token).whoami()["name"] == "alice"
        final = api.wait_for_job(job_id, timeout=60)
        assert (final.status.stage, final.status.message) == ("ERROR", "the job ran past its timeout of 3 s")
        with pytest.raises(HfHubHTTPError) as expired:
            HfApi(endpoint=hub.url, token=token).whoami()
        assert expired.value.response.status_code == 401


def test_finished_jobs_and_their_folders_are_pruned(tmp_path: Path) -> None:
    with jobs_hub(tmp_path / "store", JobLimits(keep_finished=1, keep_seconds=2.0)) as hub:
        api = HfApi(endpoint=hub.url, token=ALICE)
        first = run(api)
        assert api.wait_for_job(first, timeout=60).status.stage == "COMPLETED"
        folder = tmp_path / "store" / "jobs" / "alice" / first
        assert (folder / ".hubpub" / "job-spec" / "spec.yaml").is_file()
        second = run(api)
        assert api.wait_for_job(second, timeout=60).status.stage == "COMPLETED"
        assert [job.id for job in api.list_jobs(namespace="alice")] == [second]
        assert not folder.exists()
        time.sleep(2.5)
        third = run(api)
        assert not (tmp_path / "store" / "jobs" / "alice" / second).exists()
        with pytest.raises(HfHubHTTPError, match="Job not found"):
            api.inspect_job(job_id=second)
        assert api.wait_for_job(third, timeout=60).status.stage == "COMPLETED"


def test_a_log_is_cut_at_its_byte_limit(tmp_path: Path) -> None:
    with jobs_hub(tmp_path / "store", JobLimits(log_bytes=100)) as hub:
        api = HfApi(endpoint=hub.url, token=ALICE)
        job_id = run(api)
        assert api.wait_for_job(job_id, timeout=60).status.stage == "COMPLETED"
        lines = list(api.fetch_job_logs(job_id=job_id))
        assert lines[-1] == "[log truncated after 100 bytes]"
        assert not any(line.startswith("ok ") for line in lines)
        assert sum(len(line.encode()) + 1 for line in lines[:-1]) <= 100


def test_folders_left_by_an_earlier_run_are_removed_and_one_server_runs_a_stores_jobs(tmp_path: Path) -> None:
    left = tmp_path / "store" / "jobs" / "alice" / ("0" * 24)
    left.mkdir(parents=True)
    (left / "home").mkdir()
    with jobs_hub(tmp_path / "store"):
        assert not left.exists()
        with pytest.raises(HubConfigError, match="another server runs jobs from this store"):
            HubServer(tmp_path / "store", tokens=TOKENS, jobs=True)


# -- 7. the box -----------------------------------------------------------------------------------
def test_the_box_hides_the_store_the_tokens_and_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text("tokens: []\n", encoding="utf-8")
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HOME", str(hf_home))
    (hf_home / "token").write_text("hf_the_server_users_own_token", encoding="utf-8")
    monkeypatch.setenv("HUBPUB_SERVER_ONLY_SECRET", "server-secret-value")
    with jobs_hub(tmp_path / "store", hidden_from_jobs=[tokens_file]) as hub:
        other = tmp_path / "store" / "jobs" / "bob" / ("1" * 24)
        other.mkdir(parents=True)
        (other / "private.txt").write_text("bob's job", encoding="utf-8")
        job = Job("2" * 24, "alice", "user", {"environment": {}}, "now", tmp_path / "store" / "jobs" / "alice" / "x")
        job.folder.mkdir(parents=True)
        job.token = "hf_job_token_for_the_probe"
        store = tmp_path / "store"
        reads = [str(store / "signing-key"), str(other / "private.txt"), str(tokens_file), str(hf_home / "token")]
        writes = [str(tmp_path / "outside.txt"), str(Path(hubpub.__file__).parent / "planted.py"), "/dev/shm/x"]
        argv = [sys.executable, "-I", "-m", "tests.hub.jobprobe", *reads, "--umount", str(store), str(tokens_file)]
        argv += ["--write", *writes]
        done = subprocess.run(
            box_command(store, job.folder, hub.jobs.hidden, argv),
            env=hub.jobs._environment(job),
            cwd=job.folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (store / "signing-key").is_file() and tokens_file.read_text() == "tokens: []\n"
    assert report["reads"] == {
        reads[0]: "error: No such file or directory",
        reads[1]: "error: No such file or directory",
        reads[2]: "",
        reads[3]: "error: No such file or directory",
    }
    assert set(report["umounts"].values()) == {"Invalid argument"}
    # Outside its folder the machine is read-only, for good; /dev/shm is a fresh one of its own.
    assert report["remount"] == "Operation not permitted"
    assert report["writes"] == {
        writes[0]: "error: Read-only file system",
        writes[1]: "error: Read-only file system",
        writes[2]: "written",
    }
    assert not (tmp_path / "outside.txt").exists() and not Path(writes[1]).exists() and not Path(writes[2]).exists()
    assert (job.folder / "written.txt").read_text() == "written from the box"
    assert report["cwd"] == str(job.folder.resolve())
    assert report["no_new_privs"] == "1"
    # Its own PID namespace: the job's process and its box's first process, nothing of the server's.
    assert sorted(report["environments"]) == ["1", str(report["pid"])]
    seen = json.dumps(report)
    assert "server-secret-value" not in seen and "hf_the_server_users_own_token" not in seen
    assert report["environ"]["HF_ENDPOINT"] == hub.loopback_url
    assert report["environ"]["HF_TOKEN"] == "hf_job_token_for_the_probe"
    assert report["environ"]["HOME"].startswith(str(job.folder))
    assert report["environ"]["HF_HOME"].startswith(str(job.folder))
    assert report["environ"]["HUBPUB_JOB_CONFINED"] == "1"
    allowed = {*jobs_module.JOB_ENV_PASSED, "LC_CTYPE"}
    made = {"PATH", "HOME", "XDG_CACHE_HOME", "HF_HOME", "TMPDIR", "PYTHONUNBUFFERED", "JOB_ID", "HF_ENDPOINT"}
    made |= {"HF_TOKEN", "HF_HUB_DISABLE_XET", "HUBPUB_JOB_CONFINED"}
    assert set(report["environ"]) <= allowed | made
    assert not any(entry.startswith(str(job.folder)) for entry in report["sys_path"])
    # The job runs the server's own hubpub, wherever it was imported from.
    assert report["hubpub"] == str(Path(hubpub.__file__).resolve())


def test_the_box_passes_output_on_as_it_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "store" / "jobs" / "alice" / "y"
    folder.mkdir(parents=True)
    argv = [sys.executable, "-I", "-m", "tests.hub.jobprobe", "--print-then-wait"]
    command = box_command(tmp_path / "store", folder, (), argv)
    with subprocess.Popen(command, stdout=subprocess.PIPE, env={}, cwd=folder, start_new_session=True) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 20)
            assert ready and process.stdout.readline() == b"first line\n"
            assert process.poll() is None
        finally:
            os.killpg(process.pid, signal.SIGKILL)
