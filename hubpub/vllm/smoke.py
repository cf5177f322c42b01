"""The real vLLM smoke test, run by the interpreter of a separate environment that has vLLM.

vLLM's pins conflict with llm-compressor's, so vLLM never lives in hubpub's environment. hubpub
runs its own script, `child.py` (standard library, vLLM and torch only), in that interpreter, in a
new process group, and reads back one JSON result plus vLLM's log: the chosen kernels and schemes
come from the log lines. The result names the platform even when the load fails; a Python exception
in vLLM comes back whole, with the phase and the layer it happened in, and a hard crash is explained
by the first known vLLM error line in the log. `run_script` runs any Python file (the model card's
vLLM snippet) in the same environment, as a user would run it.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from hubpub import stagelog
from hubpub.errors import UsageError
from hubpub.measure import record_child_peaks
from hubpub.quality import degeneracy
from hubpub.vllm.environment import locate
from hubpub.vllm.rules import VLLM_ERROR_PATTERNS

VLLM_PYTHON_ENV = "HUBPUB_VLLM_PYTHON"
NO_VLLM = "none"
"""$HUBPUB_VLLM_PYTHON set to this: no vLLM environment, none searched for (the test suite sets it)."""
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

# Defaults the user's environment overrides. vLLM's CPU backend otherwise sizes its KV cache (GiB) from a
# share of the machine's memory; the smoke test's few short prompts need far less.
_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1"}
# Set for every run in the vLLM environment: nothing is downloaded, and vLLM logs to stderr.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_LOGGING_STREAM": "ext://sys.stderr",
}
_CHILD_ENV = {
    **_OFFLINE_ENV,
    # DEBUG adds vLLM's per-layer "Using scheme: <Class> for <layer>" lines to the INFO kernel lines.
    "VLLM_LOGGING_LEVEL": "DEBUG",
    "VLLM_CONFIGURE_LOGGING": "1",
    # In-process engine: a load failure keeps its own exception type and message.
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "PYTHONUNBUFFERED": "1",
}


def configured_python(
    explicit: str | Path | None = None, *, origin: str | None = None, search_from: Iterable[Path] = ()
) -> Path | None:
    """The interpreter of the vLLM environment, or None when there is none (`chosen_python` without the words)."""
    chosen = chosen_python(explicit, origin=origin, search_from=search_from)
    return chosen[0] if chosen is not None else None


def chosen_python(
    explicit: str | Path | None = None, *, origin: str | None = None, search_from: Iterable[Path] = ()
) -> tuple[Path, str] | None:
    """The interpreter of the vLLM environment and where it came from in words, or None when there is none.

    `explicit` (CLI or spec) wins, then $HUBPUB_VLLM_PYTHON (`none` there means no vLLM environment and no
    search), then, when `search_from` names spec folders, the nearest complete `.venv-vllm` made by
    `hubpub vllm-env` (hubpub.vllm.environment.locate: from a spec's folder or the current folder upwards,
    or beside hubpub's own environment). `origin` names where `explicit` came from. The path is made absolute
    but symlinks are kept: a virtual environment's `bin/python` is a link that must stay one.
    Raises UsageError when the interpreter named does not exist or cannot be executed.
    """
    if explicit is not None:
        path, where = Path(explicit), origin or "--vllm-python or verify.vllm_python"
    elif os.environ.get(VLLM_PYTHON_ENV) == NO_VLLM:
        return None
    elif os.environ.get(VLLM_PYTHON_ENV):
        path, where = Path(os.environ[VLLM_PYTHON_ENV]), f"${VLLM_PYTHON_ENV}"
    else:
        folders = list(search_from)
        return locate(folders) if folders else None
    path = path.expanduser().absolute()
    hint = "point it at the Python of an environment with vLLM installed, e.g. /opt/vllm-env/bin/python"
    if not path.exists():
        raise UsageError(f"the vLLM Python {path} (from {where}) does not exist: {hint}")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise UsageError(f"the vLLM Python {path} (from {where}) is not an executable file: {hint}")
    return path, f"from {where}"


@dataclass(frozen=True)
class SmokeResult:
    """What one vLLM load-and-generate run showed; `reason` says why when `ok` is False.

    `platform` is the child's description of what vLLM ran on (`kind` "gpu" or "cpu"), `platform_text` the
    same in words; `gpu` is the older text, None on a CPU. `error` is the Python exception vLLM raised
    (type, whole message, layer, phase), when it raised one. The versions and the platform are known
    whenever the child got as far as importing vLLM, also when the load failed.
    """

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
    platform: dict[str, Any] | None = None
    platform_text: str | None = None
    error: dict[str, Any] | None = None
    distribution: str | None = None  # "vllm", or "vllm-cpu" for the community CPU build

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, for the manifest."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "vllm_version": self.vllm_version,
            "distribution": self.distribution,
            "torch_version": self.torch_version,
            "gpu": self.gpu,
            "platform": self.platform,
            "platform_text": self.platform_text,
            "error": self.error,
            "kernels": list(self.kernels),
            "schemes": list(self.schemes),
            "outputs": [dict(output) for output in self.outputs],
            "load_seconds": self.load_seconds,
            "generate_seconds": self.generate_seconds,
            "log_tail": self.log_tail,
        }


@dataclass(frozen=True)
class ScriptResult:
    """One run of a Python file in the vLLM environment; `reason` says why when `ok` is False.

    `returncode` is None when the script did not start or was killed at the timeout. `stdout` is all it
    printed (vLLM logs to stderr), `log_tail` the last lines of its stderr.
    """

    ok: bool
    returncode: int | None
    stdout: str
    log_tail: str
    seconds: float
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, for the manifest."""
        return asdict(self)


def run_smoke(
    python: Path,
    checkpoint: Path,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    workdir: Path,
    timeout_s: float = 900.0,
    max_model_len: int = 1024,
    tensor_parallel_size: int = 1,
) -> SmokeResult:
    """Load `checkpoint` in vLLM with `python` (its own environment) and generate greedily for each prompt.

    Never raises for what vLLM does: a crash, a timeout, a missing or malformed result, or an empty
    or degenerate answer all give ok=False with a reason. The request, result and combined
    stdout/stderr log (`vllm-child.log`) stay in `workdir`. `max_model_len` is lowered to the
    checkpoint's `max_position_embeddings` when that is smaller: vLLM refuses a longer one. One engine
    spans `tensor_parallel_size` of the GPUs the child sees (CUDA_VISIBLE_DEVICES is inherited).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    request_path, result_path, log_path = workdir / REQUEST_NAME, workdir / RESULT_NAME, workdir / LOG_NAME
    result_path.unlink(missing_ok=True)
    request = {
        "checkpoint": str(checkpoint.absolute()),
        "prompts": list(prompts),
        "max_new_tokens": max_new_tokens,
        "max_model_len": _fitting_max_model_len(checkpoint, max_model_len),
        "seed": SEED,
        "gpu_memory_utilization": GPU_MEMORY_UTILIZATION,
        "tensor_parallel_size": tensor_parallel_size,
    }
    request_path.write_text(json.dumps(request, indent=2), encoding="utf-8")
    arguments = [str(CHILD_SCRIPT), str(request_path.absolute()), str(result_path.absolute())]
    with log_path.open("wb") as log:
        ended = _run_in_own_group(
            python,
            arguments,
            workdir=workdir,
            env=_CHILD_ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout_s=timeout_s,
        )
    reported = _read_json(result_path)
    if isinstance(reported, dict):
        record_child_peaks(reported)
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    stagelog.include(f"vLLM child ({log_path})", log_text)
    kernels, schemes = _parse_log(log_text)
    tail = _tail(log_text)
    error: dict[str, Any] | None = None
    if ended.failure is None and ended.returncode == 0:
        facts, failure = _read_result(result_path, list(prompts))
    else:
        # What the child wrote before it failed: the versions, the platform and, for an exception, the error.
        partial = _read_json(result_path)
        facts = _environment_facts(partial)
        if isinstance(partial, dict) and _is_number(partial.get("load_seconds")):
            facts["load_seconds"] = float(partial["load_seconds"])  # the load passed; generating failed
        error = _child_error(partial)
        if ended.failure is not None:
            failure = ended.failure
        elif error is not None:
            failure = _error_reason(error)
        else:
            failure = _crash_reason(ended.returncode, log_path)
    return SmokeResult(
        ok=failure is None,
        reason=failure,
        vllm_version=facts.get("vllm_version"),
        distribution=facts.get("distribution"),
        torch_version=facts.get("torch_version"),
        gpu=facts.get("gpu"),
        kernels=kernels,
        schemes=schemes,
        outputs=tuple(facts.get("outputs", ())),
        load_seconds=facts.get("load_seconds"),
        generate_seconds=facts.get("generate_seconds"),
        log_tail=tail,
        platform=facts.get("platform"),
        platform_text=_platform_text(facts.get("platform")),
        error=error,
    )


def _fitting_max_model_len(checkpoint: Path, wanted: int) -> int:
    """`wanted`, or the checkpoint's smaller `max_position_embeddings` (top level, else `text_config`)."""
    config = _read_json(checkpoint / "config.json")
    if not isinstance(config, dict):
        return wanted
    text_config = config.get("text_config")
    for section in (config, text_config if isinstance(text_config, dict) else {}):
        limit = section.get("max_position_embeddings")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            return min(wanted, limit)
    return wanted


def run_script(
    python: Path,
    script: Path,
    *,
    workdir: Path,
    timeout_s: float = 900.0,
    extra_env: Mapping[str, str] | None = None,
) -> ScriptResult:
    """Run the Python file `script` with `python` (the vLLM environment's interpreter) in `workdir`.

    The script runs as a user would run it (vLLM's default multiprocessing engine included), offline,
    in its own process group, which is ended after it exits or times out. Its stdout goes to
    `<stem>.stdout`, its stderr (vLLM's log) to `<stem>.log`, both in `workdir`. Never raises for what
    the script does: a non-zero exit, a crash or a timeout give ok=False with a reason.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path, log_path = workdir / f"{script.stem}.stdout", workdir / f"{script.stem}.log"
    with stdout_path.open("wb") as stdout, log_path.open("wb") as log:
        ended = _run_in_own_group(
            python,
            [str(script.absolute())],
            workdir=workdir,
            env={**_OFFLINE_ENV, **(extra_env or {})},
            stdout=stdout,
            stderr=log,
            timeout_s=timeout_s,
        )
    failure = ended.failure
    stagelog.include(f"{script.name} in vLLM's environment ({log_path})", log_path.read_text("utf-8", "replace"))
    if failure is None and ended.returncode != 0:
        failure = _crash_reason(ended.returncode, log_path, what=script.name, verb="failed")
    return ScriptResult(
        ok=failure is None,
        returncode=None if ended.failure is not None else ended.returncode,
        stdout=stdout_path.read_text(encoding="utf-8", errors="replace"),
        log_tail=_tail(log_path.read_text(encoding="utf-8", errors="replace")),
        seconds=ended.seconds,
        reason=failure,
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


@dataclass(frozen=True)
class _Ended:
    """How a process run by `_run_in_own_group` ended: `failure` when it did not start or timed out."""

    returncode: int
    failure: str | None
    seconds: float


def _run_in_own_group(
    python: Path,
    arguments: list[str],
    *,
    workdir: Path,
    env: Mapping[str, str],
    stdout: IO[bytes],
    stderr: IO[bytes] | int,
    timeout_s: float,
) -> _Ended:
    """Run `python` with `arguments` in `workdir`, in a new process group with stdin from /dev/null, and end
    the group however it ends.

    The environment is `_ENV_DEFAULTS`, then os.environ (the user's values win over those defaults),
    then `env`. A relative `python` is taken from the current folder, not from `workdir`.
    """
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            [str(python.absolute()), *arguments],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env={**_ENV_DEFAULTS, **os.environ, **env},
            cwd=workdir,
            start_new_session=True,
        )
    except OSError as error:
        return _Ended(-1, f"could not start the vLLM Python {python}: {error}", time.monotonic() - started)
    failure = None
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        failure = f"timed out after {timeout_s:g} s"
    finally:
        seconds = time.monotonic() - started
        # Also after a normal exit: nothing the child started may outlive it and hold the GPU.
        _end_process_group(process)
    return _Ended(process.returncode, failure, seconds)


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


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


def _crash_reason(returncode: int, log_path: Path, *, what: str = "vLLM", verb: str = "crashed") -> str:
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit code {returncode}"
    line = _error_line(log_path.read_text(encoding="utf-8", errors="replace"))
    return f"{what} {verb} ({how}): {line}" if line else f"{what} {verb} ({how}); see {log_path}"


def _error_reason(error: Mapping[str, Any]) -> str:
    """`<phase>: <Type>: <message>` with the whole message, and the layer it happened in."""
    message = _tidy(error["message"])
    reason = f"{error['phase']}: {error['type']}: {message}" if message else f"{error['phase']}: {error['type']}"
    if error["layer"]:
        # After a multi-line message (vLLM's per-kernel reasons) the layer gets its own line.
        reason += f"\nat layer {error['layer']}" if "\n" in message else f" at layer {error['layer']}"
    return reason


def _tidy(message: str) -> str:
    """Each line stripped, runs of blank lines made one, none at either end."""
    lines: list[str] = []
    for raw in message.splitlines():
        line = raw.strip()
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


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


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError):
        return None


def _environment_facts(raw: Any) -> dict[str, Any]:
    """The versions and platform from a result, full or partial; what is missing or malformed is left out."""
    if not isinstance(raw, dict):
        return {}
    facts: dict[str, Any] = {
        key: raw[key] for key in ("vllm_version", "distribution", "torch_version") if isinstance(raw.get(key), str)
    }
    facts["gpu"] = _gpu_text(raw.get("gpu"))
    platform = raw.get("platform")
    if isinstance(platform, dict) and platform.get("kind") in ("gpu", "cpu"):
        facts["platform"] = platform
    return facts


def _child_error(raw: Any) -> dict[str, Any] | None:
    """The child's `error` object, when it wrote a well-formed one."""
    error = raw.get("error") if isinstance(raw, dict) else None
    if not isinstance(error, dict) or not all(isinstance(error.get(key), str) for key in ("type", "message", "phase")):
        return None
    layer = error.get("layer")
    return {
        "type": error["type"],
        "message": error["message"],
        "layer": layer if isinstance(layer, str) and layer else None,
        "phase": error["phase"],
    }


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
        **_environment_facts(raw),
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
        if not _is_number(raw.get(key)):
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _gpu_text(gpu: Any) -> str | None:
    if not isinstance(gpu, dict) or not isinstance(gpu.get("name"), str):
        return None
    capability = gpu.get("capability")
    if isinstance(capability, list) and len(capability) == 2:
        return f"{gpu['name']} (capability {capability[0]}.{capability[1]})"
    return str(gpu["name"])


def _platform_text(platform: Any) -> str | None:
    """The platform in words: "NVIDIA H100 80GB HBM3 (compute capability 9.0)", "CPU <name> (x86_64, AVX2)"."""
    if not isinstance(platform, dict):
        return None
    name = platform.get("name") if isinstance(platform.get("name"), str) else ""
    if platform.get("kind") == "gpu":
        capability = platform.get("capability")
        if isinstance(capability, list) and len(capability) == 2:
            return f"{name or 'GPU'} (compute capability {capability[0]}.{capability[1]})"
        return name or "GPU"
    details = [str(platform[key]) for key in ("arch", "isa") if isinstance(platform.get(key), str) and platform[key]]
    text = f"CPU {name}" if name else "CPU"
    return f"{text} ({', '.join(details)})" if details else text
