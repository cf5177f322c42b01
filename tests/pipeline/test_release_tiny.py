"""Fast tier: the whole release pipeline on a tiny Llama trained in the test run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hubpub import api
from hubpub.errors import PreflightError, PublishError, UsageError
from hubpub.hashing import sha256_file
from hubpub.manifest import MANIFEST_NAME, Manifest
from hubpub.pipeline import ReleaseRun
from tests.conftest import write_spec


@pytest.fixture(scope="module")
def released(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, api.Any]:
    folder = tmp_path_factory.mktemp("release")
    spec = write_spec(folder, tiny_llama)
    workdir = folder / "work"
    (outcome,) = api.release([spec], workdir=workdir, push=False)
    return spec, workdir, outcome


def test_first_release_runs_every_available_stage(released: tuple[Path, Path, api.Any]) -> None:
    _, _, outcome = released
    statuses = {name: result.status for name, result in outcome.stages.items()}
    assert statuses == {
        "resolve": "done",
        "preflight": "done",
        "quantize": "done",
        "verify": "done",
        "vllm": "skipped",
        "evaluate": "skipped",
        "card": "done",
        "publish": "skipped",
    }
    assert outcome.stages["publish"].reason == "--no-push"
    assert outcome.stages["evaluate"].reason == "the spec asks for no evaluation"


def test_staged_folder_is_a_compressed_checkpoint_with_the_base_artifacts(
    released: tuple[Path, Path, api.Any], tiny_llama: Path
) -> None:
    _, _, outcome = released
    staged: Path = outcome.staged_dir
    names = {path.name for path in staged.iterdir()}
    assert {"model.safetensors", "config.json", "recipe.yaml", MANIFEST_NAME, "chat_template.jinja"} <= names
    config = json.loads((staged / "config.json").read_text())
    quantization = config["quantization_config"]
    assert quantization["quant_method"] == "compressed-tensors"
    assert quantization["config_groups"]["group_0"]["weights"]["group_size"] == 64
    assert quantization["ignore"] == ["lm_head"]
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert sha256_file(staged / name) == sha256_file(tiny_llama / name), name


def test_verification_answers_and_measures_perplexity(released: tuple[Path, Path, api.Any]) -> None:
    _, _, outcome = released
    verify = outcome.stages["verify"].metrics
    (generation,) = verify["generations"]
    assert "Paris" in generation["output"]
    perplexity = verify["perplexity"]
    assert perplexity["base"] > 1 and perplexity["quantized"] > 1
    assert perplexity["ratio"] == pytest.approx(perplexity["quantized"] / perplexity["base"])
    assert verify["artifacts"]["missing"] == [] and verify["artifacts"]["different"] == []
    assert set(verify["artifacts"]["identical"]) >= {"tokenizer.json", "chat_template.jinja"}


def test_manifest_records_the_release(released: tuple[Path, Path, api.Any], tiny_llama: Path) -> None:
    spec, _, outcome = released
    manifest = Manifest.read(outcome.staged_dir)
    assert manifest.spec_sha256 == sha256_file(spec)
    assert manifest.repo_id == "test/tiny-w4a16"
    assert manifest.source_sha256["model.safetensors"] == sha256_file(tiny_llama / "model.safetensors")
    assert manifest.recipe["quant_stage"]["quant_modifiers"]["QuantizationModifier"]["ignore"] == ["lm_head"]
    assert manifest.versions["llmcompressor"] and manifest.versions["torch"] and manifest.versions["hubpub"]
    assert manifest.device == "cpu"
    assert manifest.stages["quantize"].seconds > 0 and manifest.stages["quantize"].peak_rss_mb
    assert manifest.stages["quantize"].metrics["checkpoint_bytes"] > 0
    assert manifest.ci_run_url is None
    assert not Path(manifest.release["source"]["path"]).is_absolute()


def test_models_load_only_in_child_processes(released: tuple[Path, Path, api.Any]) -> None:
    _, workdir, outcome = released
    for stage in ("quantize", "verify"):
        (folder,) = workdir.glob(f"releases/*/stages/{stage}-*")
        child = json.loads((folder / f"{stage}-result.json").read_text(encoding="utf-8"))
        assert child["pid"] != os.getpid()
        assert (folder / f"{stage}-child.log").is_file()
        # The stage's peak is at least the child's: the parent only runs it.
        assert outcome.stages[stage].peak_rss_mb >= round(child["peak_rss_mb"], 1)
        assert outcome.stages[stage].peak_gpu_mb is None  # no CUDA here
    (card_dir,) = workdir.glob("releases/*/stages/card-*")
    snippet = json.loads((card_dir / "card_snippet.peaks.json").read_text(encoding="utf-8"))
    assert outcome.stages["card"].peak_rss_mb >= round(snippet["peak_rss_mb"], 1)


def test_rerun_redoes_no_stage(released: tuple[Path, Path, api.Any]) -> None:
    spec, workdir, first = released
    (again,) = api.release([spec], workdir=workdir, push=False)
    assert {name: result.status for name, result in again.stages.items() if result.status != "skipped"} == {
        "resolve": "cached",
        "preflight": "cached",
        "quantize": "cached",
        "verify": "cached",
        "card": "cached",
    }
    assert again.stages["quantize"].fingerprint == first.stages["quantize"].fingerprint
    assert sha256_file(again.staged_dir / "model.safetensors") == sha256_file(first.staged_dir / "model.safetensors")


def test_force_redoes_only_that_stage(released: tuple[Path, Path, api.Any]) -> None:
    spec, workdir, _ = released
    (forced,) = api.release([spec], workdir=workdir, push=False, force=("quantize",))
    assert forced.stages["quantize"].status == "done"
    assert forced.stages["resolve"].status == forced.stages["verify"].status == "cached"


def test_a_changed_recipe_reuses_resolution_but_quantizes_again(
    released: tuple[Path, Path, api.Any], tiny_llama: Path
) -> None:
    spec, workdir, _ = released
    other = write_spec(
        spec.parent, tiny_llama, "algorithm: rtn\nignore: [lm_head, model.layers.1.mlp.down_proj]\n", name="b.yaml"
    )
    (outcome,) = api.release([other], workdir=workdir, push=False)
    assert outcome.stages["resolve"].status == "cached"
    assert outcome.stages["quantize"].status == "done"
    assert "model.layers.1.mlp.down_proj" in outcome.stages["preflight"].metrics["unquantized_layers"]


def test_a_bad_hub_target_is_refused_after_validation_before_any_stage(tiny_llama: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    with pytest.raises(PublishError, match="--hub ftp://x"):
        api.release([spec], workdir=tmp_path / "work", hub="ftp://x")
    assert not (tmp_path / "work").exists()


def test_unknown_force_stage_is_a_usage_error(tiny_llama: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    with pytest.raises(UsageError, match="no such stage"):
        api.release([spec], workdir=tmp_path / "work", push=False, force=("quantise",))


@pytest.mark.parametrize(
    ("extra", "scheme", "expected"),
    [
        ("group_size: 48\n", "W8A16", "group_size 48 does not divide the input size \\(64, 128\\) of 14 layers"),
        ("ignore: []\n", "W8A8", "lm_head shares its weights with the input embeddings"),
        (
            "ignore: [lm_head, model.layers.0.self_attn.k_proj]\n",
            "W8A8",
            "only model.layers.0.self_attn.k_proj is ignored",
        ),
    ],
    ids=["group-size", "tied-embeddings", "fused-shards"],
)
def test_preflight_fails_before_quantizing(
    tiny_llama: Path, tmp_path: Path, extra: str, scheme: str, expected: str
) -> None:
    spec = write_spec(tmp_path, tiny_llama, extra, scheme=scheme)
    with pytest.raises(PreflightError, match=expected) as raised:
        api.release([spec], workdir=tmp_path / "work", push=False)
    assert raised.value.exit_code == 2
    stages = tmp_path / "work" / "releases"
    assert not list(stages.glob("*/stages/quantize-*"))
    failed = Manifest.read(next(stages.iterdir()))
    assert failed.stages["preflight"].status == "failed"


def test_group_size_error_suggests_a_fix(tiny_llama: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_llama, "group_size: 48\n", scheme="W8A16")
    with pytest.raises(PreflightError) as raised:
        api.release([spec], workdir=tmp_path / "work", push=False)
    assert "Fix: use group_size 64, or ignore these 14 layers" in str(raised.value)


def test_a_job_sharing_the_cache_folder_keeps_its_base_metrics_and_hashes_there(
    released: tuple[Path, Path, api.Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another matrix job on the same runner host: its own work folder, the first job's cache.
    spec, first_workdir, _ = released
    (release,) = api.load_spec(spec).releases
    assert list((first_workdir / "cache" / "base-perplexity").glob("*.json"))
    monkeypatch.setenv("HUBPUB_CACHE_DIR", str(first_workdir / "cache"))
    run = ReleaseRun(spec, release, workdir=tmp_path / "other-job")
    assert (run.cache_dir, run.hashes.store) == (first_workdir / "cache", first_workdir / "cache" / "sha256.json")
    assert run.hashes.sha256(spec) == sha256_file(spec)
    given = ReleaseRun(spec, release, workdir=tmp_path / "other-job", cache_dir=tmp_path / "given")
    assert given.cache_dir == tmp_path / "given"
