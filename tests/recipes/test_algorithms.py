"""smoothquant+gptq and awq in the spec and the recipe: which schemes each fits, smoothing_strength, the recipe's
modifiers in order with their arguments written out, and llm-compressor reading that recipe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubpub.errors import SpecError
from hubpub.schemes import AWQ_ARGUMENTS, SCHEMES
from hubpub.spec import load_spec

CALIBRATION = "calibration: {dataset: org/calibration, num_samples: 8}\n"


def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"base_model: org/base\nrepo_id: org/quantized\n{body}{CALIBRATION}", encoding="utf-8")
    return path


def _problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(SpecError) as raised:
        load_spec(_spec(tmp_path, body))
    return [f"{problem.line}:{problem.field}: {problem.message}" for problem in raised.value.problems]


def _modifiers(recipe: dict[str, Any]) -> dict[str, Any]:
    modifiers: dict[str, Any] = recipe["quant_stage"]["quant_modifiers"]
    return modifiers


def test_each_scheme_takes_the_algorithms_its_quantization_fits() -> None:
    for scheme in SCHEMES.values():
        weight_only_int = scheme.activations is None and scheme.weights.type == "int"
        int_activations = scheme.activations is not None and scheme.activations.type == "int"
        assert ("awq" in scheme.algorithms) == weight_only_int, scheme.name
        assert ("smoothquant+gptq" in scheme.algorithms) == int_activations, scheme.name
    assert [name for name, scheme in SCHEMES.items() if "awq" in scheme.algorithms] == ["W4A16", "W4A16_ASYM", "W8A16"]
    assert [name for name, scheme in SCHEMES.items() if "smoothquant+gptq" in scheme.algorithms] == ["W8A8"]


@pytest.mark.parametrize("algorithm", ["smoothquant+gptq", "awq"])
def test_both_read_calibration_data(algorithm: str, tmp_path: Path) -> None:
    scheme = "W8A8" if algorithm == "smoothquant+gptq" else "W4A16"
    assert SCHEMES[scheme].needs_calibration(algorithm)  # type: ignore[arg-type]
    path = tmp_path / "spec.yaml"
    path.write_text(f"base_model: org/base\nrepo_id: org/q\nscheme: {scheme}\nalgorithm: {algorithm}\n")
    with pytest.raises(SpecError, match=re.escape(f"a calibration dataset is required: {scheme} with {algorithm}")):
        load_spec(path)


def test_awq_on_an_activation_quantized_scheme_is_refused_at_its_line(tmp_path: Path) -> None:
    assert _problems(tmp_path, "scheme: W8A8\nalgorithm: awq\n") == [
        "4:algorithm: W8A8 supports algorithm rtn, gptq or smoothquant+gptq, not 'awq': AWQ rescales salient"
        " weight channels for weight-only integer schemes (W4A16, W4A16_ASYM, W8A16)"
    ]


def test_smoothquant_on_a_weight_only_scheme_is_refused_at_its_line(tmp_path: Path) -> None:
    assert _problems(tmp_path, "scheme: W4A16_ASYM\nalgorithm: smoothquant+gptq\n") == [
        "4:algorithm: W4A16_ASYM supports algorithm rtn, gptq or awq, not 'smoothquant+gptq': SmoothQuant moves"
        " activation outliers into the weights, for schemes that quantize activations to integers (W8A8)"
    ]


@pytest.mark.parametrize("strength", ["0", "1", "-0.2", "1.5"])
def test_smoothing_strength_is_strictly_between_0_and_1(tmp_path: Path, strength: str) -> None:
    (problem,) = _problems(tmp_path, f"scheme: W8A8\nalgorithm: smoothquant+gptq\nsmoothing_strength: {strength}\n")
    assert problem.startswith("5:smoothing_strength: Input should be")


def test_smoothing_strength_belongs_to_smoothquant(tmp_path: Path) -> None:
    assert _problems(tmp_path, "scheme: W8A8\nalgorithm: gptq\nsmoothing_strength: 0.5\n") == [
        "5:smoothing_strength: SmoothQuant's alpha applies to algorithm smoothquant+gptq only, not 'gptq':"
        " remove it or set algorithm: smoothquant+gptq"
    ]


def test_smoothquant_recipe_smooths_at_0_8_then_runs_gptq(tmp_path: Path) -> None:
    (release,) = load_spec(_spec(tmp_path, "scheme: W8A8\nalgorithm: smoothquant+gptq\n")).releases
    modifiers = _modifiers(release.recipe())
    assert list(modifiers) == ["SmoothQuantModifier", "GPTQModifier"]
    assert modifiers["SmoothQuantModifier"] == {"smoothing_strength": 0.8}
    gptq = modifiers["GPTQModifier"]
    assert (gptq["targets"], gptq["ignore"]) == (["Linear"], ["lm_head"])
    assert gptq["config_groups"]["group_0"]["input_activations"]["dynamic"] is True


def test_smoothing_strength_from_the_spec_is_the_recipes(tmp_path: Path) -> None:
    body = "scheme: W8A8\nalgorithm: smoothquant+gptq\nsmoothing_strength: 0.65\n"
    (release,) = load_spec(_spec(tmp_path, body)).releases
    assert _modifiers(release.recipe())["SmoothQuantModifier"] == {"smoothing_strength": 0.65}


def test_awq_recipe_balances_then_rounds_to_nearest(tmp_path: Path) -> None:
    (release,) = load_spec(_spec(tmp_path, "scheme: W4A16_ASYM\nalgorithm: awq\ngroup_size: 64\n")).releases
    modifiers = _modifiers(release.recipe())
    assert list(modifiers) == ["AWQModifier", "QuantizationModifier"]
    assert modifiers["AWQModifier"] == {"duo_scaling": True, "n_grid": 20}
    weights = modifiers["QuantizationModifier"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["symmetric"], weights["group_size"]) == (4, False, 64)


def test_llm_compressor_reads_the_recipes_modifiers_in_order_with_their_arguments() -> None:
    from llmcompressor.modifiers.transform import AWQModifier, SmoothQuantModifier
    from llmcompressor.recipe import Recipe

    smoothquant = SCHEMES["W8A8"].recipe(
        algorithm="smoothquant+gptq", targets=["Linear"], ignore=["lm_head"], smoothing_strength=0.7
    )
    modifiers = Recipe.create_instance(yaml.safe_dump(smoothquant, sort_keys=False)).modifiers
    assert [type(modifier).__name__ for modifier in modifiers] == ["SmoothQuantModifier", "GPTQModifier"]
    assert isinstance(modifiers[0], SmoothQuantModifier) and modifiers[0].smoothing_strength == 0.7

    awq = SCHEMES["W4A16"].recipe(algorithm="awq", targets=["Linear"], ignore=["lm_head"], group_size=64)
    modifiers = Recipe.create_instance(yaml.safe_dump(awq, sort_keys=False)).modifiers
    assert [type(modifier).__name__ for modifier in modifiers] == ["AWQModifier", "QuantizationModifier"]
    assert isinstance(modifiers[0], AWQModifier)
    # The arguments written out are the library's own defaults.
    for name, value in AWQ_ARGUMENTS.items():
        assert AWQModifier.model_fields[name].default == value, name


def test_llm_compressors_saved_recipe_is_rewritten_so_llm_compressor_can_read_it(tmp_path: Path) -> None:
    """The recipe.yaml llm-compressor 0.14 saved beside a SmoothQuant+GPTQ checkpoint (a real one, kept as a
    fixture) holds Python tags that its own yaml.safe_load refuses; the quantize stage rewrites it in plain YAML."""
    from llmcompressor.recipe import Recipe

    from hubpub.stages.quantize import plain_recipe

    saved = tmp_path / "recipe.yaml"
    saved.write_text((Path(__file__).parent / "fixtures" / "llmcompressor-smoothquant-gptq-recipe.yaml").read_text())
    with pytest.raises(yaml.constructor.ConstructorError, match="python/tuple"):
        Recipe.create_instance(str(saved))

    plain_recipe(saved)

    assert "!!python" not in saved.read_text(encoding="utf-8")
    smoothquant, gptq = Recipe.create_instance(str(saved)).modifiers
    assert smoothquant.smoothing_strength == 0.8
    assert [list(mapping) for mapping in smoothquant.mappings] == [
        [["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"], "re:.*input_layernorm"],
        [["re:.*gate_proj", "re:.*up_proj"], "re:.*post_attention_layernorm"],
    ]
    assert gptq.actorder == "static"
    assert gptq.config_groups["group_0"].weights.actorder == "static"
