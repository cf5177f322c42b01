"""Jobs: the routes huggingface_hub 1.33's Jobs methods use (`run_job`, `inspect_job`, `fetch_job_logs`,
`cancel_job`, `list_jobs`), run by a LOCAL STAND-IN for Hugging Face's machines. Off unless the server is
started with them on (`hubpub hub serve --jobs`): a job runs hubpub on this machine as the server's user.

On huggingface.co a job is a container on the flavor's hardware. Here it is a subprocess of this
server on this machine: the image and the flavor are recorded and shown, never used, and there is
no GPU unless this machine has one. Because a token holder must not run anything else here, the
server decides everything the job gets:
- the command line: the argv must contain a `hubpub` word followed by one of LOCAL_COMMANDS, a spec path
  inside the spec bundle and a fixed set of options; the process is `python -I -m hubpub …` (isolated: no
  PYTHON* variable, nothing of the job's folder on sys.path), no shell. The box's launcher is that
  isolated interpreter and runs the module as `-m` would, from the server's own hubpub (which need not be
  the one installed). What precedes that word (`uvx --from hubpub==X`) is ignored, like the image, and so is
  `--build-vllm-env` (the job uses the server's HUBPUB_VLLM_PYTHON, or no vLLM);
- the environment: a fresh one (JOB_ENV_PASSED machine settings at most), HOME and the caches inside the
  job's folder, HF_ENDPOINT this server, HF_TOKEN a token minted for the job's namespace that ends with
  the job; the client may send the spec bundle and the HF_TOKEN secret only (whose value is never used);
- the box (jobbox.py): new user, mount and PID namespaces, the store masked but for the job's own folder,
  the tokens file and the server user's Hugging Face token masked, the rest read-only, a /proc of its own.
Each job runs in its own folder under the store (`jobs/<namespace>/<id>/`); cancel and timeout kill it.
The log is stdout and stderr merged, served as the Hub serves it: server-sent events, one
`data: {"data": line, "timestamp": …}` per line, held open until the job ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hubpub.hub import jobbox, validation
from hubpub.hub.errors import HubConfigError, HubError
from hubpub.hub.specbundle import decode_spec_bundle
from hubpub.hub.store import now_iso
from hubpub.hub.tokens import Identity, TokenTable

LOCAL_COMMANDS = ("release", "validate", "plan")
"""The hubpub commands the stand-in runs; anything else (`hub serve`, `vllm-env`) is refused."""
MAX_ARGV = 64
MAX_ARG_CHARS = 4096
MAX_ENV_VALUE = 96 * 1024
"""Below Linux's limit of 128 KiB for one environment string."""
MAX_SECRET_VALUE = 4096
MAX_LABELS = 32
MAX_LABEL_CHARS = 256
MAX_LINE_CHARS = 8192
KEEP_ALIVE_SECONDS = 15.0
KILL_GRACE_SECONDS = 5.0
TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
BUNDLE_ENV = "HUBPUB_SPEC_BUNDLE"
JOB_ENVIRONMENT = (BUNDLE_ENV,)
"""The only names a client may send in a job's `environment`."""
JOB_SECRETS = ("HF_TOKEN",)
"""The only names a client may send in a job's `secrets`; the job gets a token minted for it instead."""
JOB_ENV_PASSED = (
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "HUBPUB_VLLM_PYTHON",
)
"""Machine settings of the server's environment that reach a job (HUBPUB_VLLM_PYTHON: the owner's vLLM
environment, the only one a confined release uses); nothing else of it does."""
UNSHARE = "/usr/bin/unshare"
JOBS_OFF = "Jobs are off on this Hub: its owner turns them on with `hubpub hub serve --jobs`"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_JOB_ID = re.compile(r"[0-9a-f]{24}")
_GLOBAL_FLAGS = {"-v": "-v", "-vv": "-vv", "--verbose": "-v", "-q": "-q", "--quiet": "-q"}
_UNSUPPORTED = ("volumes", "expose", "ssh", "network", "resourceGroupId")
_HUBPUB_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds this hubpub package: the job runs the same hubpub as the server."""
_OPTIONS: dict[str, dict[str, bool]] = {
    "release": {
        "--variant": True,
        "--no-push": False,
        "--spec-bundle-env": True,
        "--hub": True,
        "--build-vllm-env": True,
    },
    "validate": {"--spec-bundle-env": True},
    "plan": {"--variant": True, "--json": False, "--spec-bundle-env": True},
}
"""What each command may be given in a job, by option: whether it takes a value."""
_IGNORED_OPTIONS = {"--build-vllm-env": ("gpu", "cpu")}
"""Options a job may be given that the stand-in drops, with the values they take: a Hugging Face job builds its
vLLM environment, a local one uses the server's."""


