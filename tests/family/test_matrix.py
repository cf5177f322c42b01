"""`hubpub matrix`: release tags resolve to the variants they publish, as a GitHub Actions matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DEMO_SPEC, PRODUCTION_SPEC, REPO_ROOT, run_cli

MODEL_SPECS = REPO_ROOT / "model_specs"


def family_spec(folder: Path, *, version: str = "2.1.0") -> Path:
    path = folder / "family.yaml"
    path.write_text(
        "family: tiny-family\nbase_model: org/base\nlicense: apache-2.0\n"
        f"version: {version}\nruns_on: [self-hosted, gpu]\n"
        "variants:\n"
        "  - scheme: W8A16\n    repo_id: org/tiny-W8A16\n"
        "  - scheme: W4A16\n    repo_id: org/tiny-W4A16\n    runs_on: [self-hosted, gpu-80gb]\n"
        "    timeout_minutes: 1440\n",
        encoding="utf-8",
    )
    return path


def matrix_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, err = run_cli(["matrix", *args], capsys)
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert list(document) == ["include"]
    entries: list[dict[str, object]] = document["include"]
    return entries


def test_family_tag_releases_every_variant_with_its_runner_labels_and_time_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = family_spec(tmp_path)
    entries = matrix_of([str(spec), "--tag", "release/tiny-family/v2.1.0"], capsys)
    assert entries == [
        {
            "spec": str(spec),
            "variant": "W8A16",
            "family": "tiny-family",
            "repo_id": "org/tiny-W8A16",
            "version": "2.1.0",
            "runs_on": ["self-hosted", "gpu"],
            "timeout_minutes": 360,
        },
        {
            "spec": str(spec),
            "variant": "W4A16",
            "family": "tiny-family",
            "repo_id": "org/tiny-W4A16",
            "version": "2.1.0",
            "runs_on": ["self-hosted", "gpu-80gb"],
            "timeout_minutes": 1440,
        },
    ]


def test_variant_tag_releases_one_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = matrix_of([str(family_spec(tmp_path)), "--tag", "release/tiny-family/W4A16/v2.1.0"], capsys)
    assert [entry["repo_id"] for entry in entries] == ["org/tiny-W4A16"]


def test_a_folder_expands_to_its_specs_and_skips_lm_eval_task_files(
    demo_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list((MODEL_SPECS / "demo" / "tasks").glob("*.yaml")), "the demo's task YAMLs are what this skips"
    entries = matrix_of([str(MODEL_SPECS)], capsys)
    recipes = MODEL_SPECS / "demo" / "smollm2-135m-recipes.yaml"
    assert sorted({str(entry["spec"]) for entry in entries}) == sorted(
        [str(MODEL_SPECS / "demo" / DEMO_SPEC.name), str(recipes), str(MODEL_SPECS / PRODUCTION_SPEC.name)]
    )
    assert len(entries) == 6
    demo = [entry for entry in entries if str(entry["family"]).startswith("smollm2-135m-")]
    assert len(demo) == 4
    assert {tuple(entry["runs_on"]) for entry in demo} == {("ubuntu-latest",)}  # type: ignore[arg-type]


def test_under_actions_the_pushed_tag_is_read_and_outputs_are_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REF_TYPE", "tag")
    monkeypatch.setenv("GITHUB_REF_NAME", "release/tiny-family/W8A16/v2.1.0")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    entries = matrix_of([str(family_spec(tmp_path))], capsys)
    assert [entry["variant"] for entry in entries] == ["W8A16"]
    lines = outputs.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("matrix=")
    assert json.loads(lines[0].removeprefix("matrix=")) == {"include": entries}
    assert lines[1:] == ["count=1"]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("v2.1.0", "does not follow the release tag scheme"),
        ("release/tiny-family/2.1.0", "the last part must be v<version>"),
        ("release/other-family/v2.1.0", "names family 'other-family', which no spec declares (families: tiny-family)"),
        ("release/tiny-family/W8A8/v2.1.0", "names variant 'W8A8', which"),
        ("release/tiny-family/v2.2.0", "releases version 2.2.0, but"),
        ("release/tiny-family/W4A16/extra/v2.1.0", "does not follow the release tag scheme"),
    ],
)
def test_a_tag_that_matches_nothing_or_disagrees_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tag: str, message: str
) -> None:
    code, out, err = run_cli(["matrix", str(family_spec(tmp_path)), "--tag", tag], capsys)
    assert (code, out) == (2, "")
    assert message in " ".join(err.split())


def test_a_spec_without_a_version_cannot_be_released_by_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = family_spec(tmp_path)
    spec.write_text(spec.read_text(encoding="utf-8").replace("version: 2.1.0\n", ""), encoding="utf-8")
    code, _, err = run_cli(["matrix", str(spec), "--tag", "release/tiny-family/v2.1.0"], capsys)
    assert code == 2
    assert "gives W8A16 no version" in " ".join(err.split())


def test_family_names_must_be_tag_safe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = family_spec(tmp_path)
    spec.write_text(spec.read_text(encoding="utf-8").replace("family: tiny-family", "family: tiny/family"))
    code, _, err = run_cli(["matrix", str(spec)], capsys)
    assert code == 2
    assert f"{spec}:1:9: family:" in err
