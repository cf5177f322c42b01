"""The GitHub Actions workflows pass zizmor and actionlint offline, and keep the hygiene rules they were written to."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.yml"))
ACTION_FILE = REPO_ROOT / "action.yml"
TOOLS_DIR = Path(sys.executable).parent
# The only jobs that may see the Hub's write token, each behind the protected environment that holds it.
TOKEN_JOBS = {("release.yml", "publish"), ("republish.yml", "republish")}
# Jobs whose `hubpub release` step gets a read-only token, for gated bases.
READ_TOKEN_JOBS = {("release.yml", "release")}
USES_LINE = re.compile(r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?P<comment>.*)$")
PINNED = re.compile(r"[0-9a-f]{40}")
VERSION_COMMENT = re.compile(r" # v\d+\.\d+\.\d+")

# A workflow with one mistake of each kind the linters must catch; it proves that their silence on ours means something.
FLAWED_WORKFLOW = """\
name: flawed
on: pull_request_target
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "${{ github.event.pull_request.title }}" $HOME
"""


def tool(name: str) -> str:
    path = TOOLS_DIR / name
    if not path.is_file():
        pytest.fail(f"{name} is missing from {TOOLS_DIR}: install the dev extra (pip install -e '.[dev]')")
    return str(path)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def triggers(workflow: dict[str, Any]) -> Any:
    # YAML 1.1 reads the key `on` as the boolean true.
    return workflow.get("on", workflow.get(True))


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def zizmor(*paths: Path) -> tuple[int, list[Any]]:
    completed = subprocess.run(
        [tool("zizmor"), "--offline", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    return completed.returncode, json.loads(completed.stdout)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # actionlint runs ShellCheck on `run:` scripts only when it finds it; name it so it can never be skipped.
    return subprocess.run(
        [tool("actionlint"), "-shellcheck", tool("shellcheck"), "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )


def test_the_three_workflows_exist() -> None:
    assert [path.name for path in WORKFLOW_FILES] == ["ci.yml", "release.yml", "republish.yml"]


def test_zizmor_offline_finds_nothing() -> None:
    assert zizmor(WORKFLOWS_DIR, ACTION_FILE) == (0, [])


def test_zizmor_exits_non_zero_on_a_flawed_workflow(tmp_path: Path) -> None:
    flawed = tmp_path / ".github" / "workflows" / "flawed.yml"
    flawed.parent.mkdir(parents=True)
    flawed.write_text(FLAWED_WORKFLOW, encoding="utf-8")
    code, findings = zizmor(flawed)
    # zizmor's exit code is 10 + the highest severity found (11 informational … 14 high).
    assert code == 14
    assert {"template-injection", "dangerous-triggers"} <= {finding["ident"] for finding in findings}


def test_actionlint_with_shellcheck_finds_nothing() -> None:
    completed = actionlint(*WORKFLOW_FILES)
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")


def test_actionlint_runs_shellcheck_on_run_scripts(tmp_path: Path) -> None:
    flawed = tmp_path / "flawed.yml"
    flawed.write_text(FLAWED_WORKFLOW, encoding="utf-8")
    completed = actionlint(flawed)
    assert completed.returncode == 1
    assert "SC2086" in completed.stdout
    assert '"github.event.pull_request.title" is potentially untrusted' in completed.stdout


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_permissions_are_empty_at_the_top_and_read_only_per_job(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}
    for job_id, job in workflow["jobs"].items():
        checks_out = any(step.get("uses", "").startswith("actions/checkout@") for step in job["steps"])
        assert job["permissions"] == ({"contents": "read"} if checks_out else {}), job_id


@pytest.mark.parametrize("path", [*WORKFLOW_FILES, ACTION_FILE], ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*(?:- )?uses:", line)]
    document = load(path)
    step_list = [step for _, step in steps(document)] if "jobs" in document else document["runs"]["steps"]
    assert len(lines) == sum(1 for step in step_list if "uses" in step) > 0
    # The project's own Action runs from the checked-out commit: it is pinned by the checkout.
    lines = [line for line in lines if not re.match(r"^\s*(?:- )?uses: \./ ", line)]
    for line in lines:
        match = USES_LINE.match(line)
        assert match is not None, line
        assert PINNED.fullmatch(match["ref"]), line
        assert VERSION_COMMENT.fullmatch(match["comment"]), line


def test_an_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in [*WORKFLOW_FILES, ACTION_FILE]:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = USES_LINE.match(line)
            if match:
                pins.setdefault(match["action"], set()).add(f"{match['ref']}{match['comment']}")
    assert set(pins) == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "actions/download-artifact",
    }
    assert {action: len(refs) for action, refs in pins.items()} == dict.fromkeys(pins, 1)


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_checkout_never_persists_credentials(path: Path) -> None:
    checkouts = [step for _, step in steps(load(path)) if step.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_no_expression_is_expanded_inside_a_run_script(path: Path) -> None:
    scripts = [step["run"] for _, step in steps(load(path)) if "run" in step]
    assert scripts
    for script in scripts:
        assert "${{" not in script, script


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_run_scripts_use_bash_with_pipefail(path: Path) -> None:
    workflow = load(path)
    assert workflow["defaults"] == {"run": {"shell": "bash"}}
    assert all("shell" not in step for _, step in steps(workflow))


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_the_hub_token_reaches_only_the_publishing_jobs_and_only_their_push_step(path: Path) -> None:
    workflow = load(path)
    outside_jobs = {key: value for key, value in workflow.items() if key != "jobs"}
    assert not [text for text in strings(outside_jobs) if "secrets." in text or "HF_TOKEN" in text]
    for job_id, job in workflow["jobs"].items():
        mentions = [text for text in strings(job) if "secrets." in text or "HF_TOKEN" in text]
        if (path.name, job_id) in READ_TOKEN_JOBS:
            assert "environment" not in job and "HF_TOKEN" not in job.get("env", {})
            (holder,) = [step for step in job["steps"] if "HF_TOKEN" in step.get("env", {})]
            assert holder["run"].startswith("hubpub release ")
            assert mentions == ["HF_TOKEN", "${{ secrets.HF_READ_TOKEN }}"]
            continue
        if (path.name, job_id) not in TOKEN_JOBS:
            assert mentions == [], job_id
            continue
        environment = job["environment"]
        assert (environment["name"] if isinstance(environment, dict) else environment) == "hub-release"
        assert "env" not in job or "HF_TOKEN" not in job["env"]
        holders = [step for step in job["steps"] if "HF_TOKEN" in step.get("env", {})]
        action_holders = [step for step in job["steps"] if "token" in step.get("with", {})]
        assert len(holders) + len(action_holders) == 1
        if action_holders:
            # The project's Action takes the token as an input and gives it to its hubpub step alone.
            assert action_holders[0]["uses"] == "./"
            assert action_holders[0]["with"]["token"] == "${{ secrets.HF_TOKEN }}"
            assert mentions == ["${{ secrets.HF_TOKEN }}"]
        else:
            assert holders[0]["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
            assert mentions == ["HF_TOKEN", "${{ secrets.HF_TOKEN }}"]


def test_ci_runs_the_test_suite_and_checks_the_specs() -> None:
    workflow = load(WORKFLOWS_DIR / "ci.yml")
    assert set(triggers(workflow)) == {"push", "pull_request"}
    commands = {
        job_id: [step["run"] for step in job["steps"] if "run" in step] for job_id, job in workflow["jobs"].items()
    }
    assert "make test" in commands["test"]
    assert {"hubpub validate model_specs/", "hubpub plan model_specs/"} <= set(commands["specs"])
    assert {job["runs-on"] for job in workflow["jobs"].values()} == {"ubuntu-latest"}


def test_release_runs_on_release_tags_and_publishes_one_repo_at_a_time() -> None:
    workflow = load(WORKFLOWS_DIR / "release.yml")
    assert triggers(workflow) == {"push": {"tags": ["release/**"]}}
    plan, release, publish = (workflow["jobs"][name] for name in ("plan", "release", "publish"))
    assert plan["outputs"] == {
        "matrix": "${{ steps.matrix.outputs.matrix }}",
        "count": "${{ steps.matrix.outputs.count }}",
    }
    assert [step["run"] for step in plan["steps"] if step.get("id") == "matrix"] == ["hubpub matrix model_specs/"]
    for job in (release, publish):
        assert job["strategy"] == {"fail-fast": False, "matrix": "${{ fromJSON(needs.plan.outputs.matrix) }}"}
        assert job["runs-on"] == "${{ matrix.runs_on }}"
    assert release["needs"] == "plan"
    assert publish["needs"] == ["plan", "release"]
    assert publish["concurrency"] == {"group": "hubpub-${{ matrix.repo_id }}", "cancel-in-progress": False}
    release_runs = [step["run"] for step in release["steps"] if "run" in step]
    assert 'hubpub release "$SPEC" --variant "$VARIANT" --no-push --workdir "$HUBPUB_WORKDIR"' in release_runs
    (push,) = [step for step in publish["steps"] if step.get("id") == "push"]
    assert push["uses"] == "./"
    assert push["with"] == {
        "spec": "${{ matrix.spec }}",
        "variant": "${{ matrix.variant }}",
        "hub": "hf",
        "staged": "true",
        "workdir": "${{ env.HUBPUB_WORKDIR }}",
        "token": "${{ secrets.HF_TOKEN }}",
    }
    assert publish["environment"]["url"] == "${{ steps.push.outputs.repo-url }}"
    uploads = [step for step in release["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    downloads = [step for step in publish["steps"] if step.get("uses", "").startswith("actions/download-artifact@")]
    # The stage logs travel on their own, also from a failed release; the staged folder goes to the publish job.
    logs = [step for step in uploads if step["with"]["name"].startswith("logs-")]
    assert [step["with"]["path"] for step in logs] == ["${{ env.HUBPUB_WORKDIR }}/releases/*/logs/"]
    assert logs[0]["if"] == "${{ !cancelled() }}"
    uploads = [step for step in uploads if step not in logs]
    assert len(uploads) == len(downloads) == 1
    assert uploads[0]["with"]["name"] == downloads[0]["with"]["name"]
    assert uploads[0]["with"]["include-hidden-files"] is True
    assert release["timeout-minutes"] == publish["timeout-minutes"] == "${{ matrix.timeout_minutes }}"
    (staging,) = [step for step in release["steps"] if step.get("run", "").startswith("hubpub release ")]
    assert {name: staging["env"][name] for name in ("HUBPUB_CACHE_DIR", "HF_HUB_CACHE")} == {
        "HUBPUB_CACHE_DIR": "${{ steps.caches.outputs.hubpub }}",
        "HF_HUB_CACHE": "${{ steps.caches.outputs.hf_hub }}",
    }
    assert release["env"]["HUBPUB_PERSISTENT_DIR"] == "${{ vars.HUBPUB_PERSISTENT_DIR }}"


def test_republish_is_dispatched_by_hand_and_only_rewrites_cards() -> None:
    workflow = load(WORKFLOWS_DIR / "republish.yml")
    inputs = triggers(workflow)["workflow_dispatch"]["inputs"]
    assert {name: (spec["type"], spec["default"]) for name, spec in inputs.items()} == {
        "specs": ("string", "model_specs/"),
        "jobs": ("number", 4),
        "dry_run": ("boolean", False),
    }
    (step,) = [step for step in workflow["jobs"]["republish"]["steps"] if "hubpub republish" in step.get("run", "")]
    assert "--card-only" in step["run"]
    assert step["env"] == {
        "SPECS": "${{ inputs.specs }}",
        "JOBS": "${{ inputs.jobs }}",
        "DRY_RUN": "${{ inputs.dry_run }}",
        "HF_TOKEN": "${{ secrets.HF_TOKEN }}",
    }


def test_the_action_is_a_composite_with_the_inputs_and_outputs_a_publisher_needs() -> None:
    action = load(ACTION_FILE)
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {"spec", "variant", "hub", "push", "staged", "token", "workdir", "python-version"}
    assert action["inputs"]["spec"]["required"] is True
    assert {name: spec.get("default") for name, spec in action["inputs"].items() if name != "spec"} == {
        "variant": "",
        "hub": "hf",
        "push": "true",
        "staged": "false",
        "token": "",
        "workdir": ".hubpub/work",
        "python-version": "3.11",
    }
    assert action["outputs"] == {
        "repo-url": {
            "description": action["outputs"]["repo-url"]["description"],
            "value": "${{ steps.hubpub.outputs.repo_url }}",
        },
        "commit": {
            "description": action["outputs"]["commit"]["description"],
            "value": "${{ steps.hubpub.outputs.commit }}",
        },
    }


def test_the_action_passes_inputs_to_its_scripts_through_the_environment_only() -> None:
    scripts = [step for step in load(ACTION_FILE)["runs"]["steps"] if "run" in step]
    assert scripts
    for step in scripts:
        assert "${{" not in step["run"], step["run"]
        assert step["shell"] == "bash"
    (hubpub,) = [step for step in scripts if step.get("id") == "hubpub"]
    # The token reaches the hubpub step alone, as HF_TOKEN.
    assert [name for step in scripts for name, value in step.get("env", {}).items() if "inputs.token" in value] == [
        "HF_TOKEN"
    ]
    assert hubpub["env"]["HF_TOKEN"] == "${{ inputs.token }}"


def test_shellcheck_finds_nothing_in_the_actions_scripts(tmp_path: Path) -> None:
    # actionlint checks how workflows call the Action, not its own scripts: ShellCheck reads them here.
    for number, step in enumerate(step for step in load(ACTION_FILE)["runs"]["steps"] if "run" in step):
        script = tmp_path / f"step-{number}.sh"
        script.write_text("#!/usr/bin/env bash\n" + step["run"], encoding="utf-8")
        completed = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True, check=False)
        assert (completed.returncode, completed.stdout) == (0, ""), step["name"]
