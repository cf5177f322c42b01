"""§4 of the rules for the layers vLLM does not build as plain Linear layers: lm_head, embeddings, MoE experts.

- lm_head (`ParallelLMHead`) is quantized only when a target names it; the class target `Linear` misses it.
- A quantized embedding is lookup-only and accepted only in the WNA16 shape; tied embeddings must stay unquantized.
- The experts of one MoE layer must share one scheme; their kernels are not predicted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubpub.checkpoint import ties_embeddings
from hubpub.vllm import rules
from hubpub.vllm.config import ConfigGroup
from hubpub.vllm.findings import VLLM, Findings
from hubpub.vllm.layers import Layer, LayerCheck, Match, Module, Resolution, check_storage, is_ignored, match_target
from hubpub.vllm.schemes import row_named
from hubpub.vllm.shapes import tensor_problems


@dataclass
class LayerFindings:
    """Problems (with `{layer}` placeholders, per layer) and notes from one rule over every layer it covers."""

    problems: Findings = field(default_factory=Findings)
    notes: list[str] = field(default_factory=list)


def tied_embedding_problem(config: Mapping[str, Any], modules: Mapping[str, Module]) -> str | None:
    """vLLM ties lm_head to the embedding, whose quantized form is lookup-only: neither may be quantized."""
    if not ties_embeddings(dict(config)):
        return None
    quantized = [
        module.quantized_tensor()
        for module in modules.values()
        if module.role in ("lm_head", "embedding") and module.quantized
    ]
    if not quantized:
        return None
    return (
        f"tie_word_embeddings is true but the checkpoint has quantized {', '.join(quantized)}: vLLM ties"
        " lm_head to the embedding, whose quantized form is lookup-only; add lm_head and the embeddings"
        " to ignore, or untie them and set tie_word_embeddings to false"
    )


def check_lm_head(layer: Layer, match: Match | None, ignored: bool, targets: list[str]) -> LayerCheck:
    """vLLM quantizes lm_head only when a target names it: its ParallelLMHead is no `Linear`.

    `targets` are every config group's targets as written (what llm-compressor matched lm_head against).
    """
    module = layer.shards[0]
    if match is not None and match.group.weights is not None and module.quantized:
        return LayerCheck(
            True,
            warning=(
                f"{layer.name} is quantized (targeted by name through {match.target!r}): {VLLM} supports it through"
                " the linear path, but it is the least-tested one; prefer ignore: ['lm_head']"
            ),
        )
    class_target = next(
        (
            target
            for target in targets
            if not target.startswith(rules.REGEX_PREFIX) and target.lower() in rules.HF_LINEAR_CLASS.lower()
        ),
        None,
    )
    if match is None and module.quantized and class_target is not None and not ignored:
        return LayerCheck(
            False,
            warning=(
                f"{layer.name} has quantized tensors ({module.quantized_tensor()}) only through the class target"
                f" {class_target!r}: vLLM's ParallelLMHead is not a Linear, so it expects an unquantized lm_head"
                " and loading fails or the output is garbage; add lm_head to ignore, or target it by name"
            ),
        )
    return check_storage(layer, match, ignored)


def check_experts(modules: Mapping[str, Module], groups: list[ConfigGroup], ignore: list[str]) -> LayerFindings:
    """vLLM's MoE methods need one scheme for every expert of a layer; their kernels are not predicted."""
    findings = LayerFindings()
    experts: dict[str, set[Any]] = {}
    for module in modules.values():
        if module.role != "expert":
            continue
        parts = module.name.split(".")
        owner = ".".join(parts[: parts.index(rules.EXPERTS_PART) + 1])
        ignored = is_ignored(module.name, ignore)
        match = None if ignored else match_target(module.name, rules.VLLM_LAYER_CLASSES["expert"], groups)
        experts.setdefault(owner, set()).add(None if match is None else match.group.scheme_key)
    for owner, keys in experts.items():
        if len(keys) > 1:
            findings.problems.add(
                "{layer}: the MoE experts do not share one quantization scheme; vLLM requires every expert of a"
                " layer to use the same scheme dict (ValueError)",
                owner,
            )
    if experts:
        findings.notes.append(
            f"{len(experts)} MoE expert block(s) were only checked for one shared scheme: vLLM's MoE methods and"
            " kernels are not predicted here"
        )
    return findings


def check_embeddings(resolutions: list[Resolution]) -> LayerFindings:
    """A quantized embedding is lookup-only and accepted only in the WNA16 shape."""
    findings = LayerFindings()
    for resolution in resolutions:
        layer, match = resolution.layer, resolution.match
        if layer.role != "embedding" or not resolution.consistent or match is None:
            continue
        group = match.group
        if group.weights is None or not group.usable:
            continue
        wna16_style = (
            group.weights.fits(rules.EMBEDDING_WEIGHTS)
            and group.input_activations is None
            and group.format == rules.EMBEDDING_FORMAT
        )
        if not wna16_style:
            findings.problems.add(
                f"{{layer}}: a quantized embedding must be INT weight-only (channel or group, 2-8 bit,"
                f" {rules.EMBEDDING_FORMAT}); config group {group.name!r} ({group.describe()}) makes {VLLM}"
                " raise ValueError; add the embedding to ignore",
                layer.name,
            )
            continue
        for problem in tensor_problems(layer.shards[0], row_named("CompressedTensorsWNA16"), group):
            findings.problems.add(problem, layer.name)
        findings.notes.append(
            f"{layer.name} is quantized: {VLLM} uses it for lookup only (it cannot act as a tied lm_head)"
        )
    return findings
