"""The family as a Hub collection: the base model first, then each published variant with a note of its facts.

The facts come from each variant's manifest as published on the Hub (so a release of one variant, a
push and `republish --card-only` all see the same family), never from the local cache. Items are
added once and kept in the spec's order; a note is rewritten only when the facts changed, so a
second identical release makes no call that writes. A variant gone from the spec is reported, and
its item deleted only with `collection.prune`; items hubpub did not put there are left alone.

Privacy is decided per repo, from the repo's own setting on the Hub (a variant's `push.private` only
applies when its repo is created): a private repo never goes into a public collection, nor into a
private one of another namespace; it is reported, and removed when the collection already holds it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubpub.hubclient import HubTarget, client
from hubpub.manifest import MANIFEST_NAME, Manifest
from hubpub.schemes import SCHEMES
from hubpub.spec import COLLECTION_DESCRIPTION_MAX, ReleaseSpec
from hubpub.stages.card import human_bytes

logger = logging.getLogger(__name__)

NOTE_MAX = 500
"""huggingface_hub's documented limit for an item's note."""


@dataclass
class CollectionSync:
    """What syncing a family's collection did; `status` is created, updated, unchanged or failed (with `reason`)."""

    family: str
    status: str
    slug: str | None = None
    url: str | None = None
    added: list[str] = field(default_factory=list)
    renoted: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    not_in_spec: list[str] = field(default_factory=list)
    """Variants of this family that the collection holds but the spec no longer names."""
    pruned: list[str] = field(default_factory=list)
    base: str = ""
    """added, present, left out (a private base: see `left_out`), or why the base model is not in the collection."""
    described: bool = False
    """Whether the description was rewritten (a collection hubpub made describes the family's schemes)."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Repos of the family kept out of the collection, and why (a private repo, a public collection)."""
    withdrawn: list[str] = field(default_factory=list)
    """Of those, the ones the collection held: their items were deleted."""
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_collection(target: HubTarget, releases: Sequence[ReleaseSpec]) -> CollectionSync | None:
    """Create or update the collection of the family `releases` (a spec file's variants, in order).

    None when the family keeps no collection. Failures are returned (status `failed`) and logged, not
    raised: the releases themselves are published by then.
    """
    settings = releases[0].family_collection if releases else None
    family = releases[0].family if releases else None
    if settings is None or family is None:
        return None
    result = CollectionSync(family=family, status="unchanged")
    try:
        _sync(client(target), releases, result)
    except Exception as exc:
        result.status, result.reason = "failed", target.scrub(f"{type(exc).__name__}: {exc}")
        logger.warning("the collection of family %s was not brought up to date: %s", family, result.reason)
        return result
    _log(result)
    return result


