"""Child processes for the stages that load a model and for scripts a user would run, forked from warm interpreters.

Every stage that loads a model does so in a child process, so the hubpub process never holds one and
each child's memory returns to the system when it ends. Importing torch, transformers and
llmcompressor takes several seconds; paying that in every child would cost more than the stage's
own work on a small model. So *fork servers* import them once, compute nothing, and fork a child per
request: each child starts with the libraries imported and no model loaded, like a fresh interpreter
that has run its imports.

There are two, chained: the *scripts* server imports torch and transformers only (a model card's
snippet runs in its children as in a fresh interpreter: nothing of llm-compressor, lm-eval or hubpub's
stages is loaded); it then forks the *stages* server, which imports llm-compressor and lm-eval on top.
The two share the memory of their common imports (about 340 MiB, copy-on-write), so the second server
costs little memory and no second import of torch. They are started ahead of need
(`start_fork_server`), so their imports overlap the first stages, and serve every release of the
process (a family's variants share them).

CUDA cannot be used in a child forked from a process that asked CUDA for its devices through the CUDA
runtime (`torch._C._cuda_getDeviceCount`, behind `torch.cuda.is_available()`): torch then registers a fork
handler that marks every later child as a bad fork, whose first CUDA call raises "Cannot re-initialize CUDA
in forked subprocess". Imports ask (llm-compressor's, through `torch.accelerator.is_available()`), so the
servers never ask that way (`_keep_cuda_unasked`), and each child refuses to start in a bad fork
(`_refuse_poisoned_cuda`) rather than run on the CPU.

Server side: `python -m hubpub.warm PARENT_PID REQUESTS_FD,REPLIES_FD MODULE... -- MODULE...` serves
on stdin/stdout after importing the first modules, and its forked stages server serves on the two
inherited pipes after importing the rest. Each reads JSON lines `{"module", "args", "log", "stdout",
"env", "cwd"}`; for each it forks, answers `{"pid": N}`, runs the module as `__main__` in the child with
stderr (and stdout, unless `stdout` names a file) in `log`, and answers `{"code": N}` when the child ends.
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

# A user's script (a model card's snippet) runs as in a fresh interpreter: only what its own imports would
# load is loaded ahead. transformers imports lazily; naming the classes imports their modules.
SCRIPT_PRELOAD = ("torch", "transformers:AutoModelForCausalLM", "transformers:AutoTokenizer")
# What the stages' children need on top. llm-compressor imports compressed-tensors and gguf.
PRELOAD = ("llmcompressor", "lm_eval")
Kind = Literal["stages", "scripts"]
# Set per call by test runners; it is no reason to start other servers.
_VOLATILE_ENVIRONMENT = ("PYTEST_CURRENT_TEST",)
POISONED_CUDA = (
    "CUDA cannot be used in this child process (pid {pid}): the process it was forked from had asked CUDA for"
    " its devices before forking (torch's fork poisoning: its first CUDA call would raise 'Cannot re-initialize"
    " CUDA in forked subprocess'); hubpub stops here rather than run on the CPU"
)
# The CUDA runtime's device count, kept aside in a fork server while NVML's answers for it.
_runtime_device_count: Callable[[], int] | None = None


class ForkServer:
    """One end of a fork server's request and reply pipes."""

    def __init__(self, requests: IO[bytes], replies: IO[bytes], pair: ServerPair) -> None:
        self._requests, self._replies, self._pair = requests, replies, pair
        self._lock = threading.Lock()

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
        request = {
            "module": module,
            "args": args,
            "log": str(log),
            "stdout": None if stdout is None else str(stdout),
            "env": dict(os.environ),
            "cwd": str(cwd or os.getcwd()),
        }
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                self._requests.write(json.dumps(request).encode() + b"\n")
                self._requests.flush()
            except BrokenPipeError:
                raise RuntimeError(f"hubpub's fork server has ended:\n{self._pair.output()}") from None
            replies_in_step = False
            try:
                pid = self._reply(deadline, "pid")
                try:
                    code = int(self._reply(deadline, "code", poll))
                except subprocess.TimeoutExpired:
                    os.kill(pid, signal.SIGKILL)
                    self._reply(time.monotonic() + 60, "code")
                    replies_in_step = True
                    raise
                replies_in_step = True
                return code
            finally:
                if not replies_in_step:
                    # A reply still owed to this request would answer the next one: the pair ends, and the
                    # next request starts fresh servers (their children end with them).
                    self._pair.close()

    def _reply(self, deadline: float, key: str, poll: Callable[[], None] | None = None) -> Any:
        while True:
            remaining = deadline - time.monotonic()
            wait = max(remaining, 0) if poll is None else min(max(remaining, 0), 1.0)
            ready, _, _ = select.select([self._replies], [], [], wait)
            if ready:
                break
            if remaining <= wait:
                raise subprocess.TimeoutExpired("hubpub.warm", remaining)
            assert poll is not None
            poll()
        line = self._replies.readline()
        if not line:
            raise RuntimeError(f"hubpub's fork server has ended:\n{self._pair.output()}")
        return json.loads(line)[key]


