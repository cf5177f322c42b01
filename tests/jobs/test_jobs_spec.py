"""The spec's `jobs:` section, and the bundle that carries a spec and its files into a job."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest
from huggingface_hub import JobHardware

from hubpub.errors import SpecError, UsageError
from hubpub.hfjobs import MAX_BUNDLE_CHARS, bundle_spec, job_command, unpack_bundle
from hubpub.spec import job_flavors, load_spec
from tests.conftest import DEMO_SPEC, demo_spec_copy
from tests.jobs.conftest import TWO_VARIANTS, tiny_family


def test_the_flavors_are_huggingface_hubs() -> None:
    assert job_flavors() == tuple(flavor.value for flavor in JobHardware)
    assert {"a10g-large", "a100-large", "h200"} <= set(job_flavors())


def test_the_demo_family_runs_on_a_cpu_flavor_with_a_timeout() -> None:
    for release in load_spec(DEMO_SPEC).releases:
        assert release.jobs is not None
        assert (release.jobs.flavor, release.jobs.timeout_seconds) == ("cpu-upgrade", 3600)
        assert release.jobs.install == "hubpub==0.1.0"


def test_a_variant_overrides_the_family_flavor(tmp_path: Path) -> None:
    spec = tiny_family(tmp_path, tmp_path, TWO_VARIANTS)
    flavors = [release.jobs.flavor for release in load_spec(spec).releases if release.jobs]
    assert flavors == ["a10g-large", "h200"]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ("jobs: {flavor: a10g-larg}", "jobs.flavor: unknown Jobs flavor 'a10g-larg'; did you mean 'a10g-large'?"),
        ("jobs: {flavor: h200, timeout: 0}", "jobs.timeout: '0' is not a duration"),
        ("jobs: {flavor: h200, timeout: 2w}", "jobs.timeout: '2w' is not a duration"),
        ("jobs: {flavor: h200, image: 'Bad Image'}", "jobs.image: 'Bad Image' is not a container image reference"),
        ("jobs: {flavor: h200, install: 'torch'}", "jobs.install: 'torch' does not name hubpub"),
        ("jobs: {flavr: h200}", "jobs.flavr: unknown key 'flavr'; did you mean 'flavor'?"),
        ("jobs: {timeout: 1h}", "jobs.flavor: required key is missing"),
    ],
)
def test_mistakes_in_jobs_are_reported_at_their_line(tmp_path: Path, jobs: str, message: str) -> None:
    spec = demo_spec_copy(tmp_path, replace={"jobs: {flavor: cpu-upgrade, timeout: 1h}": jobs})
    with pytest.raises(SpecError) as raised:
        load_spec(spec)
    line = next(number for number, text in enumerate(spec.read_text().splitlines(), 1) if text.startswith("jobs:"))
    assert [problem.line for problem in raised.value.problems if message in str(problem)] == [line]


def test_a_pinned_image_and_a_git_install_are_taken(tmp_path: Path) -> None:
    digest = "0" * 64
    jobs = f"jobs: {{flavor: h200, image: 'ghcr.io/astral-sh/uv:python3.12-bookworm@sha256:{digest}',"
    jobs += " install: 'git+https://github.com/example/hubpub@0123abc', timeout: 90m}"
    spec = demo_spec_copy(tmp_path, replace={"jobs: {flavor: cpu-upgrade, timeout: 1h}": jobs})
    release = load_spec(spec).releases[0]
    assert release.jobs is not None and release.jobs.pinned and release.jobs.timeout_seconds == 5400
    command = job_command(release, "specs/x.yaml", "hf")
    assert command == [
        "uvx",
        "--from",
        "git+https://github.com/example/hubpub@0123abc",
        "hubpub",
        "release",
        "specs/x.yaml",
        "--variant",
        "W4A16",
        "--hub",
        "hf",
        "--spec-bundle-env",
        "HUBPUB_SPEC_BUNDLE",
    ]


def test_the_demo_bundle_carries_the_spec_and_its_files_and_links_the_checkpoint(tmp_path: Path) -> None:
    spec_file = load_spec(DEMO_SPEC)
    bundle = bundle_spec(spec_file)
    assert bundle.spec == "model_specs/demo/smollm2-135m.yaml"
    assert set(bundle.files) == {
        "model_specs/demo/smollm2-135m.yaml",
        "model_specs/demo/calibration.jsonl",
        *(f"model_specs/demo/tasks/{path.name}" for path in (DEMO_SPEC.parent / "tasks").iterdir() if path.is_file()),
    }
    assert bundle.links == {".cache/demo-models": str((DEMO_SPEC.parent / "../../.cache/demo-models").resolve())}
    encoded = bundle.encoded()
    assert len(encoded) < MAX_BUNDLE_CHARS
    spec = unpack_bundle(encoded, tmp_path / "job-spec")
    assert spec == tmp_path / "job-spec" / "model_specs" / "demo" / "smollm2-135m.yaml"
    unpacked = load_spec(spec)
    assert [release.repo_id for release in unpacked.releases] == [release.repo_id for release in spec_file.releases]
    assert unpacked.releases[0].calibration is not None
    assert (
        Path(unpacked.releases[0].calibration.dataset).read_bytes()
        == (DEMO_SPEC.parent / "calibration.jsonl").read_bytes()
    )


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/escape", "a/../../b", ""])
def test_a_bundle_cannot_write_outside_its_folder(tmp_path: Path, name: str) -> None:
    document = {"spec": "s.yaml", "files": {name: base64.b64encode(b"x").decode()}, "links": {}}
    encoded = base64.b64encode(zlib.compress(json.dumps(document).encode())).decode()
    with pytest.raises(Exception, match="not a relative path inside the bundle"):
        unpack_bundle(encoded, tmp_path / "job-spec")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("second", ["b/c", "b/d/c", "b"])
def test_a_bundle_link_cannot_stand_inside_another_link_or_twice(tmp_path: Path, second: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    links = {"b": str(outside)} if second == "b" else {"b": str(outside), second: str(outside)}
    files = {"b/x.txt": base64.b64encode(b"x").decode()} if second == "b" else {}
    document = {"spec": "s.yaml", "files": files, "links": links}
    encoded = base64.b64encode(zlib.compress(json.dumps(document).encode())).decode()
    with pytest.raises(UsageError, match="inside another link or over a file"):
        unpack_bundle(encoded, tmp_path / "job-spec")
    assert list(outside.iterdir()) == []