def _sync(api: Any, releases: Sequence[ReleaseSpec], result: CollectionSync) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    first = releases[0]
    settings = first.family_collection
    assert settings is not None and first.family is not None
    manifests = _published_manifests(api, releases)
    description = settings.description or _description(first, releases)
    if settings.slug is not None:
        collection = api.get_collection(settings.slug)
    else:
        collection = _find_or_create(api, settings.title or first.family, first, description, settings.private, result)
    result.slug, result.url = collection.slug, collection.url
    if settings.slug is None and result.status != "created" and collection.description != description:
        api.update_collection_metadata(collection.slug, description=description)
        result.status, result.described = "updated", True

    present = {(item.item_type, item.item_id): item for item in collection.items}
    spec_repos = {first.base_model, *(release.repo_id for release in releases)}
    for repo_id in dict.fromkeys([first.base_model, *(release.repo_id for release in releases)]):
        if repo_id in manifests or ("model", repo_id) in present or repo_id == first.base_model:
            _keep_private_out(api, collection, repo_id, present.get(("model", repo_id)), result)
    if result.withdrawn:
        collection = api.get_collection(collection.slug)
        present = {(item.item_type, item.item_id): item for item in collection.items}

    wanted: list[tuple[str, str | None]] = []
    if first.base_model in result.left_out:
        result.base = "left out"
    elif ("model", first.base_model) in present:
        result.base = "present"
        wanted.append((first.base_model, None))
    elif api.repo_exists(first.base_model):
        result.base = "added"
        wanted.append((first.base_model, _base_note(manifests)))
    else:
        result.base = f"{first.base_model} is not on this Hub, so the collection does not list it"
    wanted.extend(
        (release.repo_id, _note(manifests[release.repo_id]))
        for release in releases
        if release.repo_id in manifests and release.repo_id not in result.left_out
    )

    for repo_id, note in wanted:
        item = present.get(("model", repo_id))
        if item is None:
            collection = api.add_collection_item(collection.slug, repo_id, "model", note=note)
            result.added.append(repo_id)
        elif note is not None and item.note != note:
            api.update_collection_item(collection.slug, item.item_object_id, note=note)
            result.renoted.append(repo_id)
    if result.added or result.renoted:
        collection = api.get_collection(collection.slug)

    result.moved = _reorder(api, collection, [first.base_model, *(release.repo_id for release in releases)])
    for item in collection.items:
        if item.item_type != "model" or item.item_id in spec_repos:
            continue
        try:
            theirs = _manifest(api, item.item_id)
        except HfHubHTTPError:
            continue
        if theirs is None or theirs.family != first.family:
            continue
        if _keep_private_out(api, collection, item.item_id, item, result):
            continue
        result.not_in_spec.append(item.item_id)
        if settings.prune:
            api.delete_collection_item(collection.slug, item.item_object_id)
            result.pruned.append(item.item_id)
    changed = result.added or result.renoted or result.moved or result.pruned or result.withdrawn
    if result.status == "unchanged" and changed:
        result.status = "updated"


def _keep_private_out(api: Any, collection: Any, repo_id: str, item: Any, result: CollectionSync) -> bool:
    """Whether `repo_id` must stay out of `collection` (then it is reported, and its `item` deleted if any).

    The repo's own privacy on the Hub decides: a private repo may be listed only by a private collection of
    its own namespace, whose readers may read the repo too.
    """
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        private = api.repo_info(repo_id).private is not False  # a Hub that does not say is taken as private
    except RepositoryNotFoundError:
        return False
    if not private:
        return False
    namespace = collection.slug.split("/")[0]
    if not collection.private:
        result.left_out[repo_id] = "private, and the collection is public"
    elif repo_id.split("/")[0].lower() != namespace.lower():
        result.left_out[repo_id] = f"private, and the collection is of another namespace ({namespace})"
    else:
        return False
    if item is not None:
        api.delete_collection_item(collection.slug, item.item_object_id)
        result.withdrawn.append(repo_id)
    return True


def _find_or_create(
    api: Any, title: str, first: ReleaseSpec, description: str, private: bool, result: CollectionSync
) -> Any:
    """The namespace's collection with this title, or a new one (in the namespace of the first variant's repo)."""
    namespace = first.repo_id.split("/")[0]
    for listed in api.list_collections(owner=namespace):
        if listed.title == title:
            return api.get_collection(listed.slug)
    result.status = "created"
    return api.create_collection(title, namespace=namespace, description=description, private=private, exists_ok=True)


def _reorder(api: Any, collection: Any, order: list[str]) -> list[str]:
    """Put the family's items in `order` within the places they already hold; the others stay where they are."""
    items = list(collection.items)
    ours = [item for item in items if item.item_type == "model" and item.item_id in order]
    slots = sorted(items.index(item) for item in ours)
    desired = sorted(ours, key=lambda item: order.index(item.item_id))
    moved = []
    for slot, item in zip(slots, desired, strict=True):
        current = items.index(item)
        if current != slot:
            api.update_collection_item(collection.slug, item.item_object_id, position=slot)
            items.insert(slot, items.pop(current))
            moved.append(item.item_id)
    return moved


def _published_manifests(api: Any, releases: Sequence[ReleaseSpec]) -> dict[str, Manifest]:
    found = {}
    for release in releases:
        manifest = _manifest(api, release.repo_id)
        if manifest is not None:
            found[release.repo_id] = manifest
    return found


