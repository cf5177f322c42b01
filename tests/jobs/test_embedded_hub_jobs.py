"""The embedded Hub's Jobs routes, driven by huggingface_hub's own Jobs methods.

A job here is a LOCAL STAND-IN for Hugging Face's machines: a boxed subprocess of the server running hubpub
on the spec bundle it was sent (see hubpub/hub/jobs.py). These tests run cheap hubpub commands (`validate`,
`plan`) as jobs. tests/hub/test_jobs_attacks.py attacks them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import BadRequestError, HfHubHTTPError

from hubpub.hfjobs import BUNDLE_ENV
from hubpub.hub import HubServer, encode_spec_bundle
from tests.hub.harness import ALICE, BOB, TOKENS

IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "store", tokens=TOKENS, jobs=True) as hub:
        yield hub


def client(server: HubServer, token: str = ALICE) -> HfApi:
    return HfApi(endpoint=server.url, token=token)


def bundled(extra: str = "") -> tuple[list[str], dict[str, str]]:
    """A spec packed in a spec bundle: (the arguments after the command, the job's environment)."""
    spec = (
        "base_model: alice/tiny-llama\nrepo_id: alice/tiny-w4a16\nscheme: W4A16\ngroup_size: 64\n"
        f"version: 0.0.1\nlicense: apache-2.0\n{extra}"
    )
    return ["spec.yaml", "--spec-bundle-env", BUNDLE_ENV], {
        BUNDLE_ENV: encode_spec_bundle("spec.yaml", {"spec.yaml": spec.encode()})
    }


def test_a_job_runs_hubpub_streams_its_log_and_completes(server: HubServer) -> None:
    arguments, env = bundled()
    api = client(server)
    job = api.run_job(
        image=IMAGE, command=["hubpub", "validate", *arguments], env=env, flavor="a10g-large", timeout="5m"
    )
    assert job.status.stage == "RUNNING"
    assert job.url == f"{server.url}/jobs/alice/{job.id}"
    lines = list(api.fetch_job_logs(job_id=job.id, follow=True))
    assert "ok .hubpub/job-spec/spec.yaml: release (W4A16)" in lines, lines
    assert "local stand-in for a10g-large (image ignored)" in lines[0]
    final = api.wait_for_job(job.id)
    assert (final.status.stage, final.flavor, final.docker_image) == ("COMPLETED", "a10g-large", IMAGE)
    assert final.finished_at is not None
    assert [item.id for item in api.list_jobs(namespace="alice")] == [job.id]


def test_a_failing_job_ends_in_error_with_its_exit_code(server: HubServer) -> None:
    arguments, env = bundled("scheem: W4A16\n")
    api = client(server)
    job = api.run_job(
        image=IMAGE, command=["uvx", "--from", "hubpub==0.1.0", "hubpub", "validate", *arguments], env=env
    )
    lines = list(api.fetch_job_logs(job_id=job.id, follow=True))
    assert any("unknown key 'scheem'" in line for line in lines), lines
    final = api.wait_for_job(job.id)
    assert (final.status.stage, final.status.message) == ("ERROR", "the command exited with code 2")


def test_a_secret_is_never_answered(server: HubServer) -> None:
    arguments, env = bundled()
    api = client(server)
    job = api.run_job(image=IMAGE, command=["hubpub", "-v", "plan", *arguments], env=env, secrets={"HF_TOKEN": ALICE})
    assert api.wait_for_job(job.id).status.stage == "COMPLETED"
    info = api.inspect_job(job_id=job.id)
    assert info.secrets == {"HF_TOKEN": None}
    assert info.environment == env
    raw = HfApi(endpoint=server.url, token=ALICE).list_jobs(namespace="alice")
    assert ALICE not in json.dumps([vars(item) for item in raw], default=str)
    assert ALICE not in "\n".join(api.fetch_job_logs(job_id=job.id))


def test_inputs_are_checked_before_anything_runs(server: HubServer) -> None:
    arguments, env = bundled()
    command = ["hubpub", "validate", *arguments]
    api = client(server)
    with pytest.raises(BadRequestError, match="Invalid flavor 'a10g-larg'"):
        api.run_job(image=IMAGE, command=command, env=env, flavor="a10g-larg")
    with pytest.raises(BadRequestError, match="Invalid environment name"):
        api.run_job(image=IMAGE, command=command, env={**env, "A B": "1"})
    with pytest.raises(BadRequestError, match="longer than"):
        api.run_job(image=IMAGE, command=command, env={BUNDLE_ENV: "x" * (200 * 1024)})
    with pytest.raises(BadRequestError, match="secrets may not set T"):
        api.run_job(image=IMAGE, command=command, env=env, secrets={"T": "2"})
    assert list(api.list_jobs(namespace="alice")) == []


def test_tokens_count_as_for_repos(server: HubServer) -> None:
    arguments, env = bundled()
    job = client(server).run_job(image=IMAGE, command=["hubpub", "validate", *arguments], env=env)
    bob = client(server, BOB)
    with pytest.raises(HfHubHTTPError, match="403"):
        bob.run_job(image=IMAGE, command=["hubpub", "validate", *arguments], env=env, namespace="alice")
    with pytest.raises(HfHubHTTPError, match="Job not found"):
        bob.inspect_job(job_id=job.id, namespace="alice")
    with pytest.raises(HfHubHTTPError, match="Job not found"):
        bob.cancel_job(job_id=job.id, namespace="alice")
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(endpoint=server.url, token="hf_unknown_token_0123456789").inspect_job(job_id=job.id, namespace="alice")
    assert list(bob.list_jobs(namespace="bob")) == []
    assert client(server).wait_for_job(job.id).status.stage == "COMPLETED"
