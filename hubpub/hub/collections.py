"""Collections: the routes huggingface_hub 1.33's collection methods use, and their storage in the store.

A collection is addressed by its slug, `<namespace>/<title-slug>-<24 hex id>`; as on huggingface.co
only the trailing id names it, so a renamed collection keeps answering to its old slug. Each one is
a JSON file, `collections/<namespace>/<id>.json`, written by rename under the store's lock.

Tokens count as for repos: a token creates and edits only the collections of namespaces it may write,
a private collection reads as missing to everyone else, and an item must be a repo (model, dataset or
space) the caller can see, an arXiv paper id, or a collection it can see.

Every answer shows a viewer only the items it may read now: a repo made private after it was added,
or a private collection, is left out (positions and counts follow what is shown), so an item hidden
from a viewer reads exactly as one that was never there, to the listing's `item` filter and to the
item routes too. Items whose repo or collection was deleted are dropped for everyone, and from the
file at its next write.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpub.hub import validation
from hubpub.hub.errors import HubError
from hubpub.hub.store import HubStore, Repo, now_iso, subfolders
from hubpub.hub.tokens import Identity, can_read

TITLE_MAX = 60
DESCRIPTION_MAX = 150
"""huggingface_hub's documented limit for a description."""
NOTE_MAX = 500
"""huggingface_hub's documented limit for an item's note."""
MAX_ITEMS = 1000
MAX_PER_NAMESPACE = 1000
LIST_ITEMS_SHOWN = 4
"""A listing shows the first items of each collection only, as huggingface.co does."""
ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")
THEMES = ("orange", "blue", "green", "purple", "pink", "indigo", "gray")
SORTS = ("lastModified", "trending", "upvotes")
_ID = re.compile(r"[0-9a-f]{24}")
_SLUG_NAME = re.compile(r"(?:[a-z0-9]+(?:-[a-z0-9]+)*-)?([0-9a-f]{24})")
_PAPER = re.compile(r"[0-9]{4}\.[0-9]{4,5}")
_LIST_KEYS = {"owner": 8, "item": 8, "sort": 1, "limit": 1}

Shown = Callable[[dict[str, Any]], bool]
"""Whether one viewer may see a collection's item (a stored entry)."""


@dataclass(frozen=True)
class Address:
    """A collection named by a URL: its namespace and the id at the end of its slug."""

    namespace: str
    id: str

    @classmethod
    def parse(cls, namespace: str, name: str) -> Address:
        checked = validation.repo_part(namespace, "collection namespace")
        match = _SLUG_NAME.fullmatch(name) if len(name) <= 200 else None
        if match is None:
            raise HubError(
                400, f"Invalid collection slug {validation.shown(name)}: use <namespace>/<title>-<24 hex id>"
            )
        return cls(checked, match.group(1))


@dataclass(frozen=True)
class CollectionItemView:
    type: str
    id: str
    note: str | None


@dataclass(frozen=True)
class CollectionView:
    """A collection as the web pages show it: items in their order."""

    slug: str
    title: str
    description: str | None
    private: bool
    updated: str
    items: tuple[CollectionItemView, ...]


def _view(collection: dict[str, Any], shown: Shown) -> CollectionView:
    return CollectionView(
        slug=_slug(collection),
        title=collection["title"],
        description=collection.get("description"),
        private=bool(collection["private"]),
        updated=collection.get("lastUpdated", ""),
        items=tuple(
            CollectionItemView(entry["type"], entry["id"], entry.get("note"))
            for entry in collection["items"]
            if shown(entry)
        ),
    )


def slugify(title: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))[:TITLE_MAX] or "collection"


