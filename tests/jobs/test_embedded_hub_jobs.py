"""The embedded Hub's Jobs routes, driven by huggingface_hub's own Jobs methods.

A job here is a LOCAL STAND-IN for Hugging Face's machines: a subprocess of the server running hubpub
(see hubpub/hub/jobs.py). These tests run cheap hubpub commands (`validate`) as jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import BadRequestError, HfHubHTTPError

from hubpub.hub import HubServer
from tests.conftest import write_spec
from tests.hub.harness import ALICE, BOB, TOKENS

IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "store", tokens=TOKENS) as hub:
        yield hub


def client(server: HubServer, token: str = ALICE) -> HfApi:
    return HfApi(endpoint=server.url, token=token)


def test_a_job_runs_hubpub_streams_its_log_and_completes(server: HubServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tmp_path)
    api = client(server)
    job = api.run_job(image=IMAGE, command=["hubpub", "validate", str(spec)], flavor="a10g-large", timeout="5m")
    assert job.status.stage == "RUNNING"
    assert job.url == f"{server.url}/jobs/alice/{job.id}"
    lines = list(api.fetch_job_logs(job_id=job.id, follow=True))
    assert any(line.startswith("ok ") and "spec.yaml" in line for line in lines), lines
    assert "local stand-in for a10g-large (image ignored)" in lines[0]
    final = api.wait_for_job(job.id)
    assert (final.status.stage, final.flavor, final.docker_image) == ("COMPLETED", "a10g-large", IMAGE)
    assert final.finished_at is not None
    assert [item.id for item in api.list_jobs(namespace="alice")] == [job.id]


def test_a_failing_job_ends_in_error_with_its_exit_code(server: HubServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tmp_path, "scheem: W4A16\n")
    api = client(server)
    job = api.run_job(image=IMAGE, command=["uvx", "--from", "hubpub==0.1.0", "hubpub", "validate", str(spec)])
    lines = list(api.fetch_job_logs(job_id=job.id, follow=True))
    assert any("unknown key 'scheem'" in line for line in lines), lines
    final = api.wait_for_job(job.id)
    assert (final.status.stage, final.status.message) == ("ERROR", "the command exited with code 2")


def test_secrets_reach_the_process_only_and_are_never_answered(server: HubServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tmp_path)
    api = client(server)
    job = api.run_job(
        image=IMAGE, command=["hubpub", "validate", str(spec)], env={"MODE": "test"}, secrets={"HF_TOKEN": ALICE}
    )
    api.wait_for_job(job.id)
    info = api.inspect_job(job_id=job.id)
    assert info.secrets == {"HF_TOKEN": None}
    assert info.environment == {"MODE": "test"}
    raw = HfApi(endpoint=server.url, token=ALICE).list_jobs(namespace="alice")
    assert ALICE not in json.dumps([vars(item) for item in raw], default=str)
    assert ALICE not in "\n".join(api.fetch_job_logs(job_id=job.id))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["python", "-c", "print(1)"], "run hubpub only"),
        (["hubpub", "hub", "serve"], "run `hubpub release|validate|plan` only"),
        (["hubpub", "vllm-env"], "run `hubpub release|validate|plan` only"),
        (["hubpub"], "run `hubpub release|validate|plan` only"),
    ],
)
def test_the_stand_in_runs_nothing_but_hubpub(server: HubServer, command: list[str], message: str) -> None:
    with pytest.raises(BadRequestError, match=message.replace("|", r"\|").replace("`", ".")):
        client(server).run_job(image=IMAGE, command=command)
    assert not (server.store.root / "jobs").exists()


def test_inputs_are_checked_before_anything_runs(server: HubServer) -> None:
    api = client(server)
    with pytest.raises(BadRequestError, match="Invalid flavor 'a10g-larg'"):
        api.run_job(image=IMAGE, command=["hubpub", "validate", "x"], flavor="a10g-larg")
    with pytest.raises(BadRequestError, match="Invalid environment name"):
        api.run_job(image=IMAGE, command=["hubpub", "validate", "x"], env={"A B": "1"})
    with pytest.raises(BadRequestError, match="longer than"):
        api.run_job(image=IMAGE, command=["hubpub", "validate", "x"], env={"BIG": "x" * (200 * 1024)})
    with pytest.raises(BadRequestError, match="both a secret and an environment variable"):
        api.run_job(image=IMAGE, command=["hubpub", "validate", "x"], env={"T": "1"}, secrets={"T": "2"})
    assert list(api.list_jobs(namespace="alice")) == []


def test_tokens_count_as_for_repos(server: HubServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tmp_path)
    job = client(server).run_job(image=IMAGE, command=["hubpub", "validate", str(spec)])
    bob = client(server, BOB)
    with pytest.raises(HfHubHTTPError, match="403"):
        bob.run_job(image=IMAGE, command=["hubpub", "validate", str(spec)], namespace="alice")
    with pytest.raises(HfHubHTTPError, match="Job not found"):
        bob.inspect_job(job_id=job.id, namespace="alice")
    with pytest.raises(HfHubHTTPError, match="Job not found"):
        bob.cancel_job(job_id=job.id, namespace="alice")
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(endpoint=server.url, token="hf_unknown_token_0123456789").inspect_job(job_id=job.id, namespace="alice")
    assert list(bob.list_jobs(namespace="bob")) == []
    assert client(server).wait_for_job(job.id).status.stage == "COMPLETED"
