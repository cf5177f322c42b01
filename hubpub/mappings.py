"""The layer mappings SmoothQuant and AWQ need: which norm or projection each scales, and which layers balance it.

llm-compressor picks them by the model's class name from its registries, and falls back to generic defaults
for any other architecture, silently skipping a mapping whose layers the model lacks: a model with none of the
default names is then quantized without any smoothing at all. The preflight refuses that case up front. The
data below was read from llm-compressor 0.14.0.1 (modifiers/transform/awq/mappings.py and dynamic_mappings.py,
modifiers/transform/smoothquant/utils.py and dynamic_mappings.py); a test compares it with the installed library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LLMCOMPRESSOR_VERSION = "0.14.0.1"


@dataclass(frozen=True)
class LayerMapping:
    """One smoothing: the layer whose output is scaled (`smooth`) and the layers fed by it (`balance`), as
    llm-compressor's `re:` patterns matched from the start of module names."""

    smooth: str
    balance: tuple[str, ...]

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.smooth, *self.balance)


_SHARED = frozenset(
    {
        "AfmoeForCausalLM",
        "BloomForCausalLM",
        "Cohere2ForCausalLM",
        "Cohere2MoeForCausalLM",
        "Cohere2VisionForConditionalGeneration",
        "CohereForCausalLM",
        "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM",
        "Ernie4_5_MoeForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "Gemma3ForConditionalGeneration",
        "Glm4MoeForCausalLM",
        "Glm4MoeLiteForCausalLM",
        "GlmMoeDsaForCausalLM",
        "GraniteForCausalLM",
        "Llama4ForConditionalGeneration",
        "LlamaForCausalLM",
        "Mistral3ForConditionalGeneration",
        "MistralForCausalLM",
        "NanbeigeForCausalLM",
        "Phi3ForCausalLM",
        "Phi3VForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen2MoeForCausalLM",
        "Qwen2_5OmniModel",
        "Qwen2_5OmniThinkerForConditionalGeneration",
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
        "Qwen3_5ForCausalLM",
        "Qwen3_5ForConditionalGeneration",
        "Qwen3_5MoeForCausalLM",
        "Qwen3_5MoeForConditionalGeneration",
        "SeedOssForCausalLM",
    }
)

ARCHITECTURES: dict[str, frozenset[str]] = {
    "awq": _SHARED
    | {
        "Exaone4ForCausalLM",
        "MuseGlimmerForConditionalGeneration",
        "Olmo3ForCausalLM",
        "OlmoForCausalLM",
        "Qwen3NextForCausalLM",
        "Step3p5ForCausalLM",
    },
    "smoothquant+gptq": _SHARED
    | {"ChatGLMForConditionalGeneration", "MixtralForCausalLM", "WhisperForConditionalGeneration"},
}
"""The architectures each algorithm has its own mappings for (static and dynamic registries)."""

DEFAULTS: dict[str, tuple[LayerMapping, ...]] = {
    "awq": (
        LayerMapping("re:.*input_layernorm$", ("re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$")),
        LayerMapping("re:.*v_proj$", ("re:.*o_proj$",)),
        LayerMapping("re:.*post_attention_layernorm$", ("re:.*gate_proj$", "re:.*up_proj$")),
        LayerMapping("re:.*up_proj$", ("re:.*down_proj$",)),
    ),
    "smoothquant+gptq": (
        LayerMapping("re:.*input_layernorm", ("re:.*q_proj", "re:.*k_proj", "re:.*v_proj")),
        LayerMapping("re:.*post_attention_layernorm", ("re:.*gate_proj", "re:.*up_proj")),
    ),
}
"""The mappings llm-compressor falls back to for an architecture it has none for."""

_NAMES = {"awq": "AWQ", "smoothquant+gptq": "SmoothQuant"}


def needs_mappings(algorithm: str) -> bool:
    return algorithm in ARCHITECTURES


def mapping_problem(algorithm: str, architecture: str, modules: Iterable[str]) -> str | None:
    """Why `algorithm` cannot smooth a model of `architecture` whose modules are `modules`; None when it can:
    the architecture has its own mappings, or every pattern of the default mappings names a module."""
    if not needs_mappings(algorithm) or architecture in ARCHITECTURES[algorithm]:
        return None
    names = list(modules)
    missing = [
        pattern
        for mapping in DEFAULTS[algorithm]
        for pattern in mapping.patterns
        if not any(re.match(pattern.removeprefix("re:"), name) for name in names)
    ]
    if not missing:
        return None
    missing = list(dict.fromkeys(missing))
    label = _NAMES[algorithm]
    return (
        f"algorithm {algorithm}: llm-compressor {LLMCOMPRESSOR_VERSION} has no {label} layer mappings for"
        f" {architecture}, and its default mappings do not fit this model: no module matches"
        f" {', '.join(pattern.removeprefix('re:') for pattern in missing)}. {label} would skip those layers"
        " and leave the model unsmoothed. Fix: use algorithm gptq or rtn, or a base of an architecture with"
        f" {label} mappings (e.g. LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM)"
    )
