"""Runners that share a host give each its GPUs with CUDA_VISIBLE_DEVICES; every child hubpub starts keeps it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hubpub.stages.card import SNIPPET_MARKER, run_snippet, run_vllm_code

SHOW_DEVICES = 'import os\nprint("org/model", os.environ.get("CUDA_VISIBLE_DEVICES"))\n'


@pytest.fixture(autouse=True)
def devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")


def test_the_card_snippet_sees_the_runners_gpus(tmp_path: Path) -> None:
    card = f"{SNIPPET_MARKER}\n```python\n{SHOW_DEVICES}```\n"
    result = run_snippet(card, "org/model", tmp_path / "checkpoint", tmp_path)
    assert result["output"].endswith("checkpoint 2,3")


def test_a_script_in_the_vllm_environment_sees_the_runners_gpus(tmp_path: Path) -> None:
    # run_script starts the vLLM smoke test the same way (one process group, the same environment).
    result = run_vllm_code(SHOW_DEVICES, "org/model", tmp_path / "checkpoint", tmp_path, Path(sys.executable))
    assert result["output"].endswith("checkpoint 2,3")
