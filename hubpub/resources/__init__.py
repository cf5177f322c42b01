"""The resource plan: what each stage of a release needs, from the base's config alone, and where it runs.

`release_resources` is the entry: it reads the base's config (a local folder, a GGUF header, or
config.json alone from the Hub), sizes the model, and checks every stage against a machine, declared
in the spec's `runner:` or detected here. Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hubpub.resources.plan import ResourcePlan, StagePlan, plan_resources, unestimable
from hubpub.resources.runner import Machine, declared_machine, detect_machine
from hubpub.resources.shape import ModelShape, UnknownShape, config_from_gguf, shape_from_config
from hubpub.spec import ReleaseSpec

if TYPE_CHECKING:
    from hubpub.hubclient import SourceHub

__all__ = [
    "Machine",
    "ModelShape",
    "ResourcePlan",
    "StagePlan",
    "UnknownShape",
    "base_config",
    "base_shape",
    "declared_machine",
    "detect_machine",
    "plan_resources",
    "release_resources",
    "runner_machine",
    "shape_from_config",
    "with_base_shapes",
]

Item = TypeVar("Item")


def base_config(release: ReleaseSpec, hub: SourceHub | None = None) -> dict[str, Any]:
    """The base's config.json as a dict, without any weight: from the local folder, the GGUF header, or
    config.json alone from the Hub (`hub`, else the environment's) at the pinned revision. Raises UnknownShape
    when it cannot be read."""
    source = release.source
    try:
        if source is not None and source.gguf_file:
            return config_from_gguf(source.path / source.gguf_file)
        if source is not None:
            path = source.path / "config.json"
        else:
            path = _hub_config(release.base_model, release.base_revision, hub)
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnknownShape:
        raise
    except Exception as exc:  # any failure to read it means "cannot estimate", never a crash
        raise UnknownShape(f"could not read the base's config: {type(exc).__name__}: {exc}") from None
    if not isinstance(config, dict):
        raise UnknownShape("the base's config.json is not a JSON object")
    return config


def _hub_config(repo_id: str, revision: str | None, hub: SourceHub | None) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

    from hubpub.hubclient import source_hub

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    source = hub or source_hub()
    # One plain HEAD first: hf_hub_download retries an unreachable Hub for about 25 s before giving up.
    url = hf_hub_url(repo_id, "config.json", revision=revision, endpoint=source.endpoint)
    get_hf_file_metadata(url, token=source.token, timeout=10)
    return Path(
        hf_hub_download(repo_id, "config.json", revision=revision, endpoint=source.endpoint, token=source.token)
    )


def runner_machine(release: ReleaseSpec, workdir: Path) -> Machine:
    """The spec's declared runner, or this machine when the spec declares none."""
    if release.runner is not None:
        return declared_machine(release.runner)
    return detect_machine(workdir)


def base_shape(release: ReleaseSpec, hub: SourceHub | None = None) -> ModelShape | str:
    """The base model's shape from its config, or why the plan cannot size it."""
    try:
        return shape_from_config(base_config(release, hub))
    except UnknownShape as exc:
        return str(exc)


def with_base_shapes(
    items: Iterable[tuple[Item, ReleaseSpec]], hub: SourceHub | None = None
) -> Iterator[tuple[Item, ReleaseSpec, ModelShape | str, bool]]:
    """Each item with its release's base shape (read once per base, from `hub` or the environment's Hub) and
    whether it is the first variant of that base in the run (the one that converts it and measures its
    perplexity)."""
    shapes: dict[tuple[Any, ...], ModelShape | str] = {}
    for item, release in items:
        key = (release.base_model, release.base_revision, release.source)
        first_of_base = key not in shapes
        if first_of_base:
            shapes[key] = base_shape(release, hub)
        yield item, release, shapes[key], first_of_base


def release_resources(
    release: ReleaseSpec, machine: Machine, shape: ModelShape | str, *, first_of_base: bool = True
) -> ResourcePlan:
    """The resource plan of `release` on `machine`; unestimable, with the reason, when `shape` is one.

    `first_of_base` is false for a variant whose base an earlier variant of the same run released.
    """
    if isinstance(shape, str):
        return unestimable(release, machine, shape)
    return plan_resources(release, shape, machine, first_of_base=first_of_base)