@dataclass(frozen=True)
class JobLimits:
    """How much of this machine jobs may take, and how long what they leave is kept."""

    running: int = 8
    """Jobs running at once, all namespaces together."""
    running_per_namespace: int = 2
    max_timeout_seconds: int = 6 * 3600
    keep_finished: int = 20
    """Finished jobs kept per namespace (with their folders and logs); older ones are removed."""
    keep_seconds: float = 24 * 3600
    """No finished job is kept longer."""
    log_bytes: int = 4 << 20
    """A job's log; beyond it one line says it was cut."""


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
    ended: float | None = None
    """time.monotonic() when it ended, for pruning."""
    lines: list[tuple[str, str]] = field(default_factory=list)
    log_bytes: int = 0
    process: subprocess.Popen[bytes] | None = None
    token: str | None = None
    """Minted for the job at its start, revoked at its end; never shown."""
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
    """The jobs of one embedded Hub, each a boxed local subprocess running hubpub (see the module's docstring).

    Off (every route a 403) unless `enabled`; `open` then checks that the box can be made here, takes the
    store's jobs folder for this server alone and removes what an earlier run left in it.
    """

    def __init__(
        self,
        root: Path,
        tokens: TokenTable,
        *,
        enabled: bool = False,
        limits: JobLimits | None = None,
        hidden: Sequence[Path] = (),
    ) -> None:
        self.store_root = root
        self.root = root / "jobs"
        self.tokens = tokens
        self.enabled = enabled
        self.limits = limits or JobLimits()
        self.hidden = tuple(hidden)
        self.endpoint = ""
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._held: TextIO | None = None

    def open(self, endpoint: str) -> None:
        """With jobs on: check the box, hold the jobs folder, empty it. A HubConfigError says why it cannot."""
        self.endpoint = endpoint
        if not self.enabled:
            return
        check_box()
        self._held = _hold(self.store_root / "jobs.lock")
        shutil.rmtree(self.root, ignore_errors=True)

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
        spec = _job_spec(body, self.limits.max_timeout_seconds)
        bundle = spec["environment"].get(BUNDLE_ENV)
        files = decode_spec_bundle(bundle).files if bundle is not None else {}
        argv = _local_argv(spec["command"] + spec["arguments"], files, self.endpoint)
        with self._lock:
            if self._closed:
                raise HubError(503, "The embedded Hub is stopping")
            self._prune()
            running = [job for job in self._jobs.values() if job.stage not in TERMINAL]
            if len(running) >= self.limits.running:
                raise HubError(429, f"{len(running)} jobs are running on this machine already; wait for one to end")
            mine = [job for job in running if job.namespace.lower() == namespace.lower()]
            if len(mine) >= self.limits.running_per_namespace:
                raise HubError(
                    429, f"{len(mine)} jobs of {namespace} are running already, its most at once; wait for one to end"
                )
            job_id = secrets.token_hex(12)
            owner_type = "user" if namespace.lower() == identity.name.lower() else "org"
            job = Job(job_id, namespace, owner_type, spec, now_iso(), self.root / namespace / job_id)
            self._jobs[job_id] = job
            job.token = self.tokens.mint_ephemeral(Identity(name=identity.name, writable=frozenset({namespace})))
        self._start(job, argv)
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
        if self._held is not None:
            self._held.close()
            self._held = None

    # -- running -------------------------------------------------------------------------------
    def _environment(self, job: Job) -> dict[str, str]:
        assert job.token is not None
        home = job.folder / "home"
        passed = {name: os.environ[name] for name in JOB_ENV_PASSED if name in os.environ}
        return {
            **passed,
            **job.spec["environment"],
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "HF_HOME": str(home / ".cache" / "huggingface"),
            "TMPDIR": str(job.folder / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "JOB_ID": job.id,
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": job.token,
            "HF_HUB_DISABLE_XET": "1",
            "HUBPUB_JOB_CONFINED": "1",
        }

    def _start(self, job: Job, argv: list[str]) -> None:
        environment = self._environment(job)
        for folder in ("HF_HOME", "TMPDIR"):
            Path(environment[folder]).mkdir(parents=True, exist_ok=True)
        self._log(job, f"===== Job started at {now_iso()} =====")
        self._log(
            job,
            f"hubpub embedded Hub: local stand-in for {job.spec['flavor']} (image ignored): running"
            f" {' '.join(argv[3:])}",
        )
        try:
            process = subprocess.Popen(
                box_command(self.store_root, job.folder, self.hidden, argv),
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
        # A bounded read: a job that prints without newlines cannot make the server hold more than a line.
        for raw in iter(lambda: process.stdout.readline(MAX_LINE_CHARS * 4), b""):  # type: ignore[union-attr]
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
        line = text[:MAX_LINE_CHARS]
        with job.changed:
            cap = self.limits.log_bytes
            if job.log_bytes <= cap:
                job.log_bytes += len(line.encode("utf-8", errors="replace")) + 1
                if job.log_bytes > cap:
                    line = f"[log truncated after {cap:,} bytes]"
                job.lines.append((now_iso(), line))
            job.changed.notify_all()

    def _finish(self, job: Job, stage: str, message: str | None) -> None:
        with job.changed:
            job.stage, job.message, job.finished_at = stage, message, now_iso()
            job.ended = time.monotonic()
            token, job.token = job.token, None
            job.changed.notify_all()
        if token is not None:
            self.tokens.revoke_ephemeral(token)
        with self._lock:
            self._prune()

    def _prune(self) -> None:
        """Forget finished jobs past the limits and remove their folders (called with self._lock held)."""
        now = time.monotonic()
        finished = sorted(
            (job for job in self._jobs.values() if job.ended is not None), key=lambda job: job.ended or 0, reverse=True
        )
        kept: dict[str, int] = {}
        for job in finished:
            namespace = job.namespace.lower()
            kept[namespace] = kept.get(namespace, 0) + 1
            if kept[namespace] > self.limits.keep_finished or now - (job.ended or now) > self.limits.keep_seconds:
                del self._jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)

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


def box_command(store: Path, folder: Path, hidden: Sequence[Path], argv: list[str] | None) -> list[str]:
    """The command that runs `argv` (`python -I -m MODULE …`, or nothing: the start-up check) in the job's box."""
    config = {
        "store": os.path.realpath(store),
        "folder": os.path.realpath(folder),
        "masks": [os.path.realpath(path) for path in [*map(str, hidden), *_hugging_face_homes()]],
        "path": [str(_HUBPUB_ROOT)],
        "module": argv[3] if argv else None,
        "argv": argv[3:] if argv else [],
    }
    namespaces = ["--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    # -u: an isolated interpreter ignores PYTHONUNBUFFERED, and the log should come as it is written
    launcher = [sys.executable, "-I", "-u", str(Path(jobbox.__file__).resolve())]
    return [UNSHARE, *namespaces, *launcher, json.dumps(config)]


def check_box() -> None:
    """Make a job's box once, around an empty folder; a HubConfigError when this machine cannot."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hubpub-jobbox-") as scratch:
        folder = Path(scratch) / "store" / "jobs" / "check"
        folder.mkdir(parents=True)
        try:
            done = subprocess.run(
                box_command(Path(scratch) / "store", folder, (), None),
                env={},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HubConfigError(f"jobs cannot be boxed on this machine: {UNSHARE}: {exc}") from None
    if done.returncode != 0:
        why = (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise HubConfigError(
            f"jobs cannot be boxed on this machine ({why}); they need user, mount and PID namespaces"
            f" (util-linux {UNSHARE}, unprivileged user namespaces allowed)"
        )


def _hugging_face_homes() -> list[str]:
    """Where the server user's Hugging Face token and cache are (masked in every job)."""
    home = Path.home()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    found = [str(cache / "huggingface"), str(home / ".huggingface")]
    if os.environ.get("HF_HOME"):
        found.append(os.environ["HF_HOME"])
    if os.environ.get("HF_TOKEN_PATH"):
        found.append(os.environ["HF_TOKEN_PATH"])
    return found


def _hold(path: Path) -> TextIO:
    import fcntl

    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise HubConfigError(f"another server runs jobs from this store ({path} is held)") from None
    return handle


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


def _named(value: object, what: str, allowed: tuple[str, ...], max_value: int) -> dict[str, str]:
    mapping = validation.mapping(value if value is not None else {}, what)
    checked = {}
    for name, item in mapping.items():
        if not _ENV_NAME.fullmatch(name):
            raise HubError(400, f"Invalid {what} name {validation.shown(name)}: use letters, digits and '_'")
        if name not in allowed:
            raise HubError(
                400,
                f"{what} may not set {name}: a job's environment is made by this Hub; {what} takes"
                f" {' and '.join(allowed)} only",
            )
        text = validation.text(item, f"the value of {name}", max_value)
        if "\0" in text:
            raise HubError(400, f"The value of {name} holds a NUL character")
        checked[name] = text
    return checked


def _job_spec(body: dict[str, Any], max_timeout: int) -> dict[str, Any]:
    """The job's validated spec, as it is shown; the secrets' values are dropped (the job gets its own token)."""
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
    secret_names = sorted(_named(body.get("secrets"), "secrets", JOB_SECRETS, MAX_SECRET_VALUE))
    environment = _named(body.get("environment"), "environment", JOB_ENVIRONMENT, MAX_ENV_VALUE)
    labels = validation.mapping(body.get("labels") or {}, "labels")
    if len(labels) > MAX_LABELS:
        raise HubError(400, f"labels holds more than {MAX_LABELS} labels")
    for key, value in labels.items():
        validation.text(key, "label name", MAX_LABEL_CHARS)
        validation.text(value, f"label {validation.shown(key)}", MAX_LABEL_CHARS)
    return {
        "command": command,
        "arguments": arguments,
        "environment": environment,
        "secrets": secret_names,
        "flavor": flavor,
        "timeoutSeconds": validation.size(timeout, max_timeout, "timeoutSeconds") or 30 * 60,
        "labels": labels,
        "image": image,
    }


def _local_argv(argv: list[str], bundle: dict[str, bytes], endpoint: str) -> list[str]:
    """`python -I -m hubpub …`, built here from an argv that runs hubpub (see the module's docstring).

    Only a spec path that is a file of the spec bundle and the options of _OPTIONS pass; `--hub` becomes this
    server and `--spec-bundle-env` must name the bundle. Anything else is a 400 that names it.
    """
    allowed = "|".join(LOCAL_COMMANDS)
    if "hubpub" not in argv:
        raise HubError(400, f"The embedded Hub's local jobs run hubpub only: the command must run `hubpub {allowed}`")
    rest = argv[argv.index("hubpub") + 1 :]
    flags = []
    while rest and rest[0] in _GLOBAL_FLAGS:
        flags.append(_GLOBAL_FLAGS[rest.pop(0)])
    if not rest or rest[0] not in LOCAL_COMMANDS:
        shown = validation.shown(" ".join(rest))
        raise HubError(400, f"The embedded Hub's local jobs run `hubpub {allowed}` only, not {shown}")
    command, words = rest[0], rest[1:]
    accepted = _OPTIONS[command]
    options: dict[str, str | None] = {}
    specs = []
    while words:
        word = words.pop(0)
        if not word.startswith("-"):
            specs.append(_spec_path(word, bundle))
            continue
        name, equals, value = word.partition("=")
        if name not in accepted or name in options:
            again = " twice" if name in options else ""
            raise HubError(400, f"The embedded Hub's jobs do not take {validation.shown(name)}{again} for {command}")
        if accepted[name] and not equals:
            if not words:
                raise HubError(400, f"{name} needs a value")
            value = words.pop(0)
        elif not accepted[name] and equals:
            raise HubError(400, f"{name} takes no value")
        options[name] = value if accepted[name] else None
    if len(specs) != 1:
        raise HubError(400, f"A job runs `hubpub {command}` on one spec of its bundle, not {len(specs)}")
    if options.get("--spec-bundle-env") != BUNDLE_ENV or not bundle:
        raise HubError(400, f"A job reads its spec from a spec bundle: give --spec-bundle-env {BUNDLE_ENV} and set it")
    if command == "release":
        options["--hub"] = endpoint
    for name, values in _IGNORED_OPTIONS.items():
        if name in options and options.pop(name) not in values:
            raise HubError(400, f"{name} takes {' or '.join(values)}")
    built = [f"{name}={value}" if value is not None else name for name, value in options.items()]
    return [sys.executable, "-I", "-m", "hubpub", *flags, command, specs[0], *built]


def _spec_path(word: str, bundle: dict[str, bytes]) -> str:
    parts = word.split("/")
    if word.startswith("/") or any(part in ("", ".", "..") for part in parts) or word not in bundle:
        raise HubError(400, f"The spec path {validation.shown(word)} is not a file of the job's spec bundle")
    return word
