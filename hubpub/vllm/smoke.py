"""The real vLLM smoke test, run by the interpreter of a separate environment that has vLLM.

vLLM's pins conflict with llm-compressor's, so vLLM never lives in hubpub's environment. hubpub
runs its own script, `child.py` (standard library and vLLM only), in that interpreter, in a
new process group, and reads back one JSON result plus vLLM's log: the chosen kernels and schemes
come from the log lines, a crash is explained by the first known vLLM error line in it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpub.errors import UsageError
from hubpub.quality import degeneracy
from hubpub.vllm.environment import discover
from hubpub.vllm.rules import VLLM_ERROR_PATTERNS

VLLM_PYTHON_ENV = "HUBPUB_VLLM_PYTHON"
CHILD_SCRIPT = Path(__file__).with_name("child.py")
LOG_NAME = "vllm-child.log"
REQUEST_NAME = "vllm-request.json"
RESULT_NAME = "vllm-result.json"
SEED = 0
GPU_MEMORY_UTILIZATION = 0.8
LOG_TAIL_LINES = 40
KILL_GRACE_SECONDS = 10.0

ENGINE_WRAPPER = "Engine core initialization failed"
KNOWN_ERRORS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern) for pattern in VLLM_ERROR_PATTERNS if pattern != ENGINE_WRAPPER
)
# The multiprocessing engine's wrapper around the real cause: the last resort among known lines.
ENGINE_WRAPPER_ERROR = re.compile(ENGINE_WRAPPER)
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Interrupt|Exit)\b:?")
_KERNEL_LINE = re.compile(r"\b(?:Using|Selected) (\w+) for (?:CompressedTensors\w+|mixed-precision linear|\w+ GEMM)\b")
_SCHEME_LINE = re.compile(r"\bUsing scheme: (\w+) for \S+")
_MAX_REASON_CHARS = 400

_CHILD_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # DEBUG adds vLLM's per-layer "Using scheme: <Class> for <layer>" lines to the INFO kernel lines.
    "VLLM_LOGGING_LEVEL": "DEBUG",
    "VLLM_CONFIGURE_LOGGING": "1",
    "VLLM_LOGGING_STREAM": "ext://sys.stderr",
    # In-process engine: a load failure keeps its own exception type and message.
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "PYTHONUNBUFFERED": "1",
}


def configured_python(
    explicit: str | Path | None = None, *, origin: str | None = None, search_from: Iterable[Path] = ()
) -> Path | None:
    """The interpreter of the vLLM environment, or None when there is none.

    `explicit` (CLI or spec) wins, then $HUBPUB_VLLM_PYTHON, then the nearest complete `.venv-vllm` made by
    `hubpub vllm-env` in a folder of `search_from` or one of its parents. `origin` names where `explicit`
    came from, for the error message. The path is made absolute but symlinks are kept: a virtual
    environment's `bin/python` is a link that must stay one.
    Raises UsageError when the interpreter named does not exist or cannot be executed.
    """
    if explicit is not None:
        path, where = Path(explicit), origin or "--vllm-python or verify.vllm_python"
    elif os.environ.get(VLLM_PYTHON_ENV):
        path, where = Path(os.environ[VLLM_PYTHON_ENV]), f"${VLLM_PYTHON_ENV}"
    else:
        return discover(search_from)
    path = path.expanduser().absolute()
    hint = "point it at the Python of an environment with vLLM installed, e.g. /opt/vllm-env/bin/python"
    if not path.exists():
        raise UsageError(f"the vLLM Python {path} (from {where}) does not exist: {hint}")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise UsageError(f"the vLLM Python {path} (from {where}) is not an executable file: {hint}")
    return path


@dataclass(frozen=True)
class SmokeResult:
    """What one vLLM load-and-generate run showed; `reason` says why when `ok` is False."""

    ok: bool
    reason: str | None
    vllm_version: str | None
    torch_version: str | None
    gpu: str | None
    kernels: tuple[str, ...]
    schemes: tuple[str, ...]
    outputs: tuple[dict[str, Any], ...]
    load_seconds: float | None
    generate_seconds: float | None
    log_tail: str

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, for the manifest."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "vllm_version": self.vllm_version,
            "torch_version": self.torch_version,
            "gpu": self.gpu,
            "kernels": list(self.kernels),
            "schemes": list(self.schemes),
            "outputs": [dict(output) for output in self.outputs],
            "load_seconds": self.load_seconds,
            "generate_seconds": self.generate_seconds,
            "log_tail": self.log_tail,
        }


def run_smoke(
    python: Path,
    checkpoint: Path,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    workdir: Path,
    timeout_s: float = 900.0,
    max_model_len: int = 1024,
) -> SmokeResult:
    """Load `checkpoint` in vLLM with `python` (its own environment) and generate greedily for each prompt.

    Never raises for what vLLM does: a crash, a timeout, a missing or malformed result, or an empty
    or degenerate answer all give ok=False with a reason. The request, result and combined
    stdout/stderr log (`vllm-child.log`) stay in `workdir`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    request_path, result_path, log_path = workdir / REQUEST_NAME, workdir / RESULT_NAME, workdir / LOG_NAME
    result_path.unlink(missing_ok=True)
    request = {
        "checkpoint": str(checkpoint.absolute()),
        "prompts": list(prompts),
        "max_new_tokens": max_new_tokens,
        "max_model_len": max_model_len,
        "seed": SEED,
        "gpu_memory_utilization": GPU_MEMORY_UTILIZATION,
    }
    request_path.write_text(json.dumps(request, indent=2), encoding="utf-8")
    command = [str(python), str(CHILD_SCRIPT), str(request_path.absolute()), str(result_path.absolute())]
    failure: str | None = None
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **_CHILD_ENV},
                cwd=workdir,
                start_new_session=True,
            )
        except OSError as error:
            failure = f"could not start the vLLM Python {python}: {error}"
        else:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                failure = f"timed out after {timeout_s:g} s"
            finally:
                # Also after a normal exit: nothing the child started may outlive it and hold the GPU.
                _end_process_group(process)
            if failure is None and process.returncode != 0:
                failure = _crash_reason(process.returncode, log_path)
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    kernels, schemes = _parse_log(log_text)
    tail = "\n".join(log_text.splitlines()[-LOG_TAIL_LINES:])
    facts: dict[str, Any] = {}
    if failure is None:
        facts, failure = _read_result(result_path, list(prompts))
    return SmokeResult(
        ok=failure is None,
        reason=failure,
        vllm_version=facts.get("vllm_version"),
        torch_version=facts.get("torch_version"),
        gpu=facts.get("gpu"),
        kernels=kernels,
        schemes=schemes,
        outputs=tuple(facts.get("outputs", ())),
        load_seconds=facts.get("load_seconds"),
        generate_seconds=facts.get("generate_seconds"),
        log_tail=tail,
    )


