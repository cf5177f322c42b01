"""A fresh Python interpreter started ahead of time, with torch and transformers already imported.

Every stage that loads a model does so in a child process, so the hubpub process never holds one
(verification must also load the checkpoint fresh, as a user would). Starting that process while
earlier stages still run hides its import time (several seconds) behind their work. The process has
loaded no model; it runs one module as `__main__` when asked, then exits.

Child side: `python -m hubpub.warm PARENT_PID [MODULE_TO_PRELOAD...]` reads one JSON line
`{"module": ..., "args": [...]}` from stdin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


class WarmInterpreter:
    def __init__(self, preload: Sequence[str] = ()) -> None:
        """Start the interpreter; `preload` names heavy modules the coming child will import (llmcompressor)."""
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (kept open until close())
        self._process = subprocess.Popen(
            [sys.executable, "-m", "hubpub.warm", str(os.getpid()), *preload],
            stdin=subprocess.PIPE,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        self.used = False

    def run(self, module: str, args: list[str], timeout: float) -> int:
        """Run `python -m module args...` in the waiting interpreter; returns its exit code."""
        if self.used:
            raise RuntimeError("a warm interpreter runs one module only")
        self.used = True
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"module": module, "args": args}).encode() + b"\n")
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise

    def output(self) -> str:
        self._output.seek(0)
        return self._output.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._output.close()


class WarmPool:
    """Hands each stage that loads a model a fresh warm interpreter, and starts the next one meanwhile.

    `order` lists the stages in the order they run; `preloads` maps those that may start a child to the
    modules to preload for it. At most one interpreter waits unused at any time; `close` ends it.
    """

    def __init__(self, order: Sequence[str], preloads: Mapping[str, Sequence[str]]) -> None:
        self._order = list(order)
        self._preloads = dict(preloads)
        self._spare: WarmInterpreter | None = None
        self._stage = self._order[0]

    def begin(self, stage: str) -> None:
        """`stage` runs now: have an interpreter ready for the first stage, from this one on, that may need one."""
        self._stage = stage
        upcoming = self._next(stage, inclusive=True)
        if self._spare is None and upcoming is not None:
            self._spare = WarmInterpreter(self._preloads[upcoming])

    def take(self) -> WarmInterpreter:
        """The waiting interpreter (or a new one); the next stage's starts now, behind this stage's work."""
        interpreter = self._spare or WarmInterpreter(self._preloads.get(self._stage, ()))
        self._spare = None
        upcoming = self._next(self._stage, inclusive=False)
        if upcoming is not None:
            self._spare = WarmInterpreter(self._preloads[upcoming])
        return interpreter

    def close(self) -> None:
        if self._spare is not None:
            self._spare.close()
            self._spare = None

    def _next(self, stage: str, *, inclusive: bool) -> str | None:
        start = self._order.index(stage) + (0 if inclusive else 1)
        return next((name for name in self._order[start:] if name in self._preloads), None)


def _end_with_parent(parent: int) -> None:
    """A child left behind by a killed hubpub would keep writing into a stage folder that a re-run clears."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(1)


def _serve(parent: int, preload: Sequence[str]) -> None:
    import importlib
    import runpy

    _end_with_parent(parent)

    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    for module in preload:
        importlib.import_module(module)

    line = sys.stdin.readline()
    if not line:
        return
    request = json.loads(line)
    sys.argv = [str(Path(request["module"])), *request["args"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2:])
