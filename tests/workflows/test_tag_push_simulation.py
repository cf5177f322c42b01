"""A release tag pushed for a demo variant, played through release.yml as GitHub Actions would run it.

The jobs' own `run:` scripts run in bash, in order (plan, then release and publish per matrix entry), each
matrix entry on a fresh runner folder, with the environment GitHub gives a step and the `${{ }}` values a
small evaluator computes. Only the `uses:` steps are simulated: checkout copies the project's files,
setup-python puts this virtual environment on PATH, the artifact actions copy folders, the project's own Action
(`uses: ./`, action.yml) runs its composite steps the same way, with its inputs and outputs, and the steps with
id `install` (pip installs from the network) are skipped because this environment already holds hubpub. So is
the step with id `vllm-env` (it installs vLLM from the network): its output is `none`, so the simulated release
verifies without vLLM.
The Hub is hubpub's embedded Hub server, reached through HF_ENDPOINT.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import HfApi

from hubpub.hub import HubServer, Identity
from tests.conftest import DEMO_SPEC, REPO_ROOT

RELEASE_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "release.yml"
WORKFLOW_FILES = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
CHECKED_OUT = ("model_specs", "scripts", ".github", "pyproject.toml", "action.yml")
VENV_BIN = Path(sys.executable).parent
TOKEN = "hf_release_simulation"
READ_TOKEN = "hf_read_simulation"
HUB_ENVIRONMENT = "hub-release"
REPOSITORY = "example-org/hubpub"
SERVER_URL = "https://github.com"
RUN_ID = "4242"
# Steps the simulation skips (they install from the network), and the only command each may run.
INSTALL_STEPS = {"install": ["python", "-m", "pip", "install"], "vllm-env": ["hubpub", "vllm-env"]}


# A small evaluator for GitHub Actions expressions: literals, context paths, ==, !=, <, >, !, &&, ||,
# parentheses and the functions below.
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[<>!().,\[\]])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def _truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    return not (isinstance(value, int | float) and not isinstance(value, bool) and value == 0)


def as_text(value: Any) -> str:
    """A value as GitHub writes it into a string or an environment variable."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _loose(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return float(value)
    return value


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) != isinstance(right, str) and None not in (left, right):
        try:
            return float(as_text(left) or 0) == float(as_text(right) or 0)
        except ValueError:
            return False
    return bool(_loose(left) == _loose(right))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fromjson": lambda text: json.loads(as_text(text)),
    "tojson": lambda value: json.dumps(value, indent=2),
    "contains": lambda haystack, needle: (
        any(_equal(item, needle) for item in haystack)
        if isinstance(haystack, list)
        else as_text(needle).casefold() in as_text(haystack).casefold()
    ),
    "startswith": lambda text, prefix: as_text(text).casefold().startswith(as_text(prefix).casefold()),
    "endswith": lambda text, suffix: as_text(text).casefold().endswith(as_text(suffix).casefold()),
    "format": lambda pattern, *args: re.sub(r"\{(\d+)\}", lambda m: as_text(args[int(m[1])]), as_text(pattern)),
    "join": lambda items, separator=",": as_text(separator).join(as_text(item) for item in items),
    "success": lambda: True,
    "always": lambda: True,
    "failure": lambda: False,
    "cancelled": lambda: False,
}


