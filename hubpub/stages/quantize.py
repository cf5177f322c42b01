"""Quantize stage: llm-compressor `oneshot` with the recipe built from the scheme registry."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from hubpub.checkpoint import BASE_ARTIFACTS
from hubpub.errors import StageError
from hubpub.stages.context import StageContext, StageOutput

logger = logging.getLogger(__name__)


def run(ctx: StageContext) -> StageOutput:
    """Quantize the base and save the compressed checkpoint with the base's tokenizer and templates."""
    import torch
    import yaml
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not logger.isEnabledFor(logging.DEBUG):
        # llm-compressor logs through loguru to stdout; its LLM_COMPRESSOR_LOG_DISABLED switch would
        # also skip registering the METRIC level that GPTQ logs with, and GPTQ would fail.
        from loguru import logger as compressor_log

        compressor_log.disable("llmcompressor")
        compressor_log.disable("compressed_tensors")

    release = ctx.release
    base_dir = ctx.output_of("resolve", "base_dir")
    checkpoint = ctx.output_dir / "checkpoint"
    device = _device_label(torch)
    logger.info("quantizing %s as %s (%s) on %s", release.base_model, release.scheme, release.algorithm, device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    # Loaded on the CPU: with CUDA present, llm-compressor onloads one layer at a time to the GPU,
    # so models larger than GPU memory still quantize.
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    arguments: dict[str, Any] = {}
    calibration_facts: dict[str, Any] | None = None
    if release.calibration is not None and release.scheme_info.needs_calibration(release.algorithm):
        from hubpub.calibration import build_dataset

        dataset, calibration_facts = build_dataset(release.calibration, tokenizer)
        arguments = {
            "dataset": dataset,
            "num_calibration_samples": calibration_facts["samples"],
            "max_seq_length": release.calibration.max_seq_length,
            "shuffle_calibration_samples": False,
        }
    try:
        oneshot(model=model, recipe=yaml.safe_dump(release.recipe(), sort_keys=False), **arguments)
    except Exception as exc:
        raise StageError(f"llm-compressor failed to quantize {release.base_model} as {release.scheme}: {exc}") from exc
    model.save_pretrained(checkpoint, save_compressed=True)
    copied = _copy_base_artifacts(base_dir, checkpoint)
    if not (checkpoint / "recipe.yaml").is_file():
        (checkpoint / "recipe.yaml").write_text(yaml.safe_dump(release.recipe(), sort_keys=False), encoding="utf-8")
    return StageOutput(
        metrics={
            "device": device,
            "calibration": calibration_facts,
            "checkpoint_bytes": sum(path.stat().st_size for path in checkpoint.rglob("*") if path.is_file()),
            "base_artifacts_copied": copied,
        },
        outputs={"checkpoint": str(checkpoint)},
    )


def _device_label(torch: Any) -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def _copy_base_artifacts(base_dir: Path, checkpoint: Path) -> list[str]:
    copied = []
    for name in BASE_ARTIFACTS:
        source = base_dir / name
        if source.is_file():
            shutil.copyfile(source, checkpoint / name)
            copied.append(name)
    return copied
