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
    recipe_file = checkpoint / "recipe.yaml"
    if recipe_file.is_file():
        plain_recipe(recipe_file)
    else:
        recipe_file.write_text(yaml.safe_dump(release.recipe(), sort_keys=False), encoding="utf-8")
    return StageOutput(
        metrics={
            "device": child["device"],
            "calibration": child["calibration"],
            "checkpoint_bytes": sum(path.stat().st_size for path in checkpoint.rglob("*") if path.is_file()),
            "base_artifacts_copied": copied,
        },
        outputs={"checkpoint": str(checkpoint)},
    )


class _PythonTagLoader(yaml.SafeLoader):
    """Reads the two Python tags llm-compressor 0.14 writes into a saved recipe: SmoothQuant's mappings as
    `!!python/tuple` and GPTQ's `actorder` as `!!python/object/apply:...ActivationOrdering [static]`."""


def _tuple(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> list[Any]:
    return loader.construct_sequence(node, deep=True)


def _enum(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    arguments = loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else []
    if len(arguments) != 1:
        problem = f"cannot read python/object/apply:{suffix}"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    return arguments[0]


_PythonTagLoader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)
_PythonTagLoader.add_multi_constructor("tag:yaml.org,2002:python/object/apply:", _enum)


def plain_recipe(path: Path) -> None:
    """Rewrite llm-compressor's saved recipe in plain YAML: its own loader (yaml.safe_load) refuses the Python
    tags it writes, so the published recipe.yaml could not be applied again as the card says."""
    text = path.read_text(encoding="utf-8")
    if "!!python/" in text:
        recipe = yaml.load(text, Loader=_PythonTagLoader)
        path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")


def _copy_base_artifacts(base_dir: Path, checkpoint: Path) -> list[str]:
    copied = []
    for name in BASE_ARTIFACTS:
        source = base_dir / name
        if source.is_file():
            shutil.copyfile(source, checkpoint / name)
            copied.append(name)
    return copied