def _manifest(api: Any, repo_id: str) -> Manifest | None:
    """The hubpub manifest at the head of `repo_id`; None when the repo or the manifest is missing."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with tempfile.TemporaryDirectory(prefix="hubpub-collection-") as scratch:
        try:
            path = api.hf_hub_download(repo_id, MANIFEST_NAME, cache_dir=scratch)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
            return None
        return Manifest.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def _description(first: ReleaseSpec, releases: Sequence[ReleaseSpec]) -> str:
    schemes = ", ".join(dict.fromkeys(SCHEMES[release.scheme].name for release in releases))
    text = f"{first.base_model} quantized with llm-compressor ({schemes}); verified and measured by hubpub."
    return text if len(text) <= COLLECTION_DESCRIPTION_MAX else text[: COLLECTION_DESCRIPTION_MAX - 1] + "…"


def _base_note(manifests: dict[str, Manifest]) -> str:
    sizes = {manifest.stages["preflight"].metrics.get("checkpoint_bytes") for manifest in manifests.values()}
    size = next(iter(sizes)) if len(sizes) == 1 else None
    return "The base model" + (f" · {human_bytes(size)} checkpoint" if isinstance(size, int) else "")


def _note(manifest: Manifest) -> str:
    """The variant's measured facts in one line: scheme, checkpoint size, and recovery when it was evaluated."""
    scheme = SCHEMES[manifest.release["scheme"]]
    label = scheme.name
    group = manifest.stages["preflight"].metrics.get("group_size")
    if scheme.uses_groups and group:
        label += f" (group size {group})"
    parts = [label, f"{human_bytes(manifest.stages['quantize'].metrics['checkpoint_bytes'])} checkpoint"]
    evaluated = manifest.stages.get("evaluate")
    if evaluated is not None and evaluated.status == "done":
        # A perplexity's figure is its ratio quantized ÷ base, as on the card.
        rows = [
            f"{row['task']} {row['metric']} {100 * row['recovery']:.1f}%"
            if row["higher_is_better"]
            else f"{row['task']} {row['metric']} ×{row['quantized'] / row['base']:.3f}"
            for row in evaluated.metrics["rows"]
        ]
        parts.append("recovery " + _bounded(rows, NOTE_MAX - len(" · ".join(parts)) - 12))
    else:
        parts.append("not evaluated")
    return " · ".join(parts)


def _bounded(rows: list[str], room: int) -> str:
    shown: list[str] = []
    for index, row in enumerate(rows):
        rest = len(rows) - index - 1
        if len(", ".join([*shown, row])) + (len(f" and {rest} more") if rest else 0) > room:
            return ", ".join(shown) + f" and {len(rows) - index} more"
        shown.append(row)
    return ", ".join(shown)


def _log(result: CollectionSync) -> None:
    changes = [
        f"{label} {', '.join(names)}"
        for label, names in (("added", result.added), ("renoted", result.renoted), ("moved", result.moved))
        if names
    ] + (["new description"] if result.described else [])
    logger.info(
        "collection %s of family %s: %s%s",
        result.slug,
        result.family,
        result.status,
        f" ({'; '.join(changes)})" if changes else "",
    )
    if result.base not in ("added", "present", "left out"):
        logger.info("collection %s: %s", result.slug, result.base)
    kept = [name for name in result.not_in_spec if name not in result.pruned]
    if kept:
        logger.warning(
            "collection %s still lists %s, no longer in the spec of family %s; set `collection: {prune: true}` to"
            " remove them",
            result.slug,
            ", ".join(kept),
            result.family,
        )
    if result.pruned:
        logger.info("collection %s: removed %s (no longer in the spec)", result.slug, ", ".join(result.pruned))
    for repo_id, why in result.left_out.items():
        done = "removed from" if repo_id in result.withdrawn else "left out of"
        logger.warning("collection %s: %s %s: %s", result.slug, repo_id, done, why)