def compare_first_tokens(
    transformers_generations: Sequence[Mapping[str, Any]],
    vllm_outputs: Sequence[Mapping[str, Any]],
    *,
    count: int = 8,
) -> list[dict[str, Any]]:
    """The prompts whose first `count` generated tokens differ between transformers and vLLM.

    Token ids are compared when both sides have them, else the first `count` whitespace-separated
    words of the text. Prompts are paired by their text; a prompt missing on either side is not
    compared. Greedy decoding in two engines may legitimately diverge, so this is a record, not a check.
    """
    by_prompt: dict[str, Mapping[str, Any]] = {}
    for output in vllm_outputs:
        by_prompt.setdefault(output["prompt"], output)
    disagreements = []
    for generation in transformers_generations:
        counterpart = by_prompt.get(generation["prompt"])
        if counterpart is None:
            continue
        if _has_token_ids(generation) and _has_token_ids(counterpart):
            compared = "token_ids"
            ours: list[Any] = list(generation["token_ids"])[:count]
            theirs: list[Any] = list(counterpart["token_ids"])[:count]
        else:
            compared = "words"
            ours = _text(generation).split()[:count]
            theirs = _text(counterpart).split()[:count]
        if ours != theirs:
            disagreements.append(
                {"prompt": generation["prompt"], "transformers": ours, "vllm": theirs, "compared": compared}
            )
    return disagreements


def _has_token_ids(generation: Mapping[str, Any]) -> bool:
    token_ids = generation.get("token_ids")
    return isinstance(token_ids, list | tuple) and all(isinstance(token, int) for token in token_ids)


def _text(generation: Mapping[str, Any]) -> str:
    # hubpub's transformers verification names the generated text "output"; vLLM's result names it "text".
    text = generation.get("text", generation.get("output"))
    return text if isinstance(text, str) else ""


