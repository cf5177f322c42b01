"""Preflight stage: check the scheme and algorithm against the base's shapes before any expensive work.

Everything comes from config.json and the safetensors headers; no weight is loaded, and it
runs before the calibration data is read.
"""

from __future__ import annotations

from hubpub.checkpoint import (
    LinearLayer,
    linear_layers,
    read_config,
    read_tensors,
    safetensors_files,
    selected_for_quantization,
    text_config,
    ties_embeddings,
)
from hubpub.errors import PreflightError
from hubpub.mappings import mapping_problem
from hubpub.stages.context import StageContext, StageOutput

FUSED_SHARDS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
_CANDIDATE_GROUP_SIZES = (128, 64, 32, 16)
_LISTED = 6


def run(ctx: StageContext) -> StageOutput:
    """Check group size, tied embeddings, fused-layer ignores and the layer mappings SmoothQuant and AWQ need;
    report the layers that will be quantized."""
    base_dir = ctx.output_of("resolve", "base_dir")
    config = read_config(base_dir)
    tensors = read_tensors(base_dir)
    layers = linear_layers(tensors, config)
    release = ctx.release
    quantized = [layer for layer in layers if selected_for_quantization(layer.name, release.targets, release.ignore)]
    ignored = sorted(layer.name for layer in layers if layer not in quantized)
    architecture = (config.get("architectures") or ["unknown"])[0]
    problems = _fused_problems(layers, quantized) + _tied_problems(config, quantized)
    modules = {name.rpartition(".")[0] for name in tensors}
    mapping = mapping_problem(release.algorithm, architecture, modules)
    if mapping is not None:
        problems.append(mapping)
    group_size = release.effective_group_size if release.scheme_info.uses_groups else None
    if group_size:
        problems += _group_problems(quantized, group_size)
    if problems:
        raise PreflightError(
            f"{ctx.spec_path} ({release.variant}): preflight failed for {base_dir}:\n- " + "\n- ".join(problems)
        )
    return StageOutput(
        metrics={
            "architecture": architecture,
            "hidden_size": text_config(config).get("hidden_size"),
            "tie_word_embeddings": ties_embeddings(config),
            "parameters": sum(tensor.numel for tensor in tensors.values()),
            "checkpoint_bytes": sum(path.stat().st_size for path in safetensors_files(base_dir)),
            "linear_layers": len(layers),
            "quantized_layers": len(quantized),
            "unquantized_layers": ignored,
            "group_size": group_size,
        }
    )


def _fused_problems(layers: list[LinearLayer], quantized: list[LinearLayer]) -> list[str]:
    quantized_names = {layer.name for layer in quantized}
    by_name = {layer.name for layer in layers}
    problems = []
    for shards in FUSED_SHARDS:
        for name in sorted(by_name):
            parent, _, leaf = name.rpartition(".")
            if leaf != shards[0]:
                continue
            members = [f"{parent}.{shard}" for shard in shards if f"{parent}.{shard}" in by_name]
            statuses = {member in quantized_names for member in members}
            if len(statuses) > 1:
                kept = [member for member in members if member not in quantized_names]
                problems.append(
                    f"{', '.join(members)} are fused into one layer by inference engines, but only"
                    f" {', '.join(kept)} is ignored: ignore all of them or none"
                )
    return problems


def _tied_problems(config: dict[str, object], quantized: list[LinearLayer]) -> list[str]:
    if ties_embeddings(config) and any(layer.name.endswith("lm_head") for layer in quantized):
        return [
            "lm_head shares its weights with the input embeddings (tie_word_embeddings is true) and cannot be"
            " quantized on its own: add lm_head to ignore"
        ]
    return []


def _group_problems(quantized: list[LinearLayer], group_size: int) -> list[str]:
    offenders = [layer for layer in quantized if layer.in_features % group_size]
    if not offenders:
        return []
    widths = sorted({layer.in_features for layer in offenders})
    listed = ", ".join(f"{layer.name} ({layer.in_features})" for layer in offenders[:_LISTED])
    more = f" and {len(offenders) - _LISTED} more" if len(offenders) > _LISTED else ""
    fitting = next(
        (size for size in _CANDIDATE_GROUP_SIZES if all(layer.in_features % size == 0 for layer in quantized)), None
    )
    fix = f"use group_size {fitting}, or " if fitting else ""
    return [
        f"group_size {group_size} does not divide the input size ({', '.join(map(str, widths))}) of"
        f" {len(offenders)} layers: {listed}{more}. Fix: {fix}ignore these {len(offenders)} layers"
    ]
