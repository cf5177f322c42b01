"""The spec's `jobs:` section, and the bundle that carries a spec and its files into a job."""

from __future__ import annotations

import base64
import json
import re
import shutil
import zlib
from pathlib import Path

import pytest
from huggingface_hub import JobHardware

from hubpub.errors import SpecError, UsageError
from hubpub.hfjobs import MAX_BUNDLE_CHARS, bundle_spec, job_command, unpack_bundle
from hubpub.hub import BUNDLE_MAX_BYTES
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
    spec = tiny_family(tmp_path, TWO_VARIANTS)
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


def test_a_bundle_carries_the_spec_and_the_files_it_names_beside_it(tmp_path: Path) -> None:
    demo = DEMO_SPEC.parent
    project = tmp_path / "project"
    shutil.copytree(demo, project, ignore=shutil.ignore_patterns("__pycache__"))
    spec = project / DEMO_SPEC.name
    text = spec.read_text(encoding="utf-8")
    source = text[text.index("source:") : text.index("license:")]
    spec.write_text(text.replace(source, ""), encoding="utf-8")
    spec_file = load_spec(spec)
    bundle = bundle_spec(spec_file)
    assert bundle.spec == "smollm2-135m.yaml"
    assert set(bundle.files) == {
        "smollm2-135m.yaml",
        "calibration.jsonl",
        *(f"tasks/{path.name}" for path in (demo / "tasks").iterdir() if path.is_file()),
    }
    encoded = bundle.encoded()
    assert len(encoded) < MAX_BUNDLE_CHARS
    unpacked_spec = unpack_bundle(encoded, tmp_path / "job-spec")
    assert unpacked_spec == tmp_path / "job-spec" / "smollm2-135m.yaml"
    unpacked = load_spec(unpacked_spec)
    assert [release.repo_id for release in unpacked.releases] == [release.repo_id for release in spec_file.releases]
    assert unpacked.releases[0].calibration is not None
    assert Path(unpacked.releases[0].calibration.dataset).read_bytes() == (demo / "calibration.jsonl").read_bytes()


def test_the_demo_spec_cannot_go_to_a_job_its_checkpoint_is_outside_its_folder() -> None:
    with pytest.raises(UsageError, match=r"\.\./\.\./\.cache/demo-models is outside the spec's folder"):
        bundle_spec(load_spec(DEMO_SPEC))


def raw_bundle(document: dict[str, object]) -> str:
    return base64.b64encode(zlib.compress(json.dumps(document).encode())).decode()


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/escape", "a/../../b", ""])
def test_a_bundle_cannot_write_outside_its_folder(tmp_path: Path, name: str) -> None:
    encoded = raw_bundle({"spec": "s.yaml", "files": {name: base64.b64encode(b"x").decode()}, "links": {}})
    with pytest.raises(UsageError, match="not a relative path inside the bundle"):
        unpack_bundle(encoded, tmp_path / "job-spec")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({"b": "x", "b/c": "x"}, "b/c would stand inside the link b"),
        ({"b": "x", "b/d/c": "x"}, "b/d/c would stand inside the link b"),
        ({"s.yaml/c": "x"}, "s.yaml/c would stand inside the file s.yaml"),
        ({"b": str(Path.home())}, "the link 'b' must name a relative target inside the bundle"),
        ({"a/b": "../../outside"}, "the link 'a/b' must name a relative target inside the bundle"),
        ({"b": "x/../../outside"}, "the link 'b' must name a relative target inside the bundle"),
    ],
)
def test_a_bundle_link_stays_inside_the_bundle(tmp_path: Path, links: dict[str, str], message: str) -> None:
    encoded = raw_bundle({"spec": "s.yaml", "files": {"s.yaml": ""}, "links": links})
    with pytest.raises(UsageError, match=re.escape(message)):
        unpack_bundle(encoded, tmp_path / "job-spec")
    assert not (tmp_path / "job-spec").exists()


def test_a_link_inside_the_bundle_is_made(tmp_path: Path) -> None:
    files = {"s.yaml": base64.b64encode(b"x: 1").decode(), "data/d.jsonl": base64.b64encode(b"{}").decode()}
    encoded = raw_bundle({"spec": "s.yaml", "files": files, "links": {"tasks/d.jsonl": "../data/d.jsonl"}})
    unpack_bundle(encoded, tmp_path / "job-spec")
    assert (tmp_path / "job-spec" / "tasks" / "d.jsonl").read_bytes() == b"{}"


def test_a_bundle_that_unpacks_past_its_limit_is_refused_by_the_job(tmp_path: Path) -> None:
    bomb = raw_bundle({"spec": "s.yaml", "files": {"s.yaml": base64.b64encode(bytes(BUNDLE_MAX_BYTES)).decode()}})
    assert len(bomb) < MAX_BUNDLE_CHARS
    with pytest.raises(UsageError, match="it unpacks to more than"):
        unpack_bundle(bomb, tmp_path / "job-spec")
    assert not (tmp_path / "job-spec").exists()
