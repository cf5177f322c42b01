"""Model tier: the real demo family evaluated with lm-eval, published, and gated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub import api
from hubpub.errors import GateError
from hubpub.hub import HubServer, Identity
from tests.conftest import demo_spec_copy

pytestmark = pytest.mark.model
TOKEN = "hf_demo_eval"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub"), tokens={TOKEN: Identity(name="demo")}) as server:
        yield server


@pytest.fixture(scope="module")
def released(demo_model: Path, hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[api.Any]]:
    folder = tmp_path_factory.mktemp("demo-eval")
    spec = demo_spec_copy(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)
        outcomes = api.release([spec], workdir=folder / "work", hub=hub.url, roundtrip=False)
    return folder, outcomes


def test_the_base_is_evaluated_once_for_the_family(released: tuple[Path, list[api.Any]]) -> None:
    _, (first, second) = released
    assert first.stages["evaluate"].metrics["base_cached"] is False
    assert second.stages["evaluate"].metrics["base_cached"] is True
    assert first.stages["evaluate"].metrics["task_versions"] == {"demo_capitals": 1.0, "demo_wikitext": 1.0}


def test_the_numbers_land_in_both_published_cards(released: tuple[Path, list[api.Any]], hub: HubServer) -> None:
    folder, outcomes = released
    client = HfApi(endpoint=hub.url, token=TOKEN)
    for outcome in outcomes:
        card = Path(
            client.hf_hub_download(outcome.repo_id, "README.md", local_dir=folder / outcome.variant)
        ).read_text()
        for row in outcome.stages["evaluate"].metrics["rows"]:
            assert f"| {row['task']} |" in card and f"{row['quantized']:.4f}" in card
        assert "model-index:" in card


def test_a_strict_gate_stops_the_release_and_leaves_the_remote_untouched(
    released: tuple[Path, list[api.Any]], hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, outcomes = released
    client = HfApi(endpoint=hub.url, token=TOKEN)
    heads = {outcome.repo_id: client.model_info(outcome.repo_id).sha for outcome in outcomes}
    (folder / "strict").mkdir()
    strict = demo_spec_copy(
        folder / "strict", replace={"min_recovery: {demo_capitals: 0.8, demo_wikitext: 0.6}": "min_recovery: 1.2"}
    )
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(GateError, match=r"min_recovery 1\.2"):
        api.release([strict], workdir=folder / "work", hub=hub.url, roundtrip=False)
    assert {repo: client.model_info(repo).sha for repo in heads} == heads
