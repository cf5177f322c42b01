"""The recipes example spec as the model tests release it, and as its card fixtures were made."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "model_specs" / "demo" / "smollm2-135m-recipes.yaml"


def example_copy(folder: Path, demo_model: Path) -> Path:
    """The example with its paths made absolute, vLLM required, and a calibration set just large enough to
    calibrate: AWQ's grid search runs every sample through each block 20 times per mapping, slow on 2 CPU cores."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for example, ours in {
        "path: ../../.cache/demo-models": f"path: {demo_model.parent}",
        "dataset: calibration.jsonl": f"dataset: {EXAMPLE.parent / 'calibration.jsonl'}",
        "num_samples: 16": "num_samples: 4",
        "max_seq_length: 128": "max_seq_length: 32",
        "vllm: optional": "vllm: required",
    }.items():
        assert example in text, example
        text = text.replace(example, ours)
    spec = folder / EXAMPLE.name
    spec.write_text(text, encoding="utf-8")
    return spec
