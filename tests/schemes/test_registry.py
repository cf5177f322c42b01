from __future__ import annotations

import pytest

from hubpub.schemes import SCHEMES, get_scheme

REQUIRED = {"W4A16", "W4A16_ASYM", "W8A16", "W8A8", "FP8_DYNAMIC"}


def test_registry_has_the_required_schemes() -> None:
    assert set(SCHEMES) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_facts_are_complete(name: str) -> None:
    scheme = SCHEMES[name]
    assert scheme.summary and scheme.memory_saving and scheme.compute and scheme.best_for
    assert scheme.weight_bits in (4, 8)
    assert scheme.activation_bits in (8, 16)


def test_seed_comparison_facts() -> None:
    w4, w8a8 = SCHEMES["W4A16"], SCHEMES["W8A8"]
    assert (w4.weight_bits, w4.activation_bits, w4.memory_saving) == (4, 16, "~4x")
    assert (w8a8.weight_bits, w8a8.activation_bits, w8a8.memory_saving) == (8, 8, "~2x")
    assert "INT8" in w8a8.compute


def test_recipe_uses_group_size_override_and_modifier_per_algorithm() -> None:
    recipe = SCHEMES["W4A16_ASYM"].recipe(algorithm="gptq", targets=["Linear"], ignore=["lm_head"], group_size=64)
    modifier = recipe["quant_stage"]["quant_modifiers"]["GPTQModifier"]
    assert modifier["ignore"] == ["lm_head"]
    assert modifier["config_groups"]["group_0"]["weights"] == {
        "num_bits": 4,
        "type": "int",
        "strategy": "group",
        "symmetric": False,
        "dynamic": False,
        "group_size": 64,
    }
    assert "input_activations" not in modifier["config_groups"]["group_0"]


def test_default_group_size_when_not_overridden() -> None:
    recipe = SCHEMES["W4A16"].recipe(algorithm="rtn", targets=["Linear"], ignore=[])
    weights = recipe["quant_stage"]["quant_modifiers"]["QuantizationModifier"]["config_groups"]["group_0"]["weights"]
    assert weights["group_size"] == 128


def test_calibration_needs() -> None:
    assert not SCHEMES["W4A16"].needs_calibration("rtn")
    assert SCHEMES["W4A16"].needs_calibration("gptq")
    assert not SCHEMES["FP8_DYNAMIC"].needs_calibration("rtn")


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(KeyError, match="did you mean 'W8A8'"):
        get_scheme("w8a8x")


def test_registry_matches_compressed_tensors_presets() -> None:
    """Our explicit arguments must equal the library's presets, apart from our group-size override."""
    preset = pytest.importorskip("compressed_tensors.quantization.quant_scheme")
    for name, scheme in SCHEMES.items():
        library = preset.PRESET_SCHEMES[name]
        ours = scheme.recipe(algorithm="rtn", targets=["Linear"], ignore=[])
        group = ours["quant_stage"]["quant_modifiers"]["QuantizationModifier"]["config_groups"]["group_0"]
        for kind in ("weights", "input_activations"):
            expected = library.get(kind)
            if expected is None:
                assert kind not in group, name
                continue
            for key, value in group[kind].items():
                if key == "group_size" and scheme.uses_groups:
                    assert expected.group_size == scheme.default_group_size, name
                    continue
                library_value = getattr(expected, key)
                assert getattr(library_value, "value", library_value) == value, (name, kind, key)