class Expression:
    """Evaluates one expression (the text between `${{` and `}}`) against the contexts given."""

    def __init__(self, text: str, contexts: Mapping[str, Any]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position, text = 0, text.rstrip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ValueError(f"cannot read the expression {text!r} at {position}")
            kind = next(name for name, value in match.groupdict().items() if value is not None)
            self.tokens.append((kind, match[kind]))
            position = match.end()
        self.position = 0
        self.contexts = contexts

    def evaluate(self) -> Any:
        value = self._or()
        if self.position != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.position][1]!r} in the expression")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ValueError("the expression ends too early")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.position += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if _truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._comparison()
        while self._peek() == "&&":
            self._take()
            right = self._comparison()
            value = right if _truthy(value) else value
        return value

    def _comparison(self) -> Any:
        left = self._unary()
        operator = self._peek()
        if operator not in ("==", "!=", "<", ">", "<=", ">="):
            return left
        self._take()
        right = self._unary()
        if operator == "==":
            return _equal(left, right)
        if operator == "!=":
            return not _equal(left, right)
        left_number, right_number = float(as_text(left) or 0), float(as_text(right) or 0)
        return {
            "<": left_number < right_number,
            ">": left_number > right_number,
            "<=": left_number <= right_number,
            ">=": left_number >= right_number,
        }[operator]

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind != "name":
            raise ValueError(f"unexpected {text!r} in the expression")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            return self._call(text)
        if text not in self.contexts:
            raise ValueError(f"unknown context {text!r}")
        return self._properties(self.contexts[text])

    def _call(self, name: str) -> Any:
        function = FUNCTIONS.get(name.casefold())
        if function is None:
            raise ValueError(f"the simulation knows no function {name!r}")
        self._take("(")
        arguments = []
        while self._peek() != ")":
            arguments.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        return self._properties(function(*arguments))

    def _properties(self, value: Any) -> Any:
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                key: Any = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
                value = value[key]
            else:
                value = None
        return value


def expand(value: Any, contexts: Mapping[str, Any]) -> Any:
    """A workflow value with its `${{ }}` expressions evaluated; a lone expression keeps its type."""
    if not isinstance(value, str):
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return Expression(whole[1], contexts).evaluate()
    return _TEMPLATE.sub(lambda match: as_text(Expression(match[1], contexts).evaluate()), value)


def condition(text: str, contexts: Mapping[str, Any]) -> bool:
    whole = _TEMPLATE.fullmatch(text.strip())
    return _truthy(Expression(whole[1] if whole else text, contexts).evaluate())


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a $GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines() if path.is_file() else [])
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block: list[str] = []
            for value_line in lines:
                if value_line == delimiter:
                    break
                block.append(value_line)
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass
class StepRecord:
    job: str
    label: str
    env: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    log: str = ""


@dataclass
class JobRun:
    job_id: str
    matrix: dict[str, Any]
    runs_on: Any
    workspace: Path
    outputs: dict[str, str]
    steps: list[StepRecord]


@dataclass(frozen=True)
class Secrets:
    repository: Mapping[str, str]
    environment: Mapping[str, str]
    """The secrets of the `hub-release` environment."""


