"""A fresh Python interpreter started ahead of time, with torch and transformers already imported.

Verification must load the checkpoint in a fresh process, as a user would. Starting that process
while earlier stages still run hides its import time (several seconds) behind their work. The
process has loaded no model; it runs one module as `__main__` when asked, then exits.

Child side: `python -m hubpub.warm` reads one JSON line `{"module": ..., "args": [...]}` from stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


class WarmInterpreter:
    def __init__(self) -> None:
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (kept open until close())
        self._process = subprocess.Popen(
            [sys.executable, "-m", "hubpub.warm"], stdin=subprocess.PIPE, stdout=self._output, stderr=subprocess.STDOUT
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


def _serve() -> None:
    import runpy

    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    line = sys.stdin.readline()
    if not line:
        return
    request = json.loads(line)
    sys.argv = [str(Path(request["module"])), *request["args"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve()
