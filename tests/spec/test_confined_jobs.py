"""A job on the embedded Hub (HUBPUB_JOB_CONFINED=1) is boxed into its spec bundle.

Each test runs `python -m hubpub release|validate|plan SPEC --spec-bundle-env HUBPUB_SPEC_BUNDLE` as the server
starts a job: in a job folder of its own, with a hand-made spec bundle that tries to reach outside, and asserts
the exact refusal (exit 2, at the spec's line) and that nothing outside the job's folder was read or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubpub import api
from hubpub.confinement import check_specs, task_folder_problems
from hubpub.errors import SpecError, UsageError
from hubpub.hfjobs import BUNDLE_ENV
from hubpub.hub import encode_spec_bundle

SPEC = "specs/release.yaml"
SHOWN = ".hubpub/job-spec/specs/release.yaml"
HEAD = "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\nrepo_id: alice/m\nscheme: W4A16\n"


def run_job(
    job: Path,
    spec: str,
    *,
    files: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    command: str = "release",
    options: tuple[str, ...] = ("--no-push",),
    bundle: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one command as a confined job in the folder `job`, with `spec` (and `files`, `links`) as its bundle."""
    job.mkdir(parents=True, exist_ok=True)
    contents = {SPEC: spec.encode(), **{name: text.encode() for name, text in (files or {}).items()}}
    encoded = encode_spec_bundle(SPEC, contents, links)
    environment = {**os.environ, BUNDLE_ENV: encoded, "HUBPUB_JOB_CONFINED": "1", "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "hubpub", command, SPEC, *(["--spec-bundle-env", BUNDLE_ENV] if bundle else [])]
    return subprocess.run(
        [*argv, *options], cwd=job, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def refusals(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line.strip().removeprefix("error: ") for line in result.stderr.splitlines()]
    return [line for line in lines if line.startswith(SHOWN)]


def test_a_confined_job_must_take_its_spec_from_its_bundle(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.yaml").write_text(HEAD)
    result = run_job(tmp_path / "job", HEAD, bundle=False)
    assert result.returncode == 2
    assert (
        "a job on the embedded Hub takes its spec from its spec bundle: --spec-bundle-env is required" in result.stderr
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--no-push", "--workdir", "{outside}/work"), "--workdir"),
        (("--hub-dir", "{outside}/store"), "--hub-dir"),
        (("--no-push", "--vllm-python", "/bin/sh"), "--vllm-python"),
        (("--no-push", "--cache-dir", "{outside}/cache"), "--cache-dir"),
        (("--hub", "http://127.0.0.1:9/"), "--hub http://127.0.0.1:9/"),
    ],
)
def test_options_that_name_places_or_programs_are_refused(tmp_path: Path, options: tuple[str, ...], named: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = run_job(tmp_path / "job", HEAD, options=tuple(part.format(outside=outside) for part in options))
    assert result.returncode == 2, result.stderr
    assert (
        f"a job on the embedded Hub cannot use {named}: it works in its own folder, with this server's programs only"
        in result.stderr
    )
    assert list(outside.iterdir()) == []


def test_a_release_cannot_start_jobs_of_its_own(tmp_path: Path) -> None:
    result = run_job(tmp_path / "job", HEAD, options=("--on", "hf-jobs"))
    assert result.returncode == 2
    assert "--spec-bundle-env do not apply" in result.stderr
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD)
    with pytest.raises(UsageError) as refused:
        api.release_on_jobs([spec], on_line=lambda variant, line: None, confined=True)
    assert str(refused.value) == (
        "a job on the embedded Hub cannot use --on hf-jobs: it works in its own folder,"
        " with this server's programs only"
    )


def test_plan_refuses_another_work_folder(tmp_path: Path) -> None:
    result = run_job(tmp_path / "job", HEAD, command="plan", options=("--workdir", str(tmp_path)))
    assert result.returncode == 2
    assert "a job on the embedded Hub cannot use --workdir" in result.stderr


def test_a_spec_naming_a_program_is_refused_at_its_line(tmp_path: Path) -> None:
    spec = HEAD + "verify:\n  vllm_python: /usr/bin/python3\n"
    for command in ("release", "validate", "plan"):
        result = run_job(tmp_path / command, spec, command=command, options=())
        assert refusals(result) == [
            f"{SHOWN}:5:16: verify.vllm_python: a job on the embedded Hub cannot name a program to run:"
            " remove verify.vllm_python"
        ]


def test_local_paths_outside_the_bundle_are_refused_at_their_lines(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "data.jsonl").write_text('{"text": "the owner\'s notes"}\n')
    (secret / "card.md.j2").write_text("{{ card.repo_id }}")
    (tmp_path / "job").mkdir()
    spec = (
        HEAD
        + f"source:\n  path: {secret}\n"
        + "calibration:\n  dataset: ../../../../secret/data.jsonl\n"
        + "card:\n  template: ~/card.md.j2\n"
        + "evaluation:\n  tasks: [t]\n  include_path: [tasks, ../../../../secret]\n"
    )
    result = run_job(tmp_path / "job", spec, options=())
    message = "is outside the job's bundle: a job reads only the files its bundle holds"
    assert refusals(result) == [
        f"{SHOWN}:5:9: source.path: '{secret}' {message}",
        f"{SHOWN}:7:12: calibration.dataset: '../../../../secret/data.jsonl' {message}",
        f"{SHOWN}:9:13: card.template: '~/card.md.j2' {message}",
        f"{SHOWN}:12:25: evaluation.include_path[1]: '../../../../secret' {message}",
    ]


def test_a_link_in_the_bundle_does_not_carry_a_path_outside(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "card.md.j2").write_text("{{ card.repo_id }}")
    spec = HEAD + "source:\n  path: ../model\ncard:\n  template: ../model/card.md.j2\n"
    result = run_job(tmp_path / "job", spec, links={"model": str(secret)}, command="validate", options=())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the link 'model' must name a relative target inside the bundle" in result.stderr
    assert not (tmp_path / "job" / ".hubpub" / "job-spec" / "model").exists()


def test_a_link_out_that_is_planted_in_the_unpacked_bundle_is_refused_at_its_line(tmp_path: Path) -> None:
    # The bundle refuses such links when it unpacks; the spec's own check is the second line, for a link that got
    # there another way.
    bundle = tmp_path / "job-spec"
    (bundle / "specs").mkdir(parents=True)
    (bundle / SPEC).write_text(HEAD + "source:\n  path: ../model\ncard:\n  template: ../model/card.md.j2\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "card.md.j2").write_text("{{ card.repo_id }}")
    (bundle / "model").symlink_to(secret, target_is_directory=True)
    with pytest.raises(SpecError) as refused:
        check_specs([bundle / SPEC], bundle)
    message = "is outside the job's bundle: a job reads only the files its bundle holds"
    assert [str(problem) for problem in refused.value.problems] == [
        f"{bundle / SPEC}:5:9: source.path: '../model' {message}",
        f"{bundle / SPEC}:7:13: card.template: '../model/card.md.j2' {message}",
    ]


def test_a_variant_reaching_outside_is_refused_at_the_variants_line(tmp_path: Path) -> None:
    spec = (
        "family: f\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nscheme: W4A16\ncollection: {enabled: false}\n"
        "variants:\n  - repo_id: alice/a\n  - repo_id: alice/b\n    card: {template: /etc/passwd}\n"
    )
    result = run_job(tmp_path / "job", spec, command="validate", options=())
    assert refusals(result) == [
        f"{SHOWN}:8:22: variants[1].card.template: '/etc/passwd' is outside the job's bundle:"
        " a job reads only the files its bundle holds"
    ]


TASK = "task: {name}\ndataset_path: json\noutput_type: loglikelihood\ndoc_to_text: '{{{{ text }}}}'\n"


def test_lm_eval_tasks_that_import_python_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    files = {
        "specs/tasks/plain.yaml": TASK.format(name="plain"),
        "specs/tasks/sneaky.yaml": TASK.format(name="sneaky") + "process_results: !function utils.process\n",
        "specs/tasks/verbatim.yaml": TASK.format(name="verbatim") + "process_docs: !<!function> utils.docs\n",
        "specs/tasks/deep/handle.yaml": "%TAG !f! !fun\n---\n" + TASK.format(name="deep") + "x: !f!ction utils.x\n",
        "specs/tasks/utils.py": f"open({str(marker)!r}, 'w').write('ran')\ndef process(doc, results): return {{}}\n",
    }
    spec = HEAD + "evaluation:\n  tasks: [plain]\n  include_path: [tasks]\n"
    result = run_job(tmp_path / "job", spec, files=files, command="validate", options=())
    why = "makes lm-eval import Python from the task folder; a job's tasks may only use plain YAML (no !function)"
    assert refusals(result) == [
        f"{SHOWN}:6:18: evaluation.include_path[0]: specs/tasks/deep/handle.yaml:7:4: the tag !function {why}",
        f"{SHOWN}:6:18: evaluation.include_path[0]: specs/tasks/sneaky.yaml:5:18: the tag !function {why}",
        f"{SHOWN}:6:18: evaluation.include_path[0]: specs/tasks/verbatim.yaml:5:15: the tag !function {why}",
    ]
    assert not marker.exists()


def test_lm_eval_tasks_cannot_include_or_link_outside_the_bundle(tmp_path: Path) -> None:
    elsewhere = tmp_path / "other-job"
    elsewhere.mkdir()
    (elsewhere / "evil.yaml").write_text(TASK.format(name="evil") + "process_results: !function utils.run\n")
    files = {
        "specs/tasks/a.yaml": TASK.format(name="a") + f"include: {elsewhere / 'evil.yaml'}\n",
        "specs/tasks/b.yaml": TASK.format(name="b") + "include: [../shared.yaml]\n",
        "specs/shared.yaml": "doc_to_target: !function utils.target\n",
    }
    spec = HEAD + "evaluation:\n  tasks: [a]\n  include_path: [tasks]\n"
    result = run_job(tmp_path / "job", spec, files=files, options=())
    prefix = f"{SHOWN}:6:18: evaluation.include_path[0]:"
    assert refusals(result) == [
        f"{prefix} specs/shared.yaml:1:16: the tag !function makes lm-eval import Python from the task folder;"
        " a job's tasks may only use plain YAML (no !function)",
        f"{prefix} specs/tasks/a.yaml: include '{elsewhere / 'evil.yaml'}' is outside the job's bundle",
    ]
    # A link out among the tasks stops the job at its bundle, before any spec is read.
    linked = run_job(tmp_path / "job2", spec, files=files, links={"specs/tasks/linked": str(elsewhere)}, options=())
    assert linked.returncode == 2 and "the link 'specs/tasks/linked' must name a relative target" in linked.stderr


def test_a_task_folder_with_a_planted_link_out_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "job-spec"
    (bundle / "specs" / "tasks").mkdir(parents=True)
    (bundle / "specs" / "tasks" / "a.yaml").write_text(TASK.format(name="a"))
    elsewhere = tmp_path / "other-job"
    elsewhere.mkdir()
    (bundle / "specs" / "tasks" / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert task_folder_problems(bundle / "specs" / "tasks", bundle) == [
        "specs/tasks/linked links outside the job's bundle"
    ]


def test_a_bundle_that_keeps_to_itself_is_accepted(tmp_path: Path) -> None:
    files = {
        "specs/data/calibration.jsonl": '{"text": "hello"}\n',
        "specs/card.md.j2": '{% extends "model_card.md.j2" %}',
        "specs/tasks/plain.yaml": TASK.format(name="plain"),
    }
    spec = (
        HEAD
        + "calibration:\n  dataset: data/calibration.jsonl\ncard:\n  template: card.md.j2\n"
        + "evaluation:\n  tasks: [plain]\n  include_path: [tasks]\n"
    )
    result = run_job(tmp_path / "job", spec, files=files, command="validate", options=())
    assert result.returncode == 0, result.stderr
    assert f"ok {SHOWN}: release (W4A16)" in result.stdout.replace("\n", "")


def test_outside_a_job_the_same_spec_is_not_confined(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + "verify:\n  vllm_python: /usr/bin/python3\n")
    result = subprocess.run(
        [sys.executable, "-m", "hubpub", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "HUBPUB_JOB_CONFINED"},
    )
    assert result.returncode == 0, result.stderr


def test_a_confined_release_finds_no_vllm_environment_beside_or_above_its_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's bundle (or a folder above the job's) may hold a `.venv-vllm`: a job runs only the server's own."""
    from hubpub.pipeline import _vllm_python
    from hubpub.spec import load_spec
    from hubpub.vllm import VLLM_PYTHON_ENV
    from hubpub.vllm.environment import MARKER_NAME

    monkeypatch.delenv(VLLM_PYTHON_ENV, raising=False)
    planted = tmp_path / ".venv-vllm"
    (planted / "bin").mkdir(parents=True)
    (planted / "bin" / "python").symlink_to(sys.executable)
    marker = {"flavour": "cpu", "vllm_version": "0", "torch_version": "0", "device_type": "cpu"}
    marker |= {"python_version": "3", "requirements_sha256": "0", "install_seconds": 0}
    (planted / MARKER_NAME).write_text(json.dumps(marker))
    spec = tmp_path / "job" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text(HEAD)
    (release,) = load_spec(spec).releases
    python = planted.absolute() / "bin" / "python"
    assert _vllm_python(None, release, spec) == (python, "found from the spec's folder upwards")
    assert _vllm_python(None, release, spec, find=False) is None
    # Nor from the folder it runs in.
    monkeypatch.chdir(tmp_path)
    assert _vllm_python(None, release, spec, find=False) is None
    monkeypatch.setenv(VLLM_PYTHON_ENV, sys.executable)
    assert _vllm_python(None, release, spec, find=False) == (
        Path(sys.executable).absolute(),
        "from $HUBPUB_VLLM_PYTHON",
    )


def test_lm_eval_tasks_cannot_read_datasets_from_this_machines_files(tmp_path: Path) -> None:
    files = {
        "specs/tasks/files.yaml": TASK.format(name="files")
        + "dataset_kwargs:\n  data_files: {test: [/etc/passwd, file:///etc/hostname, local.jsonl]}\n",
        "specs/tasks/folder.yaml": TASK.format(name="folder").replace("dataset_path: json", "dataset_path: ../../.."),
        "specs/tasks/hub.yaml": TASK.format(name="hub").replace("dataset_path: json", "dataset_path: org/dataset"),
    }
    spec = HEAD + "evaluation:\n  tasks: [hub]\n  include_path: [tasks]\n"
    result = run_job(tmp_path / "job", spec, files=files, command="plan", options=())
    prefix = f"{SHOWN}:6:18: evaluation.include_path[0]:"
    assert refusals(result) == [
        f"{prefix} specs/tasks/files.yaml: dataset_kwargs.data_files '/etc/passwd' is a path outside the job's bundle",
        f"{prefix} specs/tasks/files.yaml: dataset_kwargs.data_files 'file:///etc/hostname' is a path outside the"
        " job's bundle",
        f"{prefix} specs/tasks/folder.yaml: dataset_path '../../..' is a path outside the job's bundle",
    ]
