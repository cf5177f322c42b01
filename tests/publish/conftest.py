"""Fixtures of the publishing tests: one staged tiny release for the whole session, a Hub per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub import api
from hubpub.hub import HubServer, Identity
from tests.conftest import write_spec

TOKEN = "hf_publish_secret_token_123"
REPO_ID = "test/tiny-w4a16"


@pytest.fixture(scope="session")
def staged(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(spec, workdir) of the tiny W4A16 release of family `tiny`, staged by `release --no-push`."""
    folder = tmp_path_factory.mktemp("staged")
    spec = write_spec(folder, tiny_llama, "family: tiny\n")
    api.release([spec], workdir=folder / "work", push=False)
    return spec, folder / "work"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="tester", orgs=("test",))}) as server:
        yield server


def remote(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


def routes(hub: HubServer, *names: str) -> list[str]:
    return [route for _, route, _ in hub.requests if route in names]


def staged_folder(workdir: Path) -> Path:
    return next(workdir.glob("releases/*/staged"))