class ServerPair:
    """The scripts server (a child of this process) and the stages server it forked."""

    def __init__(self) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (the servers' own output, kept until close())
        self._closing_output = ""
        stage_requests, to_stages = os.pipe()
        from_stages, stage_replies = os.pipe()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubpub.warm",
                str(os.getpid()),
                f"{stage_requests},{stage_replies}",
                *SCRIPT_PRELOAD,
                "--",
                *PRELOAD,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            pass_fds=(stage_requests, stage_replies),
        )
        os.close(stage_requests)
        os.close(stage_replies)
        assert self._process.stdin is not None and self._process.stdout is not None
        self.environment = _environment_key(dict(os.environ))
        self.servers: dict[str, ForkServer] = {
            "scripts": ForkServer(self._process.stdin, self._process.stdout, self),
            "stages": ForkServer(os.fdopen(to_stages, "wb"), os.fdopen(from_stages, "rb"), self),
        }

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def output(self) -> str:
        if self._log.closed:
            return self._closing_output
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        # The stages server ends with the scripts server, its parent (PR_SET_PDEATHSIG).
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if not self._log.closed:
            self._closing_output = self.output()
            self._log.close()


_pair: ServerPair | None = None
_server_lock = threading.Lock()


def start_fork_server(kind: Kind = "stages") -> ForkServer:
    """This process's fork server of that kind; both are started when missing, ended, or started under
    another environment."""
    global _pair
    with _server_lock:
        if _pair is not None and (not _pair.alive or _pair.environment != _environment_key(dict(os.environ))):
            _pair.close()
            _pair = None
        if _pair is None:
            _pair = ServerPair()
            atexit.register(_pair.close)
        return _pair.servers[kind]


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
            _refuse_poisoned_cuda()
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


def _refuse_poisoned_cuda() -> None:
    """In a forked child, first thing: give CUDA's own device count back to torch, and stop with a clear
    message if this child was forked from a process that had asked CUDA the poisoning way."""
    torch = sys.modules.get("torch")
    if torch is None:
        return  # nothing of torch was loaded before the fork, so nothing of it can be poisoned
    if _runtime_device_count is not None:
        torch._C._cuda_getDeviceCount = _runtime_device_count
    if torch.cuda._is_in_bad_fork():
        raise SystemExit(POISONED_CUDA.format(pid=os.getpid()))


def _keep_cuda_unasked() -> None:
    """In a fork server, before torch is imported: its children must find CUDA unasked.

    `PYTORCH_NVML_BASED_CUDA_CHECK=1` makes `torch.cuda.is_available()` (and so `torch.accelerator`'s) answer
    through `device_count()`, which asks NVML and leaves CUDA uninitialised and the fork unpoisoned. Where NVML
    cannot answer (no NVML library, MIG devices named in CUDA_VISIBLE_DEVICES), torch falls back on the CUDA
    runtime's count, which poisons; so once torch is imported, that count answers 0 in the server instead
    (`_stand_in_for_the_cuda_runtime_count`). No server's answer outlives it: llm-compressor's import only tells
    MPS from the rest, and each child gets the runtime's count back (`_refuse_poisoned_cuda`) and the caller's
    environment, so it asks CUDA itself."""
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"


def _stand_in_for_the_cuda_runtime_count() -> None:
    """Once torch is imported in a fork server: its CUDA runtime device count answers NVML's count or 0."""
    global _runtime_device_count
    torch = sys.modules.get("torch")
    if torch is None or _runtime_device_count is not None or not hasattr(torch._C, "_cuda_getDeviceCount"):
        return
    _runtime_device_count = torch._C._cuda_getDeviceCount

    def nvml_count_only() -> int:
        return max(int(torch.cuda._device_count_nvml()), 0)

    torch._C._cuda_getDeviceCount = nvml_count_only


def _serve(parent: int, stage_pipes: str, preload: Sequence[str], stage_preload: Sequence[str]) -> None:
    _end_with_parent(parent)
    _keep_cuda_unasked()
    stage_requests, stage_replies = (int(descriptor) for descriptor in stage_pipes.split(","))
    replies = os.fdopen(os.dup(1), "w")
    # Nothing but the protocol may reach the pipes: the libraries' own output goes to the servers' log.
    os.dup2(2, 1)
    _import(preload)
    server = os.getpid()
    if os.fork() == 0:
        replies.close()
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.close(nothing)
        _end_with_parent(server)
        _import(stage_preload)
        _answer(os.fdopen(stage_requests, "r"), os.fdopen(stage_replies, "w"))
        os._exit(0)
    os.close(stage_requests)
    os.close(stage_replies)
    _answer(sys.stdin, replies)


def _import(preload: Sequence[str]) -> None:
    import importlib

    for name in preload:
        module, _, attribute = name.partition(":")
        imported = importlib.import_module(module)
        _stand_in_for_the_cuda_runtime_count()
        if attribute:
            getattr(imported, attribute)


def _answer(requests: IO[str], replies: IO[str]) -> None:
    for line in requests:
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
    _separator = sys.argv.index("--")
    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3:_separator], sys.argv[_separator + 1 :])
