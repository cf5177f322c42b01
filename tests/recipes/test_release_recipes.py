"""Model tier: the recipes example (model_specs/demo/smollm2-135m-recipes.yaml) releases the real SmolLM2-135M,
W4A16 with AWQ and W8A8 with SmoothQuant then GPTQ, and vLLM's CPU build (.venv-vllm) loads both checkpoints.

One release per algorithm, on a short calibration set: what the assertions need and no more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubpub import api
from tests.recipes.example import example_copy

pytestmark = [pytest.mark.model, pytest.mark.vllm]

KERNELS = {"W4A16-AWQ": "CPUWNA16LinearKernel", "W8A8-SmoothQuant": "CPUInt8ScaledMMLinearKernel"}
EXPECTED = {
    "W4A16-AWQ": (["AWQModifier", "QuantizationModifier"], "AWQ"),
    "W8A8-SmoothQuant": (["SmoothQuantModifier", "GPTQModifier"], "SmoothQuant + GPTQ"),
}


@pytest.fixture(scope="module")
def example(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_copy(tmp_path_factory.mktemp("recipes"), demo_model)


_RELEASED: dict[str, api.ReleaseOutcome] = {}


@pytest.fixture
def released(example: Path, vllm_python: Path, variant: str) -> api.ReleaseOutcome:
    """Each variant released once, by the first test that asks for it (so each release has its own time limit);
    both share the work folder, so the GGUF is converted once."""
    if variant not in _RELEASED:
        (outcome,) = api.release(
            [example], variant=variant, workdir=example.parent / "work", push=False, vllm_python=str(vllm_python)
        )
        _RELEASED[variant] = outcome
    return _RELEASED[variant]


def _modifiers(recipe: Path) -> list[Any]:
    from llmcompressor.recipe import Recipe

    return list(Recipe.create_instance(str(recipe)).modifiers)


@pytest.mark.parametrize("variant", sorted(EXPECTED))
@pytest.mark.timeout(1800)
def test_the_staged_recipe_is_the_algorithms(released: api.ReleaseOutcome, variant: str) -> None:
    names, _ = EXPECTED[variant]
    modifiers = _modifiers(released.staged_dir / "recipe.yaml")
    assert [type(modifier).__name__ for modifier in modifiers] == names
    if variant == "W8A8-SmoothQuant":
        assert modifiers[0].smoothing_strength == 0.8
    else:
        assert (modifiers[0].duo_scaling, modifiers[0].n_grid) == (True, 20)
        # AWQ found its mappings for LlamaForCausalLM and smoothed with them.
        assert [mapping.smooth_layer for mapping in modifiers[0].mappings] == [
            "re:.*input_layernorm$",
            "re:.*v_proj$",
            "re:.*post_attention_layernorm$",
            "re:.*up_proj$",
        ]


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_the_card_shows_the_recipe_and_reproduces_it(released: api.ReleaseOutcome, variant: str) -> None:
    names, label = EXPECTED[variant]
    card = (released.staged_dir / "README.md").read_text(encoding="utf-8")
    assert f"| Algorithm | {label} |" in card
    recipe = card.split("## Quantization Recipe", 1)[1].split("\n## ", 1)[0]
    reproduce = card.split('recipe = """', 1)[1].split('"""', 1)[0]
    for section in (recipe, reproduce):
        assert section.index(f"    {names[0]}:") < section.index(f"    {names[1]}:"), section
    first = {"SmoothQuantModifier": "smoothing_strength: 0.8", "AWQModifier": "duo_scaling: true"}[names[0]]
    assert f"    {names[0]}:\n      {first}" in recipe and f"    {names[0]}:\n      {first}" in reproduce


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_vllm_loads_and_answers(released: api.ReleaseOutcome, variant: str) -> None:
    stage = released.stages["vllm"]
    smoke = stage.metrics["smoke"]
    assert smoke["ok"] is True, smoke
    assert smoke["kernels"] == [KERNELS[variant]], smoke
    assert stage.metrics["prediction_check"]["agrees"] is True, stage.metrics["prediction_check"]
