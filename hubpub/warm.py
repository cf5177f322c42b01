"""Child processes for the stages that load a model, forked from one interpreter that imported the heavy tools.

Every stage that loads a model does so in a child process, so the hubpub process never holds one and
each child's memory returns to the system when it ends. Importing torch, transformers and
llmcompressor takes several seconds; paying that in every child would cost more than the stage's
own work on a small model. So one *fork server* per hubpub process imports them once, computes
nothing, and forks a child per request: each child starts with the libraries imported and no model
loaded, like a fresh interpreter that has run its imports. The server is started ahead of need
(`start_fork_server`), so its imports overlap the first stages, and it serves every release of the
process (a family's variants share it).

Server side: `python -m hubpub.warm PARENT_PID [MODULE...]` reads JSON lines
`{"module", "args", "log", "env", "cwd"}` from stdin; for each it forks, answers `{"pid": N}`, runs the
module as `__main__` in the child with stdout and stderr in `log`, and answers `{"code": N}` when the
child ends.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal

# What the stages' children need. llm-compressor imports the rest of transformers, compressed-tensors and gguf.
PRELOAD = ("torch", "transformers", "llmcompressor", "lm_eval")
# A user's script (a model card's snippet) runs as in a fresh interpreter: only what its own imports would
# load is loaded ahead, none of llm-compressor's or lm-eval's modules, and hubpub's state is not there.
SCRIPT_PRELOAD = ("torch", "transformers:AutoModelForCausalLM", "transformers:AutoTokenizer")
# Read by huggingface_hub and transformers when they are imported, so the server is started with them.
SCRIPT_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
Kind = Literal["stages", "scripts"]
# Set per call by test runners; it is no reason to start another server.
_VOLATILE_ENVIRONMENT = ("PYTEST_CURRENT_TEST",)


class ForkServer:
    def __init__(self, preload: Sequence[str], environment: dict[str, str] | None = None) -> None:
        self.overrides = dict(environment or {})
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (the server's own output, kept until close())
        self._process = subprocess.Popen(
            [sys.executable, "-m", "hubpub.warm", str(os.getpid()), *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self.current_environment(),
        )
        self.environment = _environment_key(self.current_environment())
        self._lock = threading.Lock()

    def current_environment(self) -> dict[str, str]:
        return {**os.environ, **self.overrides}

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def run(
        self,
        module: str,
        args: list[str],
        log: Path,
        timeout: float,
        *,
        stdout: Path | None = None,
        cwd: Path | None = None,
        poll: Callable[[], None] | None = None,
    ) -> int:
        """Run `python -m module args...` in a forked child writing to `log` (and its stdout to `stdout` when
        given), in `cwd` or this process's folder; returns its exit code. `poll` is called about once a
        second while the child runs."""
        assert self._process.stdin is not None and self._process.stdout is not None
        request = {
            "module": module,
            "args": args,
            "log": str(log),
            "stdout": None if stdout is None else str(stdout),
            "env": self.current_environment(),
            "cwd": str(cwd or os.getcwd()),
        }
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                self._process.stdin.write(json.dumps(request).encode() + b"\n")
                self._process.stdin.flush()
            except BrokenPipeError:
                raise RuntimeError(f"hubpub's fork server has ended:\n{self.output()}") from None
            pid = self._reply(self._process.stdout, deadline, "pid")
            try:
                return int(self._reply(self._process.stdout, deadline, "code", poll))
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._reply(self._process.stdout, time.monotonic() + 60, "code")
                raise

    def _reply(self, stream: IO[bytes], deadline: float, key: str, poll: Callable[[], None] | None = None) -> Any:
        while True:
            remaining = deadline - time.monotonic()
            wait = max(remaining, 0) if poll is None else min(max(remaining, 0), 1.0)
            ready, _, _ = select.select([stream], [], [], wait)
            if ready:
                break
            if remaining <= wait:
                raise subprocess.TimeoutExpired("hubpub.warm", remaining)
            assert poll is not None
            poll()
        line = stream.readline()
        if not line:
            raise RuntimeError(f"hubpub's fork server has ended:\n{self.output()}")
        return json.loads(line)[key]

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._log.close()


_servers: dict[str, ForkServer] = {}
_server_lock = threading.Lock()


def start_fork_server(kind: Kind = "stages") -> ForkServer:
    """This process's fork server of that kind, started when missing, ended, or started under another
    environment."""
    preload, overrides = (PRELOAD, {}) if kind == "stages" else (SCRIPT_PRELOAD, SCRIPT_ENVIRONMENT)
    with _server_lock:
        server = _servers.get(kind)
        if server is not None and (
            not server.alive or server.environment != _environment_key({**os.environ, **overrides})
        ):
            server.close()
            server = None
        if server is None:
            server = _servers[kind] = ForkServer(preload, overrides)
            atexit.register(server.close)
        return server


class WarmInterpreter:
    """One child process of a fork server: it runs one module, and its output is kept until `close`."""

    def __init__(self, kind: Kind = "stages") -> None:
        self.kind: Kind = kind
        self._output = tempfile.NamedTemporaryFile(prefix="hubpub-child-", suffix=".log", delete=False)  # noqa: SIM115
        self._output.close()
        self.used = False

    @property
    def log(self) -> Path:
        """The child's stdout and stderr, written while it runs."""
        return Path(self._output.name)

    def run(
        self,
        module: str,
        args: list[str],
        timeout: float,
        *,
        stdout: Path | None = None,
        cwd: Path | None = None,
        poll: Callable[[], None] | None = None,
    ) -> int:
        if self.used:
            raise RuntimeError("a warm interpreter runs one module only")
        self.used = True
        return start_fork_server(self.kind).run(module, args, self.log, timeout, stdout=stdout, cwd=cwd, poll=poll)

    def output(self) -> str:
        return Path(self._output.name).read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        Path(self._output.name).unlink(missing_ok=True)


def _environment_key(environment: dict[str, str]) -> str:
    return json.dumps({key: value for key, value in environment.items() if key not in _VOLATILE_ENVIRONMENT})


def _end_with_parent(parent: int) -> None:
    """A child left behind by a killed hubpub would keep writing into a stage folder that a re-run clears."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _child(request: dict[str, Any], server: int) -> None:
    """In the forked child: become the requested module's `__main__`, then exit without returning."""
    import runpy
    import traceback

    code = 1
    try:
        _end_with_parent(server)
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.close(nothing)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        output = (
            log
            if request.get("stdout") is None
            else os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        )
        os.dup2(output, 1)
        os.dup2(log, 2)
        for descriptor in {log, output}:
            os.close(descriptor)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = [request["module"], *request["args"]]
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
        except BaseException:
            traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(parent: int, preload: Sequence[str]) -> None:
    import importlib

    _end_with_parent(parent)
    replies = os.fdopen(os.dup(1), "w")
    # Nothing but the protocol may reach the pipe: the libraries' own output goes to the server's log.
    os.dup2(2, 1)
    for name in preload:
        module, _, attribute = name.partition(":")
        imported = importlib.import_module(module)
        if attribute:
            # transformers imports lazily: reading the attribute imports what it names.
            getattr(imported, attribute)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request, os.getppid())
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2:])