def _end_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's whole process group, SIGKILL what is left after the grace period, reap the child."""
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline and _group_alive(group, process):
        time.sleep(0.05)
    if _group_alive(group, process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    process.wait()


def _group_alive(group: int, process: subprocess.Popen[bytes]) -> bool:
    process.poll()
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _crash_reason(returncode: int, log_path: Path) -> str:
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit code {returncode}"
    line = _error_line(log_path.read_text(encoding="utf-8", errors="replace"))
    return f"vLLM crashed ({how}): {line}" if line else f"vLLM crashed ({how}); see {log_path}"


def _error_line(log_text: str) -> str | None:
    """The first line naming a known vLLM failure, else the wrapper's line, else the last exception line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for patterns in (KNOWN_ERRORS, (ENGINE_WRAPPER_ERROR,)):
        for line in lines:
            if any(pattern.search(line) for pattern in patterns):
                return _shorten(line)
    exceptions = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return _shorten(exceptions[-1]) if exceptions else None


def _shorten(line: str) -> str:
    return line if len(line) <= _MAX_REASON_CHARS else line[: _MAX_REASON_CHARS - 1] + "…"


def _parse_log(log_text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The kernel and scheme class names vLLM logged, each once, in the order first seen."""
    kernels: dict[str, None] = {}
    schemes: dict[str, None] = {}
    for line in log_text.splitlines():
        for match in _KERNEL_LINE.finditer(line):
            kernels.setdefault(match.group(1))
        for match in _SCHEME_LINE.finditer(line):
            schemes.setdefault(match.group(1))
    return tuple(kernels), tuple(schemes)


def _read_result(result_path: Path, prompts: list[str]) -> tuple[dict[str, Any], str | None]:
    """The facts from the child's result, and why the run failed (None when it passed)."""
    if not result_path.is_file():
        return {}, "the vLLM script exited with code 0 but wrote no result"
    try:
        raw = json.loads(result_path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as error:
        return {}, f"the vLLM script's result is not valid JSON: {error}"
    problem = _shape_problem(raw, prompts)
    if problem is not None:
        return {}, f"the vLLM script's result is garbage: {problem}"
    facts = {
        "vllm_version": raw["vllm_version"],
        "torch_version": raw.get("torch_version") if isinstance(raw.get("torch_version"), str) else None,
        "gpu": _gpu_text(raw.get("gpu")),
        "outputs": [
            {"prompt": output["prompt"], "text": output["text"], "token_ids": list(output["token_ids"])}
            for output in raw["outputs"]
        ],
        "load_seconds": float(raw["load_seconds"]),
        "generate_seconds": float(raw["generate_seconds"]),
    }
    for output in facts["outputs"]:
        issue = degeneracy(output["text"])
        if issue is not None:
            return facts, f"vLLM's answer to {output['prompt']!r} is degenerate ({issue}): {_shorten(output['text'])!r}"
    return facts, None


def _shape_problem(raw: Any, prompts: list[str]) -> str | None:
    if not isinstance(raw, dict):
        return f"a JSON {type(raw).__name__}, not an object"
    if not isinstance(raw.get("vllm_version"), str):
        return "no vllm_version"
    for key in ("load_seconds", "generate_seconds"):
        value = raw.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return f"{key} is not a number"
    outputs = raw.get("outputs")
    if not isinstance(outputs, list):
        return "no list of outputs"
    if len(outputs) != len(prompts):
        return f"{len(outputs)} outputs for {len(prompts)} prompts"
    for index, (output, prompt) in enumerate(zip(outputs, prompts, strict=True)):
        if not isinstance(output, dict):
            return f"outputs[{index}] is not an object"
        if output.get("prompt") != prompt:
            return f"outputs[{index}] answers {output.get('prompt')!r}, not {prompt!r}"
        if not isinstance(output.get("text"), str):
            return f"outputs[{index}].text is not text"
        token_ids = output.get("token_ids")
        if not isinstance(token_ids, list) or not all(
            isinstance(token, int) and not isinstance(token, bool) for token in token_ids
        ):
            return f"outputs[{index}].token_ids is not a list of integers"
    return None


def _gpu_text(gpu: Any) -> str | None:
    if not isinstance(gpu, dict) or not isinstance(gpu.get("name"), str):
        return None
    capability = gpu.get("capability")
    if isinstance(capability, list) and len(capability) == 2:
        return f"{gpu['name']} (capability {capability[0]}.{capability[1]})"
    return str(gpu["name"])
