"""Jobs: the routes huggingface_hub 1.33's Jobs methods use (`run_job`, `inspect_job`, `fetch_job_logs`,
`cancel_job`, `list_jobs`), run by a LOCAL STAND-IN for Hugging Face's machines.

On huggingface.co a job is a container on the flavor's hardware. Here it is a subprocess of this
server on this machine: the image and the flavor are recorded and shown, never used, and there is
no GPU unless this machine has one. Because any token holder could otherwise run anything here, the
stand-in runs hubpub alone: the argv (command + arguments) must contain a `hubpub` word followed by
one of LOCAL_COMMANDS, and the subprocess is `python -m hubpub <what follows>`, with no shell. What
precedes that word (an installer such as `uvx --from hubpub==X`) is ignored, like the image.

Secrets reach that subprocess as environment variables and nowhere else: they are kept in memory for
the start of the process only and never answered back. Each job runs in its own process group, in
its own folder under the store (`jobs/<namespace>/<id>/`); cancel and timeout kill the group.
The log is stdout and stderr merged, served as the Hub serves it: server-sent events, one
`data: {"data": line, "timestamp": …}` per line, held open until the job ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpub.hub import validation
from hubpub.hub.errors import HubError
from hubpub.hub.store import now_iso
from hubpub.hub.tokens import Identity

LOCAL_COMMANDS = ("release", "validate", "plan")
"""The hubpub commands the stand-in runs; anything else (`hub serve`, `vllm-env`) is refused."""
MAX_ARGV = 64
MAX_ARG_CHARS = 4096
MAX_ENV = 64
MAX_ENV_VALUE = 96 * 1024
"""Below Linux's limit of 128 KiB for one environment string."""
MAX_SECRET_VALUE = 4096
MAX_LABELS = 32
MAX_LABEL_CHARS = 256
MAX_RUNNING = 8
"""Jobs running at once on this machine, all namespaces together."""
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_LOG_LINES = 50_000
MAX_LINE_CHARS = 8192
KEEP_ALIVE_SECONDS = 15.0
KILL_GRACE_SECONDS = 5.0
TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_JOB_ID = re.compile(r"[0-9a-f]{24}")
_GLOBAL_FLAGS = ("-v", "-vv", "-q", "--verbose", "--quiet")
_UNSUPPORTED = ("volumes", "expose", "ssh", "network", "resourceGroupId")
_STRIPPED_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUBPUB_HUB_TOKEN")
"""This server's own tokens never leak into a job: a job holds only the secrets it was given."""


def job_flavors() -> tuple[str, ...]:
    from huggingface_hub import JobHardware

    return tuple(flavor.value for flavor in JobHardware)


@dataclass
class Job:
    id: str
    namespace: str
    owner_type: str
    spec: dict[str, Any]
    created_at: str
    folder: Path
    stage: str = "SCHEDULING"
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    canceled: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def shaped(self, base_url: str) -> dict[str, Any]:
        """The job as huggingface_hub's `JobInfo` reads it; secrets by name only."""
        info: dict[str, Any] = {
            "id": self.id,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "command": self.spec["command"],
            "arguments": self.spec["arguments"],
            "environment": self.spec["environment"],
            "secrets": {name: None for name in self.spec["secrets"]},
            "flavor": self.spec["flavor"],
            "labels": self.spec["labels"] or None,
            "timeoutSeconds": self.spec["timeoutSeconds"],
            "status": {"stage": self.stage, "message": self.message},
            "owner": {"id": self.namespace, "name": self.namespace, "type": self.owner_type},
            "url": f"{base_url}/jobs/{self.namespace}/{self.id}",
        }
        info.update(self.spec["image"])
        return info


