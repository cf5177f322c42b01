"""Quantize stage: llm-compressor `oneshot` with the recipe built from the scheme registry, in a child process."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from hubpub.checkpoint import BASE_ARTIFACTS
from hubpub.stages._child import run_child
from hubpub.stages.context import StageContext, StageOutput

logger = logging.getLogger(__name__)

CHILD_TIMEOUT_SECONDS = 48 * 3600
_CHILD = "hubpub.stages._quantize_child"


def run(ctx: StageContext) -> StageOutput:
    """Quantize the base and save the compressed checkpoint with the base's tokenizer and templates."""
    release = ctx.release
    base_dir = ctx.output_of("resolve", "base_dir")
    checkpoint = ctx.output_dir / "checkpoint"
    calibrated = release.calibration is not None and release.scheme_info.needs_calibration(release.algorithm)
    logger.info("quantizing %s as %s (%s)", release.base_model, release.scheme, release.algorithm)
    request: dict[str, Any] = {
        "base_dir": str(base_dir),
        "checkpoint": str(checkpoint),
        "recipe": release.recipe(),
        "calibration": release.calibration.model_dump(mode="json") if calibrated and release.calibration else None,
        "what": f"{release.base_model} as {release.scheme}",
        "quiet": not logger.isEnabledFor(logging.DEBUG),
        "placement": ctx.placement.as_request(),
        "cpu_run": release.runner is not None and release.runner.cpu_run,
    }
    child = run_child(
        _CHILD,
        request,
        ctx.output_dir,
        "quantize",
        what="quantizing with llm-compressor",
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    logger.debug("quantized on %s", child["device"])
    copied = _copy_base_artifacts(base_dir, checkpoint)
    if not (checkpoint / "recipe.yaml").is_file():
        (checkpoint / "recipe.yaml").write_text(yaml.safe_dump(release.recipe(), sort_keys=False), encoding="utf-8")
    return StageOutput(
        metrics={
            "device": child["device"],
            "calibration": child["calibration"],
            "checkpoint_bytes": sum(path.stat().st_size for path in checkpoint.rglob("*") if path.is_file()),
            "base_artifacts_copied": copied,
        },
        outputs={"checkpoint": str(checkpoint)},
    )


def _copy_base_artifacts(base_dir: Path, checkpoint: Path) -> list[str]:
    copied = []
    for name in BASE_ARTIFACTS:
        source = base_dir / name
        if source.is_file():
            shutil.copyfile(source, checkpoint / name)
            copied.append(name)
    return copied
