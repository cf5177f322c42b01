"""The child process protocol of the stages that load a model: a request JSON in, a result JSON out.

The parent (`run_child`) writes `<name>-request.json` in the stage folder, runs a child module in a
warm interpreter with the request and result paths, keeps its output as `<name>-child.log`, and
records the peaks the child reports. The child (`serve`) runs its work on the request and writes
the result with its own peak memory. A HubpubError raised by the work is an expected failure: the
parent raises the same class with the same message (so its exit code holds); any other failure
becomes a StageError with the log's tail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubpub import errors, stagelog
from hubpub.errors import HubpubError, SpecError, StageError
from hubpub.measure import record_child_peaks
from hubpub.peaks import own_peaks
from hubpub.warm import WarmInterpreter

LOG_TAIL_LINES = 15


def run_child(
    module: str,
    request: dict[str, Any],
    folder: Path,
    name: str,
    *,
    what: str,
    timeout: float,
) -> dict[str, Any]:
    """Run `python -m module REQUEST RESULT` in a child forked from the fork server and return the result.

    `what` says what the child does, for errors ("quantizing with llm-compressor").
    """
    request_path, result_path = folder / f"{name}-request.json", folder / f"{name}-result.json"
    result_path.unlink(missing_ok=True)
    request_path.write_text(json.dumps(request, indent=2), encoding="utf-8")
    interpreter = WarmInterpreter()
    try:
        code = interpreter.run(
            module, [str(request_path), str(result_path)], timeout=timeout, poll=stagelog.watch(interpreter.log)
        )
    except subprocess.TimeoutExpired:
        raise StageError(f"{what} took longer than {timeout:.0f} s") from None
    finally:
        output = interpreter.output()
        interpreter.close()
        (folder / f"{name}-child.log").write_text(output, encoding="utf-8")
        stagelog.include(f"{name} child ({what})", output)
    result: dict[str, Any] | None = None
    if result_path.is_file():
        result = json.loads(result_path.read_text(encoding="utf-8"))
        record_child_peaks(result)
    if code == 0 and result is not None and "error" in result:
        raise _error_class(result["error"].get("type"))(result["error"]["message"])
    if code != 0 or result is None:
        raise StageError(failure(f"{what} failed", output))
    return result


def failure(headline: str, output: str) -> str:
    """A child's failure: within a stage, its last line (the stage's log holds the rest, and the CLI shows its
    tail); outside one, the last lines of its output."""
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in output.strip().splitlines()]
    lines = [line for line in lines if line.strip()]
    if stagelog.active() is not None:
        return f"{headline}: {lines[-1].strip()}" if lines else headline
    return "\n".join([f"{headline}:", *lines[-LOG_TAIL_LINES:]])


def serve(work: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The child's main: `work(request)` becomes the result, with this process's id and peaks added."""
    request_path, result_path = sys.argv[1:3]
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    try:
        result = work(request)
    except HubpubError as error:
        result = {"error": {"type": type(error).__name__, "message": str(error)}}
    reported = {**result, "pid": os.getpid(), **own_peaks()}
    Path(result_path).write_text(json.dumps(reported, indent=2), encoding="utf-8")


def _error_class(name: Any) -> type[HubpubError]:
    found = getattr(errors, str(name), None)
    if isinstance(found, type) and issubclass(found, HubpubError) and not issubclass(found, SpecError):
        return found
    return StageError