class Jobs:
    """The jobs of one embedded Hub, each a local subprocess running hubpub (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "jobs"
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- who sees what -------------------------------------------------------------------------
    def _find(self, identity: Identity, namespace: str, job_id: str) -> Job:
        job = self._jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None or job.namespace.lower() != namespace.lower() or not identity.owns(namespace):
            raise HubError(404, f"Job not found: {validation.shown(job_id)}")
        return job

    # -- the routes ----------------------------------------------------------------------------
    def create(self, identity: Identity, namespace: str, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        namespace = validation.repo_part(namespace, "namespace")
        if not identity.can_write(namespace):
            raise HubError(403, f"You don't have the rights to run jobs in {namespace}")
        spec, secret_values = _job_spec(body)
        argv = _local_argv(spec["command"] + spec["arguments"])
        with self._lock:
            if self._closed:
                raise HubError(503, "The embedded Hub is stopping")
            running = sum(1 for job in self._jobs.values() if job.stage not in TERMINAL)
            if running >= MAX_RUNNING:
                raise HubError(429, f"{running} jobs are running on this machine already; wait for one to end")
            job_id = secrets.token_hex(12)
            owner_type = "user" if namespace.lower() == identity.name.lower() else "org"
            job = Job(job_id, namespace, owner_type, spec, now_iso(), self.root / namespace / job_id)
            self._jobs[job_id] = job
        self._start(job, argv, secret_values)
        return job.shaped(base_url)

    def info(self, identity: Identity, namespace: str, job_id: str, base_url: str) -> dict[str, Any]:
        return self._find(identity, namespace, job_id).shaped(base_url)

    def listing(self, identity: Identity, namespace: str, query: dict[str, list[str]], base_url: str) -> list[Any]:
        if not identity.owns(namespace):
            raise HubError(403, f"This token cannot list the jobs of {validation.shown(namespace)}")
        stages = set(query.get("stage", []))
        found = [
            job.shaped(base_url)
            for job in list(self._jobs.values())
            if job.namespace.lower() == namespace.lower() and (not stages or job.stage in stages)
        ]
        return sorted(found, key=lambda info: str(info["createdAt"]), reverse=True)

    def cancel(self, identity: Identity, namespace: str, job_id: str) -> None:
        job = self._find(identity, namespace, job_id)
        if not identity.can_write(namespace):
            raise HubError(403, f"You don't have the rights to cancel jobs in {namespace}")
        with job.changed:
            if job.stage in TERMINAL:
                return
            job.canceled = True
            process = job.process
        if process is not None:
            _kill_group(process)

    def stream(self, identity: Identity, namespace: str, job_id: str, tail: str | None) -> Iterator[bytes]:
        job = self._find(identity, namespace, job_id)
        start = 0
        if tail is not None:
            if not tail.isdigit() or len(tail) > 9:
                raise HubError(400, "tail must be a whole number of lines")
            start = max(0, len(job.lines) - int(tail))
        return self._events(job, start)

    def close(self) -> None:
        """Stop every running job (the server is going away)."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            with job.changed:
                process = job.process if job.stage not in TERMINAL else None
            if process is not None:
                _kill_group(process)

    # -- running -------------------------------------------------------------------------------
    def _start(self, job: Job, argv: list[str], secret_values: dict[str, str]) -> None:
        job.folder.mkdir(parents=True, exist_ok=True)
        environment = {key: value for key, value in os.environ.items() if key not in _STRIPPED_ENV}
        environment.update(job.spec["environment"])
        environment.update(secret_values)
        environment["PYTHONUNBUFFERED"] = "1"
        environment["JOB_ID"] = job.id
        self._log(job, f"===== Job started at {now_iso()} =====")
        self._log(
            job,
            f"hubpub embedded Hub: local stand-in for {job.spec['flavor']} (image ignored): running"
            f" {' '.join(argv[2:])}",
        )
        try:
            process = subprocess.Popen(
                argv,
                cwd=job.folder,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._finish(job, "ERROR", f"the process could not start: {exc.strerror or exc}")
            return
        with job.changed:
            job.process = process
            job.stage = "RUNNING"
            job.started_at = now_iso()
            job.changed.notify_all()
        threading.Thread(target=self._pump, args=(job, process), name=f"job-{job.id}", daemon=True).start()

    def _pump(self, job: Job, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + job.spec["timeoutSeconds"]
        timer = threading.Timer(job.spec["timeoutSeconds"], _kill_group, args=(process,))
        timer.daemon = True
        timer.start()
        assert process.stdout is not None
        for raw in process.stdout:
            self._log(job, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        code = process.wait()
        timer.cancel()
        _end_group(process)
        if job.canceled:
            self._finish(job, "CANCELED", "canceled")
        elif code == 0:
            self._finish(job, "COMPLETED", None)
        elif time.monotonic() >= deadline:
            self._finish(job, "ERROR", f"the job ran past its timeout of {job.spec['timeoutSeconds']} s")
        else:
            self._finish(job, "ERROR", f"the command exited with code {code}")

    def _log(self, job: Job, text: str) -> None:
        with job.changed:
            if len(job.lines) < MAX_LOG_LINES:
                job.lines.append((now_iso(), text[:MAX_LINE_CHARS]))
            elif len(job.lines) == MAX_LOG_LINES:
                job.lines.append((now_iso(), f"[log truncated after {MAX_LOG_LINES} lines]"))
            job.changed.notify_all()

    def _finish(self, job: Job, stage: str, message: str | None) -> None:
        with job.changed:
            job.stage, job.message, job.finished_at = stage, message, now_iso()
            job.changed.notify_all()

    def _events(self, job: Job, start: int) -> Iterator[bytes]:
        sent = start
        while True:
            with job.changed:
                if sent >= len(job.lines) and job.stage not in TERMINAL:
                    job.changed.wait(KEEP_ALIVE_SECONDS)
                fresh = job.lines[sent:]
                done = job.stage in TERMINAL
            sent += len(fresh)
            if fresh:
                yield b"".join(
                    b"data: " + json.dumps({"data": text, "timestamp": stamp}).encode() + b"\n\n"
                    for stamp, text in fresh
                )
            elif done:
                return
            else:
                yield b": keep-alive\n\n"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the job's process group, then SIGKILL to whatever of it is left after a grace period."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(KILL_GRACE_SECONDS)
    _end_group(process)


def _end_group(process: subprocess.Popen[bytes]) -> None:
    # A job's processes end with it, as a container's do: helpers its command left behind included.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _strings(value: object, what: str, max_items: int, max_chars: int) -> list[str]:
    items = validation.listing(value if value is not None else [], what, max_items)
    return [validation.text(item, f"an item of {what}", max_chars) for item in items]


def _environment(value: object, what: str, max_value: int) -> dict[str, str]:
    mapping = validation.mapping(value if value is not None else {}, what)
    if len(mapping) > MAX_ENV:
        raise HubError(400, f"{what} holds more than {MAX_ENV} variables")
    checked = {}
    for name, item in mapping.items():
        if not _ENV_NAME.fullmatch(name):
            raise HubError(400, f"Invalid {what} name {validation.shown(name)}: use letters, digits and '_'")
        text = validation.text(item, f"the value of {name}", max_value)
        if "\0" in text:
            raise HubError(400, f"The value of {name} holds a NUL character")
        checked[name] = text
    return checked


def _job_spec(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The job's validated spec (what it shows) and its secrets' values (what only the process gets)."""
    for key in _UNSUPPORTED:
        if body.get(key):
            raise HubError(400, f"{key} is not supported by the embedded Hub's local jobs")
    flavor = body.get("flavor", "cpu-basic")
    flavors = job_flavors()
    if flavor not in flavors:
        raise HubError(400, f"Invalid flavor {validation.shown(flavor)}: use one of {', '.join(flavors)}")
    image: dict[str, str] = {}
    for key in ("dockerImage", "spaceId"):
        if body.get(key) is not None:
            image[key] = validation.text(body[key], key, 300)
    if len(image) != 1:
        raise HubError(400, "Give exactly one of dockerImage or spaceId")
    timeout = body.get("timeoutSeconds", 30 * 60)
    command = _strings(body.get("command"), "command", MAX_ARGV, MAX_ARG_CHARS)
    arguments = _strings(body.get("arguments"), "arguments", MAX_ARGV, MAX_ARG_CHARS)
    if not command:
        raise HubError(400, "command must name what the job runs")
    secret_values = _environment(body.get("secrets"), "secrets", MAX_SECRET_VALUE)
    environment = _environment(body.get("environment"), "environment", MAX_ENV_VALUE)
    clash = sorted(set(secret_values) & set(environment))
    if clash:
        raise HubError(400, f"{clash[0]} is both a secret and an environment variable")
    labels = validation.mapping(body.get("labels") or {}, "labels")
    if len(labels) > MAX_LABELS:
        raise HubError(400, f"labels holds more than {MAX_LABELS} labels")
    for key, value in labels.items():
        validation.text(key, "label name", MAX_LABEL_CHARS)
        validation.text(value, f"label {validation.shown(key)}", MAX_LABEL_CHARS)
    spec = {
        "command": command,
        "arguments": arguments,
        "environment": environment,
        "secrets": sorted(secret_values),
        "flavor": flavor,
        "timeoutSeconds": validation.size(timeout, MAX_TIMEOUT_SECONDS, "timeoutSeconds") or 30 * 60,
        "labels": labels,
        "image": image,
    }
    return spec, secret_values


def _local_argv(argv: list[str]) -> list[str]:
    """`python -m hubpub …` for an argv that runs hubpub (see the module's docstring); anything else is a 400."""
    allowed = "|".join(LOCAL_COMMANDS)
    if "hubpub" not in argv:
        raise HubError(400, f"The embedded Hub's local jobs run hubpub only: the command must run `hubpub {allowed}`")
    rest = argv[argv.index("hubpub") + 1 :]
    position = 0
    while position < len(rest) and rest[position] in _GLOBAL_FLAGS:
        position += 1
    if position >= len(rest) or rest[position] not in LOCAL_COMMANDS:
        shown = validation.shown(" ".join(rest))
        raise HubError(400, f"The embedded Hub's local jobs run `hubpub {allowed}` only, not {shown}")
    return [sys.executable, "-m", "hubpub", *rest]