class Collections:
    """Every collection of one store, with the Hub's rules for who may read and change what."""

    def __init__(self, store: HubStore) -> None:
        self.store = store

    # -- storage -------------------------------------------------------------------------------
    def _folder(self, namespace: str) -> Path:
        return self.store.inside(self.store.root / "collections" / validation.repo_part(namespace, "namespace"))

    def _path(self, address: Address) -> Path:
        return self.store.inside(self._folder(address.namespace) / f"{address.id}.json")

    def _load(self, address: Address) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = self.store.read_json(self._path(address))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return data

    def _all(self) -> list[dict[str, Any]]:
        found = []
        for folder in subfolders(self.store.root / "collections"):
            with os.scandir(folder) as entries:
                paths = sorted(Path(entry.path) for entry in entries if entry.is_file(follow_symlinks=False))
            for path in paths:
                if path.suffix == ".json" and _ID.fullmatch(path.stem):
                    with contextlib.suppress(FileNotFoundError):
                        found.append(self.store.read_json(path))
        return found

    def _save(self, collection: dict[str, Any]) -> None:
        collection["items"] = [entry for entry in collection["items"] if not self._gone(entry)]
        collection["lastUpdated"] = now_iso()
        path = self._path(Address(collection["namespace"], collection["id"]))
        self.store.make_folder(path.parent)
        self.store.write_json(path, collection)

    # -- who sees what -------------------------------------------------------------------------
    def _visible(self, collection: dict[str, Any] | None, identity: Identity | None) -> bool:
        if collection is None:
            return False
        return not collection["private"] or (identity is not None and identity.owns(collection["namespace"]))

    def _readable(self, address: Address, identity: Identity | None) -> dict[str, Any]:
        collection = self._load(address)
        if collection is None or not self._visible(collection, identity):
            raise HubError(404, f"Collection not found: {address.namespace}/{address.id}")
        return collection

    def _writable(self, address: Address, identity: Identity) -> dict[str, Any]:
        collection = self._readable(address, identity)
        if not identity.can_write(address.namespace):
            read_only = " (this token is read-only)" if identity.read_only else ""
            raise HubError(403, f"You don't have the rights to edit collections of {address.namespace}{read_only}")
        return collection

    def _sight(self, identity: Identity | None) -> Shown:
        """Which items `identity` may see: public repos and papers, its own private repos, collections it may read.

        Remembered for one answer, so a listing reads each repo's settings once.
        """
        seen: dict[tuple[str, str], bool] = {}

        def shown(entry: dict[str, Any]) -> bool:
            key = (entry["type"], entry["id"])
            if key not in seen:
                seen[key] = self._item_readable(entry["type"], entry["id"], identity)
            return seen[key]

        return shown

    def _item_readable(self, kind: str, item_id: str, identity: Identity | None) -> bool:
        if kind == "paper":
            return True
        namespace, _, name = item_id.partition("/")
        try:
            if kind == "collection":
                return self._visible(self._load(Address.parse(namespace, name)), identity)
            repo = Repo.checked(kind, namespace, name)
            return can_read(identity, repo.namespace, private=bool(self.store.meta(repo)["private"]))
        except HubError:
            return False  # deleted, or a name no request could have added

    def _gone(self, entry: dict[str, Any]) -> bool:
        """Whether an item's repo or collection no longer exists (for anyone)."""
        if entry["type"] == "paper":
            return False
        namespace, _, name = entry["id"].partition("/")
        try:
            if entry["type"] == "collection":
                return self._load(Address.parse(namespace, name)) is None
            return not self.store.exists(Repo.checked(entry["type"], namespace, name))
        except HubError:
            return True

    def visible(self, identity: Identity | None) -> list[CollectionView]:
        """The collections `identity` may read (anonymous: the public ones), for the web pages."""
        chosen = [item for item in self._all() if self._visible(item, identity)]
        shown = self._sight(identity)
        ordered = sorted(chosen, key=lambda item: (item["namespace"].lower(), item["title"]))
        return [_view(item, shown) for item in ordered]

    def view(self, address: Address, identity: Identity | None) -> CollectionView:
        return _view(self._readable(address, identity), self._sight(identity))

    # -- the routes ----------------------------------------------------------------------------
    def create(self, identity: Identity, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        title = _title(body.get("title"))
        namespace = validation.repo_part(body.get("namespace") or identity.name, "namespace")
        if body.get("resourceGroupId") is not None:
            raise HubError(400, "resource groups are not supported by the embedded Hub")
        private = _flag(body.get("private", False), "private")
        description = _description(body.get("description"))
        if not identity.can_write(namespace):
            raise HubError(403, f"You don't have the rights to create a collection in {namespace}")
        with self.store.write_lock():
            mine = [item for item in self._all() if item["namespace"].lower() == namespace.lower()]
            for existing in mine:
                if existing["title"] == title:
                    slug = _slug(existing)
                    raise HubError(409, f"A collection titled {title!r} already exists: {slug}", extra={"slug": slug})
            if len(mine) >= MAX_PER_NAMESPACE:
                raise HubError(400, f"{namespace} already has {MAX_PER_NAMESPACE} collections")
            collection: dict[str, Any] = {
                "id": secrets.token_hex(12),
                "namespace": namespace,
                "title": title,
                "description": description,
                "private": private,
                "theme": "orange",
                "position": len(mine),
                "createdAt": now_iso(),
                "items": [],
            }
            self._save(collection)
        return self._shaped(collection, base_url, self._sight(identity))

    def get(self, address: Address, identity: Identity | None, base_url: str) -> dict[str, Any]:
        return self._shaped(self._readable(address, identity), base_url, self._sight(identity))

    def update(self, address: Address, identity: Identity, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if value is None:
                continue
            if key == "title":
                changes[key] = _title(value)
            elif key == "description":
                changes[key] = _description(value)
            elif key == "private":
                changes[key] = _flag(value, "private")
            elif key == "position":
                changes[key] = validation.size(value, MAX_PER_NAMESPACE, "position")
            elif key == "theme":
                if value not in THEMES:
                    raise HubError(400, f"Invalid theme {validation.shown(value)}: use one of {', '.join(THEMES)}")
                changes[key] = value
            else:
                raise HubError(400, f"A collection has no setting {validation.shown(key)}")
        with self.store.write_lock():
            collection = self._writable(address, identity)
            title = changes.get("title")
            if title is not None and any(
                other["title"] == title and other["id"] != collection["id"]
                for other in self._all()
                if other["namespace"].lower() == address.namespace.lower()
            ):
                raise HubError(409, f"A collection titled {title!r} already exists in {address.namespace}")
            collection.update(changes)
            self._save(collection)
        return {"data": self._shaped(collection, base_url, self._sight(identity))}

    def delete(self, address: Address, identity: Identity) -> dict[str, Any]:
        with self.store.write_lock():
            self._writable(address, identity)
            self._path(address).unlink()
        return {}

    def add_item(self, address: Address, identity: Identity, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        item = validation.mapping(body.get("item"), "item")
        kind = item.get("type")
        if kind not in ITEM_TYPES:
            raise HubError(400, f"Invalid item type {validation.shown(kind)}: use one of {', '.join(ITEM_TYPES)}")
        note = _note(body.get("note"))
        with self.store.write_lock():
            collection = self._writable(address, identity)
            item_id = self._existing_item(str(kind), item.get("id"), identity)
            present = [entry for entry in collection["items"] if self._sight(identity)(entry)]
            if any(entry["type"] == kind and entry["id"] == item_id for entry in present):
                raise HubError(409, f"{kind} {item_id} is already in this collection")
            if len(present) >= MAX_ITEMS:
                raise HubError(400, f"A collection holds at most {MAX_ITEMS} items")
            collection["items"].append({"_id": secrets.token_hex(12), "type": kind, "id": item_id, "note": note})
            self._save(collection)
        return self._shaped(collection, base_url, self._sight(identity))

    def update_item(self, address: Address, item_object_id: str, identity: Identity, body: dict[str, Any]) -> None:
        unknown = sorted(set(body) - {"note", "position"})
        if unknown:
            raise HubError(400, f"A collection item has no setting {validation.shown(unknown[0])}")
        note = _note(body["note"]) if body.get("note") is not None else None
        with self.store.write_lock():
            collection = self._writable(address, identity)
            shown = self._sight(identity)
            entry = _item(collection, item_object_id, shown)
            if note is not None:
                entry["note"] = note
            if body.get("position") is not None:
                others = [other for other in collection["items"] if shown(other) and other is not entry]
                position = validation.size(body["position"], len(others), "position")
                collection["items"].remove(entry)
                # Among the items the caller sees; the ones hidden from it keep their places around them.
                at = collection["items"].index(others[position]) if position < len(others) else len(collection["items"])
                collection["items"].insert(at, entry)
            self._save(collection)

    def delete_item(self, address: Address, item_object_id: str, identity: Identity) -> None:
        with self.store.write_lock():
            collection = self._writable(address, identity)
            collection["items"].remove(_item(collection, item_object_id, self._sight(identity)))
            self._save(collection)

    def listing(self, query: dict[str, list[str]], identity: Identity | None, base_url: str) -> list[dict[str, Any]]:
        """`GET /api/collections`: filtered by owner and item, sorted, each with its first items only."""
        for key, values in query.items():
            if key not in _LIST_KEYS:
                supported = ", ".join(_LIST_KEYS)
                raise HubError(400, f"GET /api/collections does not support {validation.shown(key)}: use {supported}")
            if len(values) > _LIST_KEYS[key]:
                raise HubError(400, f"GET /api/collections: {key} is given {len(values)} times")
        owners = {validation.repo_part(owner, "owner").lower() for owner in query.get("owner", [])}
        wanted = [_item_filter(value) for value in query.get("item", [])]
        sort = query.get("sort", ["lastModified"])[0]
        if sort not in SORTS:
            raise HubError(400, f"Invalid sort {validation.shown(sort)}: use one of {', '.join(SORTS)}")
        limit_text = query.get("limit", [str(MAX_PER_NAMESPACE)])[0]
        if not re.fullmatch(r"[0-9]{1,7}", limit_text):
            raise HubError(400, f"Invalid limit {validation.shown(limit_text)}: a whole number")
        shown = self._sight(identity)
        chosen = [
            collection
            for collection in self._all()
            if self._visible(collection, identity)
            and (not owners or collection["namespace"].lower() in owners)
            and all(
                any((item["type"], item["id"]) == pair and shown(item) for item in collection["items"])
                for pair in wanted
            )
        ]
        # Trending and upvotes have no meaning on this Hub: every collection has none, newest first then.
        chosen.sort(key=lambda collection: (collection["lastUpdated"], collection["id"]), reverse=True)
        answer = []
        for collection in chosen[: int(limit_text)]:
            shaped = self._shaped(collection, base_url, shown)
            shaped["items"] = shaped["items"][:LIST_ITEMS_SHOWN]
            del shaped["position"]  # the client numbers a listing itself
            answer.append(shaped)
        return answer

    # -- helpers -------------------------------------------------------------------------------
    def _existing_item(self, kind: str, raw_id: object, identity: Identity) -> str:
        """The id of an item that exists and that the caller can see; 404 otherwise."""
        text = validation.text(raw_id, "item id", 256)
        if kind == "paper":
            if not _PAPER.fullmatch(text):
                raise HubError(400, f"Invalid paper id {validation.shown(text)}: use an arXiv id such as 2311.12983")
            return text
        namespace, _, name = text.partition("/")
        if kind == "collection":
            target = self._load(Address.parse(namespace, name))
            if target is None or not self._visible(target, identity):
                raise HubError(404, f"Collection not found: {validation.shown(text)}")
            return _slug(target)
        repo = Repo.checked(kind, namespace, name)
        if not self.store.exists(repo) or (self.store.meta(repo)["private"] and not identity.owns(repo.namespace)):
            raise HubError(404, f"{kind} {repo.id} not found", "RepoNotFound")
        return repo.id

    def _shaped(self, collection: dict[str, Any], base_url: str, shown: Shown) -> dict[str, Any]:
        """A collection as huggingface_hub's `Collection` reads it, with the items one viewer may see."""
        items = []
        for position, entry in enumerate(entry for entry in collection["items"] if shown(entry)):
            item: dict[str, Any] = {"_id": entry["_id"], "id": entry["id"], "type": entry["type"], "position": position}
            if entry["note"] is not None:
                item["note"] = {"text": entry["note"], "html": _html(entry["note"])}
            if entry["type"] == "collection":
                item["slug"] = entry["id"]
            elif entry["type"] in ("model", "dataset", "space"):
                item["author"] = entry["id"].split("/")[0]
                item["repoType"] = entry["type"]
            items.append(item)
        return {
            "slug": _slug(collection),
            "title": collection["title"],
            "description": collection["description"],
            "owner": {"name": collection["namespace"], "type": "user"},
            "items": items,
            "lastUpdated": collection["lastUpdated"],
            "position": collection["position"],
            "private": collection["private"],
            "theme": collection["theme"],
            "upvotes": 0,
            "isUpvotedByUser": False,
            "url": f"{base_url}/collections/{_slug(collection)}",
        }


def _slug(collection: dict[str, Any]) -> str:
    return f"{collection['namespace']}/{slugify(collection['title'])}-{collection['id']}"


def _title(value: object) -> str:
    title = validation.text(value, "collection title", TITLE_MAX).strip()
    if not title or any(ord(char) < 32 for char in title):
        raise HubError(400, "A collection title must be 1 to 60 printable characters")
    return title


def _description(value: object) -> str | None:
    return None if value is None else validation.text(value, "collection description", DESCRIPTION_MAX)


def _note(value: object) -> str | None:
    return None if value is None else validation.text(value, "note", NOTE_MAX)


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise HubError(400, f"{what} must be true or false")
    return value


def item_object_id(value: str) -> str:
    """The id of an item within a collection, from a URL."""
    if not _ID.fullmatch(value):
        raise HubError(400, f"Invalid item id {validation.shown(value)}: 24 hex digits")
    return value


def _item(collection: dict[str, Any], item_object_id: str, shown: Shown) -> dict[str, Any]:
    """The entry of an item the caller may see; one hidden from it is as missing as one never there."""
    entries: list[dict[str, Any]] = collection["items"]
    for entry in entries:
        if entry["_id"] == item_object_id and shown(entry):
            return entry
    raise HubError(404, f"Item {item_object_id} is not in this collection")


def _item_filter(value: str) -> tuple[str, str]:
    """`models/ns/name`, `datasets/ns/name`, `spaces/ns/name`, `papers/<id>` or `collections/<slug>`."""
    plural, _, item_id = value.partition("/")
    kind = plural.removesuffix("s")
    if kind not in ITEM_TYPES or not item_id:
        raise HubError(400, f"Invalid item filter {validation.shown(value)}: use e.g. models/namespace/name")
    return kind, item_id


def _html(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<p>{escaped}</p>"
