from __future__ import annotations

from pathlib import Path

import pytest

from hubpub.errors import SpecError
from hubpub.spec import load_spec
from tests.conftest import DEMO_SPEC, PRODUCTION_SPEC


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\nrepo_id: demo/m\nscheme: W4A16\n"


def test_minimal_release_gets_documented_defaults(tmp_path: Path) -> None:
    spec_file = load_spec(write(tmp_path, MINIMAL))
    (release,) = spec_file.releases
    assert not spec_file.is_family
    assert release.variant == "W4A16"
    assert release.algorithm == "rtn"
    assert release.ignore == ("lm_head",)
    assert release.targets == ("Linear",)
    assert release.effective_group_size == 128
    assert release.verify.vllm == "optional"
    assert release.evaluation is None
    assert release.hub_tag is None


def test_models_are_frozen(tmp_path: Path) -> None:
    (release,) = load_spec(write(tmp_path, MINIMAL)).releases
    with pytest.raises(ValueError):
        release.scheme = "W8A8"  # type: ignore[misc]


def test_bare_off_in_yaml_means_vllm_off(tmp_path: Path) -> None:
    (release,) = load_spec(write(tmp_path, MINIMAL + "verify:\n  vllm: off\n")).releases
    assert release.verify.vllm == "off"


def test_relative_paths_resolve_against_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "calib.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "m.gguf").write_bytes(b"GGUF")
    text = MINIMAL + "source:\n  path: weights\n  gguf_file: m.gguf\ncalibration:\n  dataset: data/calib.jsonl\n"
    (release,) = load_spec(write(tmp_path, text)).releases
    assert release.source is not None and release.source.path == (tmp_path / "weights").resolve()
    assert release.calibration is not None
    assert release.calibration.dataset == str((tmp_path / "data" / "calib.jsonl").resolve())
    assert release.calibration.is_local


def test_hub_dataset_ids_are_not_checked_on_disk(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("W4A16\n", "W4A16\nalgorithm: gptq\n")
        + "calibration:\n  dataset: HuggingFaceH4/ultrachat_200k\n"
    )
    (release,) = load_spec(write(tmp_path, text)).releases
    assert release.calibration is not None and not release.calibration.is_local
    assert release.calibration.column == "text"


def test_variants_override_shared_keys_and_merge_mappings(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"text": "x"}\n')
    text = (
        "family: fam\nbase_model: org/base\nversion: 2.0.0\n"
        "calibration:\n  dataset: c.jsonl\n  num_samples: 16\n  seed: 7\n"
        "variants:\n"
        "  - scheme: W4A16\n    group_size: 64\n    repo_id: org/a\n"
        "  - scheme: W8A8\n    algorithm: gptq\n    repo_id: org/b\n    calibration:\n      num_samples: 32\n"
    )
    spec_file = load_spec(write(tmp_path, text))
    assert spec_file.is_family and spec_file.family == "fam"
    first, second = spec_file.releases
    assert (first.variant, first.effective_group_size, first.repo_id) == ("W4A16", 64, "org/a")
    assert (second.variant, second.effective_group_size, second.algorithm) == ("W8A8", None, "gptq")
    assert first.calibration is not None and second.calibration is not None
    assert (first.calibration.num_samples, second.calibration.num_samples) == (16, 32)
    assert second.calibration.seed == 7
    assert first.hub_tag == second.hub_tag == "v2.0.0"


def test_push_tag_overrides_version_tag(tmp_path: Path) -> None:
    (release,) = load_spec(write(tmp_path, MINIMAL + "version: 1.2.3\npush:\n  tag: release-7\n")).releases
    assert release.hub_tag == "release-7"


def test_select_unknown_variant_is_a_spec_error(tmp_path: Path) -> None:
    spec_file = load_spec(write(tmp_path, MINIMAL))
    assert spec_file.select("W4A16") == spec_file.releases
    with pytest.raises(SpecError, match="no variant named 'W8A8' \\(have: W4A16\\)"):
        spec_file.select("W8A8")


def test_every_problem_of_a_file_is_reported_together(tmp_path: Path) -> None:
    text = "base_model: org/base\nrepo_id: bad\nscheme: W9\nalgorithm: nope\n"
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, text))
    fields = [problem.field for problem in raised.value.problems]
    assert fields == ["repo_id", "scheme", "algorithm"]
    assert [problem.line for problem in raised.value.problems] == [2, 3, 4]


def test_shared_mistake_is_reported_once_for_all_variants(tmp_path: Path) -> None:
    text = (
        "base_model: org/base\nversion: not ok\n"
        "variants:\n  - {scheme: W4A16, repo_id: o/a}\n  - {scheme: W8A8, repo_id: o/b}\n"
    )
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, text))
    (problem,) = raised.value.problems
    assert (problem.line, problem.field) == (2, "version")
    assert problem.message.endswith("(all variants)")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")


def test_demo_family_loads(demo_model: Path) -> None:
    spec_file = load_spec(DEMO_SPEC)
    assert [release.variant for release in spec_file.releases] == ["W4A16", "W8A8"]
    w4, w8 = spec_file.releases
    assert w4.effective_group_size == 64
    assert w4.source is not None and w4.source.gguf_file == demo_model.name
    assert w4.source.path == demo_model.parent.resolve()
    assert w8.scheme_info.activation_bits == 8


def test_production_family_matches_the_seed_card() -> None:
    spec_file = load_spec(PRODUCTION_SPEC)
    assert {release.scheme for release in spec_file.releases} == {"W4A16", "W8A8"}
    for release in spec_file.releases:
        assert release.base_model == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
        assert release.ignore == ("lm_head",)
        assert release.calibration is not None
        assert (release.calibration.num_samples, release.calibration.max_seq_length) == (512, 2048)
        assert release.calibration.is_chat
        assert release.evaluation is not None
        assert set(release.evaluation.tasks) == {
            "hellaswag",
            "winogrande",
            "arc_easy",
            "arc_challenge",
            "piqa",
            "wikitext",
        }


def test_a_family_keeps_a_collection_by_default_and_can_name_one_or_none(tmp_path: Path) -> None:
    (single,) = load_spec(write(tmp_path, MINIMAL)).releases
    assert single.family_collection is None
    (default,) = load_spec(write(tmp_path, "family: demo\n" + MINIMAL)).releases
    assert default.family_collection is not None
    assert (default.family_collection.slug, default.family_collection.prune) == (None, False)
    slug = "demo/my-family-0123456789abcdef01234567"
    named = load_spec(write(tmp_path, f"family: demo\n{MINIMAL}collection: {{slug: {slug}, prune: true}}\n"))
    chosen = named.releases[0].family_collection
    assert chosen is not None and (chosen.slug, chosen.prune) == (slug, True)
    off = load_spec(write(tmp_path, f"family: demo\n{MINIMAL}collection: {{enabled: false}}\n"))
    assert off.releases[0].family_collection is None
