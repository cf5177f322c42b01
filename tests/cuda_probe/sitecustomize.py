"""TEST DOUBLE for the GPU we do not have: makes this CPU build of torch look like a CUDA build with one device,
and records who asks CUDA for its devices and who forks.

Python imports `sitecustomize` at start-up from the path; tests put this folder on PYTHONPATH and name a records
folder in HUBPUB_TEST_CUDA_PROBE, so every interpreter of the run (hubpub's CLI, the fork servers) is probed and
their forked children inherit it. Once torch is imported:

- `torch._C._cuda_getDeviceCount`, the CUDA runtime's count (torch's poisoning question), is recorded as
  "runtime" and marks the process as poisoned, as torch's fork handler would; it answers 1;
- `torch.cuda._raw_device_count_nvml`, NVML's count (the question that does not poison), is recorded as "nvml"
  and answers 1;
- `torch._C._accelerator_getAccelerator` names CUDA, so `torch.accelerator.is_available()` asks torch.cuda;
- `torch.cuda._is_in_bad_fork()` is true in a child forked from a poisoned process, as on a CUDA build.

Every `os.fork()` is recorded with whether its parent was poisoned. A child forked by a fork server for a
request (hubpub.warm's `_answer`) sees the CPU again (no accelerator, no device), since no CUDA kernel can run
here; its bad-fork flag stays. HUBPUB_TEST_CUDA_PROBE_POISONED=1 poisons every probed process at torch's import,
as if it had asked the poisoning way.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

_RECORDS = os.environ.get("HUBPUB_TEST_CUDA_PROBE")
_state = {"cuda": True, "poisoned": False, "bad_fork": False}


def _record(kind: str, **facts: Any) -> None:
    assert _RECORDS is not None
    entry = {"kind": kind, "pid": os.getpid(), "ppid": os.getppid(), **facts}
    with open(Path(_RECORDS) / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as records:
        records.write(json.dumps(entry) + "\n")


def _asker() -> str:
    frames = traceback.extract_stack()[:-2]
    outside = [frame for frame in frames if "sitecustomize" not in frame.filename and "torch" not in frame.filename]
    return f"{outside[-1].filename}:{outside[-1].lineno}" if outside else "torch"


def _patch(torch: Any) -> None:
    real_accelerator = torch._C._accelerator_getAccelerator

    def runtime_count() -> int:
        _record("runtime", asker=_asker(), cuda=_state["cuda"])
        _state["poisoned"] = True
        return 1 if _state["cuda"] else 0

    def nvml_count() -> int:
        _record("nvml", asker=_asker(), cuda=_state["cuda"])
        return 1 if _state["cuda"] else 0

    def accelerator() -> Any:
        return torch.device("cuda") if _state["cuda"] else real_accelerator()

    torch._C._cuda_getDeviceCount = runtime_count
    # A CUDA build has it; torch._dynamo imports it when it sees one. No stream is ever asked for here.
    torch._C._cuda_getCurrentRawStream = lambda device: 0
    torch.cuda._raw_device_count_nvml = nvml_count
    torch._C._accelerator_getAccelerator = accelerator
    torch.cuda._is_in_bad_fork = lambda: _state["bad_fork"]
    if os.environ.get("HUBPUB_TEST_CUDA_PROBE_POISONED") == "1":
        _state["poisoned"] = True


def _forked() -> None:
    caller = sys._getframe(1).f_code.co_name
    parent_poisoned = _state["poisoned"]
    _state["bad_fork"] = _state["bad_fork"] or parent_poisoned
    if caller == "_answer":
        _state["cuda"] = False
    _record("fork", parent_poisoned=parent_poisoned, forked_by=caller)


class _AfterTorch(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "torch":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _patch(module)


if _RECORDS is not None:
    sys.meta_path.insert(0, _AfterTorch())
    os.register_at_fork(after_in_child=_forked)