class SimulatedRunner:
    """Runs the jobs of one workflow for one event, on runner folders under `root`."""

    def __init__(self, workflow: dict[str, Any], root: Path, github: dict[str, Any], event: dict[str, Any]) -> None:
        self.workflow = workflow
        self.root = root
        self.github = github
        self.artifacts = root / "artifacts"
        self.artifacts.mkdir(parents=True)
        self.event_path = root / "event.json"
        self.event_path.write_text(json.dumps(event), encoding="utf-8")
        self.runs: dict[str, list[JobRun]] = {}
        self.runner_count = 0

    def run_all(self, base_env: Mapping[str, str], secrets: Secrets, demo_gguf: Path) -> None:
        for job_id, job in self.workflow["jobs"].items():
            needs = job.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                assert need in self.runs, f"{job_id} needs {need}, which has not run"
            self.runs[job_id] = self.run_job(job_id, job, base_env, secrets, demo_gguf)

    def run_job(
        self, job_id: str, job: dict[str, Any], base_env: Mapping[str, str], secrets: Secrets, gguf: Path
    ) -> list[JobRun]:
        needs = job.get("needs", [])
        needs_context = {
            need: {"result": "success", "outputs": self.runs[need][-1].outputs}
            for need in ([needs] if isinstance(needs, str) else needs)
        }
        environment = job.get("environment")
        environment_name = environment.get("name") if isinstance(environment, dict) else environment
        # Repository secrets reach every job; environment secrets only the jobs that name their environment.
        job_secrets = {**secrets.repository, **(secrets.environment if environment_name == HUB_ENVIRONMENT else {})}
        contexts: dict[str, Any] = {
            "github": {**self.github, "job": job_id},
            "needs": needs_context,
            "secrets": job_secrets,
            "inputs": {},
            "vars": {},
            "env": {},
            "matrix": {},
            "strategy": {"fail-fast": True, "job-index": 0, "job-total": 1},
            "steps": {},
            "runner": {"os": "Linux", "arch": "X64"},
            "job": {},
        }
        if "if" in job and not condition(job["if"], contexts):
            return []
        strategy = job.get("strategy", {})
        matrix = expand(strategy["matrix"], contexts) if "matrix" in strategy else {"include": [{}]}
        assert set(matrix) == {"include"}, "the simulation expands include-only matrices"
        runs = []
        for index, entry in enumerate(matrix["include"]):
            entry_contexts = {
                **contexts,
                "matrix": entry,
                "strategy": {"fail-fast": strategy.get("fail-fast", True), "job-index": index},
            }
            runs.append(self.run_matrix_entry(job_id, job, entry_contexts, base_env, gguf))
        return runs

    def run_matrix_entry(
        self, job_id: str, job: dict[str, Any], contexts: dict[str, Any], base_env: Mapping[str, str], gguf: Path
    ) -> JobRun:
        self.runner_count += 1
        runner = self.root / f"runner-{self.runner_count}-{job_id}"
        workspace, temp = runner / "workspace", runner / "temp"
        workspace.mkdir(parents=True)
        temp.mkdir()
        # What pip's cache would hold on a warm runner: fetch_demo_model.py checks its sha256 and finds it done.
        (workspace / ".cache" / "demo-models").mkdir(parents=True)
        (workspace / ".cache" / "demo-models" / gguf.name).symlink_to(gguf)
        contexts["github"] = {**contexts["github"], "workspace": str(workspace)}
        contexts["runner"] = {**contexts["runner"], "temp": str(temp)}
        env: dict[str, str] = {}
        for scope in (self.workflow.get("env", {}), job.get("env", {})):
            for name, value in scope.items():
                env[name] = as_text(expand(value, {**contexts, "env": env}))
        label = f"{job_id} {json.dumps(contexts['matrix'].get('variant', ''))}"
        run = JobRun(job_id, contexts["matrix"], expand(job["runs-on"], contexts), workspace, {}, [])
        path_entries = [entry for entry in base_env["PATH"].split(os.pathsep) if Path(entry) != VENV_BIN]
        for number, step in enumerate(job["steps"]):
            step_contexts = {**contexts, "env": env}
            step_env = {
                **env,
                **{name: as_text(expand(value, step_contexts)) for name, value in step.get("env", {}).items()},
            }
            record = StepRecord(label, step.get("name") or step.get("uses") or step["run"], step_env)
            run.steps.append(record)
            if "if" in step and not condition(step["if"], step_contexts):
                continue
            if step.get("uses") == "./":
                inputs = {name: as_text(expand(value, step_contexts)) for name, value in step.get("with", {}).items()}
                composite = Composite(self, run, job_id, base_env, workspace, temp, path_entries)
                record.outputs = composite.run(f"{number}", inputs, step_contexts, step_env, record.label)
            elif "uses" in step:
                inputs = {name: as_text(expand(value, step_contexts)) for name, value in step.get("with", {}).items()}
                self.use_action(step["uses"].split("@")[0], inputs, workspace, path_entries)
            elif step.get("id") in INSTALL_STEPS:
                assert VENV_BIN.as_posix() in path_entries, "hubpub is installed after setup-python"
                assert_only_installs(step["run"], INSTALL_STEPS[step["id"]])
                if step["id"] == "vllm-env":
                    # No vLLM here: the release must not find this checkout's .venv-vllm beside hubpub's own.
                    record.outputs = {"python": "none"}
            else:
                shell = self.workflow["defaults"]["run"]["shell"]
                self.run_step(record, step["run"], shell, job_id, base_env, workspace, temp, path_entries, f"{number}")
            if "id" in step:
                contexts["steps"] = {
                    **contexts["steps"],
                    step["id"]: {"outputs": record.outputs, "outcome": "success", "conclusion": "success"},
                }
        run.outputs = {name: as_text(expand(value, contexts)) for name, value in job.get("outputs", {}).items()}
        return run

    def run_step(
        self,
        record: StepRecord,
        script: str,
        shell: str,
        job_id: str,
        base_env: Mapping[str, str],
        workspace: Path,
        temp: Path,
        path_entries: list[str],
        number: str,
    ) -> None:
        files = {name: temp / f"step-{number}-{name}" for name in ("output", "summary", "env", "path")}
        process_env = {
            **base_env,
            **self.default_variables(job_id, workspace, temp),
            **record.env,
            "PATH": os.pathsep.join(path_entries),
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_PATH": str(files["path"]),
        }
        assert shell == "bash"
        record.log = self.run_script(script, process_env, workspace, temp, number)
        record.outputs = read_outputs(files["output"])
        record.summary = files["summary"].read_text(encoding="utf-8") if files["summary"].is_file() else ""
        assert not files["env"].exists() and not files["path"].exists(), "no step changes GITHUB_ENV/PATH"

    def default_variables(self, job_id: str, workspace: Path, temp: Path) -> dict[str, str]:
        github = self.github
        return {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": github["event_name"],
            "GITHUB_EVENT_PATH": str(self.event_path),
            "GITHUB_REF": github["ref"],
            "GITHUB_REF_NAME": github["ref_name"],
            "GITHUB_REF_TYPE": github["ref_type"],
            "GITHUB_SHA": github["sha"],
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_SERVER_URL": github["server_url"],
            "GITHUB_RUN_ID": github["run_id"],
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_WORKFLOW": github["workflow"],
            "GITHUB_JOB": job_id,
            "GITHUB_WORKSPACE": str(workspace),
            "HOME": str(temp.parent),
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": str(temp),
            "HF_HOME": str(temp.parent / "hf-home"),
        }

    def run_script(self, script: str, env: dict[str, str], workspace: Path, temp: Path, number: str) -> str:
        path = temp / f"step-{number}.sh"
        path.write_text(script, encoding="utf-8")
        # What `shell: bash` runs on a Linux runner.
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        log = completed.stdout + completed.stderr
        if completed.returncode != 0:
            pytest.fail(f"step `{script.strip()}` exited {completed.returncode}:\n{log[-4000:]}")
        return log

    def use_action(self, action: str, inputs: dict[str, str], workspace: Path, path_entries: list[str]) -> None:
        if action == "actions/checkout":
            assert inputs["persist-credentials"] == "false"
            for name in CHECKED_OUT:
                source = REPO_ROOT / name
                if source.is_dir():
                    shutil.copytree(source, workspace / name, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, workspace / name)
        elif action == "actions/setup-python":
            assert inputs["python-version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
            path_entries.insert(0, VENV_BIN.as_posix())
        elif action == "actions/upload-artifact":
            target = self.artifacts / inputs["name"]
            assert not target.exists(), f"artifact {inputs['name']} uploaded twice in one run"
            assert inputs["if-no-files-found"] in ("error", "warn")
            # As upload-artifact does: the path may hold wildcards; the matched files keep their paths below the
            # folder the matches have in common.
            pattern = inputs["path"].rstrip("/")
            matches = [workspace / pattern] if "*" not in pattern else sorted(workspace.glob(pattern))
            files = [file for match in matches for file in (match.rglob("*") if match.is_dir() else [match])]
            files = [file for file in files if file.is_file()]
            # Every upload of this successful run has something to upload, even those that only warn when empty.
            assert files, f"{workspace / pattern} is empty"
            root = Path(os.path.commonpath([file.parent for file in files]))
            for file in files:
                (target / file.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target / file.relative_to(root))
        elif action == "actions/download-artifact":
            shutil.copytree(self.artifacts / inputs["name"], workspace / inputs["path"], dirs_exist_ok=True)
        else:
            pytest.fail(f"the simulation does not know the action {action}")


@dataclass
class Composite:
    """The project's own Action (action.yml) run as a step: its inputs with their defaults, its steps (each a
    record of its own, labelled after the calling step), and its outputs from its steps' outputs."""

    runner: SimulatedRunner
    job: JobRun
    job_id: str
    base_env: Mapping[str, str]
    workspace: Path
    temp: Path
    path_entries: list[str]

    def run(
        self, number: str, inputs: dict[str, str], contexts: dict[str, Any], env: dict[str, str], label: str
    ) -> dict[str, str]:
        action = yaml.safe_load((self.workspace / "action.yml").read_text(encoding="utf-8"))
        assert action["runs"]["using"] == "composite"
        assert set(inputs) <= set(action["inputs"]), f"unknown inputs {set(inputs) - set(action['inputs'])}"
        missing = [name for name, spec in action["inputs"].items() if spec.get("required") and name not in inputs]
        assert not missing, f"required inputs missing: {missing}"
        values = {name: inputs.get(name, str(spec.get("default", ""))) for name, spec in action["inputs"].items()}
        github = {**contexts["github"], "action_path": str(self.workspace)}
        inner: dict[str, Any] = {**contexts, "inputs": values, "github": github, "steps": {}}
        for index, step in enumerate(action["runs"]["steps"]):
            step_env = {**env, **{name: as_text(expand(value, inner)) for name, value in step.get("env", {}).items()}}
            record = StepRecord(self.job.steps[-1].job, f"{label} / {step.get('name') or step['uses']}", step_env)
            self.job.steps.append(record)
            if "uses" in step:
                with_inputs = {name: as_text(expand(value, inner)) for name, value in step.get("with", {}).items()}
                self.runner.use_action(step["uses"].split("@")[0], with_inputs, self.workspace, self.path_entries)
            elif step.get("id") in INSTALL_STEPS:
                assert VENV_BIN.as_posix() in self.path_entries, "hubpub is installed after setup-python"
                assert_only_installs(step["run"], INSTALL_STEPS[step["id"]])
            else:
                self.runner.run_step(
                    record,
                    step["run"],
                    step["shell"],
                    self.job_id,
                    self.base_env,
                    self.workspace,
                    self.temp,
                    self.path_entries,
                    f"{number}-{index}",
                )
            if "id" in step:
                inner["steps"] = {**inner["steps"], step["id"]: {"outputs": record.outputs, "outcome": "success"}}
        return {name: as_text(expand(spec["value"], inner)) for name, spec in action.get("outputs", {}).items()}


def assert_only_installs(script: str, command: list[str]) -> None:
    """Install steps are skipped; they must do nothing else that the simulation would then miss."""
    for line in script.splitlines():
        words = [word for word in line.split() if not re.fullmatch(r"PIP_[A-Z_]+=\S+", word)]
        assert not words or words[0] in ("if", "else", "fi") or words[: len(command)] == command, line


def expressions_in(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield from (match[1] for match in _TEMPLATE.finditer(node))
    elif isinstance(node, dict):
        for key, value in node.items():
            # An `if:` is an expression even without `${{ }}`.
            if key == "if" and isinstance(value, str) and "${{" not in value:
                yield value
            else:
                yield from expressions_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions_in(item)


def test_the_evaluator_follows_github_semantics() -> None:
    contexts = {
        "needs": {"plan": {"outputs": {"matrix": '{"include": [{"variant": "W8A8"}]}', "count": "1"}}},
        "matrix": {"repo_id": "demo/x", "runs_on": ["self-hosted", "gpu"]},
        "inputs": {"jobs": 4, "dry_run": False},
    }
    assert expand("${{ fromJSON(needs.plan.outputs.matrix) }}", contexts) == {"include": [{"variant": "W8A8"}]}
    assert expand("hubpub-${{ matrix.repo_id }}", contexts) == "hubpub-demo/x"
    assert expand("${{ matrix.runs_on }}", contexts) == ["self-hosted", "gpu"]
    assert condition("needs.plan.outputs.count != '0'", contexts) is True
    assert condition("needs.plan.outputs.count == 1", contexts) is True
    assert condition("contains(matrix.runs_on, 'GPU') && !inputs.dry_run", contexts) is True
    assert expand("${{ inputs.missing || 'fallback' }}", contexts) == "fallback"
    assert as_text(expand("${{ inputs.jobs }}", contexts)) == "4"
    assert as_text(expand("${{ inputs.dry_run }}", contexts)) == "false"
    with pytest.raises(ValueError, match="unknown context 'secret'"):
        expand("${{ secret.HF_TOKEN }}", contexts)


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_the_evaluator_reads_every_expression_of_the_workflows(path: Path) -> None:
    names = ("github", "env", "vars", "secrets", "inputs", "matrix", "steps", "runner", "strategy", "job")
    contexts: dict[str, Any] = {name: {} for name in names}
    contexts["needs"] = {"plan": {"outputs": {"matrix": '{"include": []}', "count": "0"}}}
    found = list(expressions_in(yaml.safe_load(path.read_text(encoding="utf-8"))))
    assert found
    for text in found:
        Expression(text, contexts).evaluate()


def demo_variant(name: str) -> tuple[str, str, list[str]]:
    spec = yaml.safe_load(DEMO_SPEC.read_text(encoding="utf-8"))
    return spec["family"], spec["version"], [item["repo_id"] for item in spec["variants"] if item["name"] == name]


@pytest.mark.model
@pytest.mark.timeout(3600)
def test_a_release_tag_publishes_a_demo_variant_through_the_workflow(demo_model: Path, tmp_path: Path) -> None:
    # One variant's tag: a whole-family tag only widens the matrix (tests/family/test_matrix.py), and each
    # demo variant's release costs CI minutes (quantize, verify, lm-eval, publish).
    family, version, repo_ids = demo_variant("W4A16")
    tag = f"release/{family}/W4A16/v{version}"
    sha = "1" * 40
    workflow = yaml.safe_load(RELEASE_WORKFLOW.read_text(encoding="utf-8"))
    github = {
        "event_name": "push",
        "ref": f"refs/tags/{tag}",
        "ref_name": tag,
        "ref_type": "tag",
        "sha": sha,
        "repository": REPOSITORY,
        "repository_owner": REPOSITORY.split("/")[0],
        "server_url": SERVER_URL,
        "run_id": RUN_ID,
        "workflow": workflow["name"],
        "actor": "releaser",
    }
    event = {
        "ref": github["ref"],
        "before": "0" * 40,
        "after": sha,
        "created": True,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        "pusher": {"name": "releaser"},
    }
    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="demo")}) as hub:
        base_env = {
            **{name: value for name, value in os.environ.items() if not name.startswith(("GITHUB_", "RUNNER_"))},
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
        }
        base_env.pop("HF_TOKEN", None)
        runner = SimulatedRunner(workflow, tmp_path / "actions", github, event)
        secrets = Secrets(repository={"HF_READ_TOKEN": READ_TOKEN}, environment={"HF_TOKEN": TOKEN})
        runner.run_all(base_env, secrets, demo_model.resolve())

        (plan,) = runner.runs["plan"]
        (matrix_step,) = [step for step in plan.steps if "matrix" in step.outputs]
        entries = json.loads(matrix_step.outputs["matrix"])["include"]
        assert [entry["repo_id"] for entry in entries] == repo_ids
        assert matrix_step.outputs["count"] == str(len(repo_ids)) == plan.outputs["count"]
        assert {json.dumps(entry["runs_on"]) for entry in entries} == {'["ubuntu-latest"]'}

        releases, publishes = runner.runs["release"], runner.runs["publish"]
        assert [run.matrix["repo_id"] for run in releases] == [run.matrix["repo_id"] for run in publishes] == repo_ids
        for release in releases:
            (staging,) = [step for step in release.steps if step.summary]
            assert staging.summary.startswith("## hubpub release")
            assert f"`{release.matrix['repo_id']}`" in staging.summary and "Staged (not pushed)" in staging.summary
            artifact = runner.artifacts / f"staged-{family}-{release.matrix['variant']}"
            assert {"hubpub-manifest.json", "README.md", "model.safetensors"} <= {p.name for p in artifact.iterdir()}
            # Without HUBPUB_PERSISTENT_DIR the shared caches live in the job's temp folder, not the work folder.
            caches = release.workspace.parent / "temp" / "hubpub-caches"
            assert list((caches / "hubpub" / "base-perplexity").glob("*.json"))
            assert not (release.workspace / ".hubpub" / "work" / "cache").exists()

        client = HfApi(endpoint=hub.url, token=TOKEN)
        for publish in publishes:
            repo_id = publish.matrix["repo_id"]
            # The Action's outputs, as the calling step (and the environment's URL) reads them.
            (push,) = [step for step in publish.steps if step.label == "Push to the Hub"]
            commit = push.outputs["commit"]
            assert re.fullmatch(r"[0-9a-f]{40}", commit)
            assert push.outputs["repo-url"] == f"{hub.url}/{repo_id}"
            (inside,) = [step for step in publish.steps if step.label == "Push to the Hub / Run hubpub"]
            assert inside.summary.startswith("## hubpub push") and f"`{commit[:12]}`" in inside.summary
            assert client.model_info(repo_id).sha == commit
            assert client.list_repo_commits(repo_id)[0].commit_id == commit
            tags = {ref.name: ref.target_commit for ref in client.list_repo_refs(repo_id).tags}
            assert tags == {f"v{version}": commit}
            manifest = json.loads(
                Path(client.hf_hub_download(repo_id, "hubpub-manifest.json", local_dir=tmp_path / repo_id)).read_text()
            )
            assert manifest["ci_run_url"] == f"{SERVER_URL}/{REPOSITORY}/actions/runs/{RUN_ID}"

        every_step = [step for runs in runner.runs.values() for run in runs for step in run.steps]
        holders = sorted((step.job, step.label, step.env["HF_TOKEN"]) for step in every_step if "HF_TOKEN" in step.env)
        assert holders == sorted(
            [
                (f"publish {json.dumps(run.matrix['variant'])}", "Push to the Hub / Run hubpub", TOKEN)
                for run in publishes
            ]
            + [
                (
                    f"release {json.dumps(run.matrix['variant'])}",
                    "Quantize, verify, evaluate and render the card",
                    READ_TOKEN,
                )
                for run in releases
            ]
        )
        for step in every_step:
            for secret in (TOKEN, READ_TOKEN):
                assert secret not in step.log + step.summary + json.dumps(step.outputs)
        for path in [*runner.artifacts.rglob("*"), *runner.root.glob("runner-*-release/temp/hubpub-caches/**/*")]:
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes() and READ_TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("persistent", [False, True], ids=["job-temp", "persistent"])
def test_the_release_job_caches_in_the_persistent_folder_when_the_runner_has_one(
    tmp_path: Path, persistent: bool
) -> None:
    workflow = yaml.safe_load(RELEASE_WORKFLOW.read_text(encoding="utf-8"))
    (step,) = [step for step in workflow["jobs"]["release"]["steps"] if step.get("id") == "caches"]
    temp, workspace, output = tmp_path / "temp", tmp_path / "workspace", tmp_path / "output"
    temp.mkdir()
    workspace.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "RUNNER_TEMP": str(temp),
        "GITHUB_OUTPUT": str(output),
        "HUBPUB_WORKDIR": workflow["env"]["HUBPUB_WORKDIR"],
        # What `${{ vars.HUBPUB_PERSISTENT_DIR }}` gives: the variable's value, or "" when it is not set.
        "HUBPUB_PERSISTENT_DIR": str(tmp_path / "runner-host") if persistent else "",
    }
    completed = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    root = tmp_path / "runner-host" if persistent else temp / "hubpub-caches"
    assert read_outputs(output) == {"hf_hub": str(root / "hf-hub"), "hubpub": str(root / "hubpub")}
    assert (root / "hf-hub").is_dir() and (root / "hubpub").is_dir() and (workspace / ".hubpub" / "work").is_dir()
    assert completed.stdout.startswith("Filesystem") and len(completed.stdout.splitlines()) == 4
