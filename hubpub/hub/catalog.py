"""What the web pages show about repos, from either of two places: the Hub's store (published repos), or
staged release folders that `push` has not sent yet (a preview).

Both answer the same two questions for a viewer (an identity, or None without a token): which repos
can it see, and what is in one of them. A repo it may not see is answered exactly as a missing one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hubpub.hub.cards import Readme, read_card, staged_readme
from hubpub.hub.errors import HubConfigError, HubError
from hubpub.hub.store import REPO_TYPES, Entry, HubStore, Repo
from hubpub.hub.tokens import Identity, can_read

MANIFEST = "hubpub-manifest.json"
"""hubpub's release record in each repo it publishes; its `family` groups the index."""
MAX_READ_BYTES = 16 << 20
"""The manifest is read only up to this size."""
MAX_COMMITS = 50
TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    lfs: bool


@dataclass(frozen=True)
class CommitRow:
    id: str
    title: str
    author: str
    date: str


@dataclass(frozen=True)
class RepoView:
    """One repo as a page shows it, at the head of main (or as staged)."""

    repo: Repo
    private: bool
    card: Readme | None
    """README.md, read only when a CardCache does not hold what it gives; None when the repo has none."""
    files: tuple[FileRow, ...]
    family: str | None
    """The hubpub family its manifest names, if any."""
    commits: tuple[CommitRow, ...] = ()
    """Newest first, at most MAX_COMMITS."""
    tags: tuple[tuple[str, str], ...] = ()
    branches: tuple[tuple[str, str], ...] = ()
    updated: str | None = None
    staged_at: str | None = None
    """For a preview: the staged folder the view was read from, relative to the workdir (never absolute)."""

    @property
    def path(self) -> str:
        """The page's path, and the id links to it use: `ns/name`, `datasets/ns/name`, `spaces/ns/name`."""
        return f"{TYPE_PREFIX[self.repo.type]}{self.repo.id}"


class Catalog(Protocol):
    preview: bool

    def visible(self, viewer: Identity | None) -> list[Repo]:
        """The repos this viewer may see."""
        ...

    def view(self, repo: Repo, viewer: Identity | None) -> RepoView:
        """The repo as its page shows it; a 404 (RepoNotFound) when it is missing or the viewer may not see it."""
        ...


def not_found(repo: Repo) -> HubError:
    return HubError(404, f"Repository Not Found: {repo.id}", "RepoNotFound")


def family_of(manifest: bytes) -> str | None:
    try:
        data = json.loads(manifest)
    except (ValueError, RecursionError):
        return None
    family = data.get("family") if isinstance(data, dict) else None
    return family if isinstance(family, str) and 0 < len(family) <= 200 else None


class StoreCatalog:
    """The published repos of a Hub store."""

    preview = False

    def __init__(self, store: HubStore) -> None:
        self.store = store

    def visible(self, viewer: Identity | None) -> list[Repo]:
        found = []
        for kind in REPO_TYPES:
            for repo in self.store.repos(kind):
                try:
                    private = bool(self.store.meta(repo)["private"])
                except HubError:
                    continue  # deleted while we listed
                if can_read(viewer, repo.namespace, private=private):
                    found.append(repo)
        return found

    def view(self, repo: Repo, viewer: Identity | None) -> RepoView:
        store = self.store
        private = bool(store.meta(repo)["private"])
        if not can_read(viewer, repo.namespace, private=private):
            raise not_found(repo)
        head = store.resolve(repo, "main")
        tree = store.tree(repo, head)
        refs = store.refs(repo)
        commits = []
        for commit in store.history(repo, head):
            commits.append(CommitRow(commit["id"], commit["title"], commit["author"], commit["date"]))
            if len(commits) >= MAX_COMMITS:
                break
        manifest = self._read(repo, tree.get(MANIFEST), MAX_READ_BYTES)
        readme = tree.get("README.md")
        return RepoView(
            repo=repo,
            private=private,
            card=None if readme is None else store_readme(store, repo, readme),
            files=tuple(
                FileRow(path, entry.size, entry.lfs_sha256 is not None) for path, entry in sorted(tree.items())
            ),
            family=family_of(manifest) if manifest is not None else None,
            commits=tuple(commits),
            tags=tuple(sorted(refs["tags"].items())),
            branches=tuple(sorted(refs["branches"].items())),
            updated=commits[0].date if commits else None,
        )

    def _read(self, repo: Repo, entry: Entry | None, limit: int) -> bytes | None:
        if entry is None or entry.size > limit:
            return None
        return self.store.read_file(self.store.open_entry(repo, entry))


def store_readme(store: HubStore, repo: Repo, entry: Entry) -> Readme:
    """A README.md in the store, named by its git blob id."""
    path = store.open_entry(repo, entry)
    return Readme(entry.oid, entry.size, lambda: read_card(path))


class StagedCatalog:
    """Release folders staged by `hubpub release --no-push`, each named by the repo id in its manifest.

    A preview runs on the publisher's own machine, for the publisher: every staged repo is shown,
    a private one marked as such (the CLI warns when it listens beyond loopback). Pages name a staged
    folder relative to its workdir, never by its absolute path on this machine.
    """

    preview = True

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders: dict[Repo, Path] = {}
        for folder in folders:
            repo, _ = _staged_manifest(folder)
            self.folders[repo] = folder

    def visible(self, viewer: Identity | None) -> list[Repo]:
        return list(self.folders)

    def view(self, repo: Repo, viewer: Identity | None) -> RepoView:
        folder = self.folders.get(repo)
        if folder is None:
            raise not_found(repo)
        _, manifest = _staged_manifest(folder)
        release = manifest.get("release")
        push = release.get("push") if isinstance(release, dict) else None
        family = manifest.get("family")
        return RepoView(
            repo=repo,
            private=isinstance(push, dict) and push.get("private") is True,
            card=staged_readme(folder / "README.md"),
            files=tuple(_files(folder)),
            family=family if isinstance(family, str) else None,
            staged_at=shown_folder(folder),
        )


def shown_folder(folder: Path) -> str:
    """A staged folder as a page names it: `releases/<repo>/staged` below the workdir, or only its own name."""
    if len(folder.parts) > 3 and folder.parent.parent.name == "releases":
        return folder.relative_to(folder.parents[2]).as_posix()
    return folder.name


def _staged_manifest(folder: Path) -> tuple[Repo, dict[str, Any]]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        namespace, _, name = str(manifest["repo_id"]).partition("/")
        return Repo.checked("model", namespace, name), manifest
    except (OSError, ValueError, KeyError, TypeError, HubError) as exc:
        raise HubConfigError(
            f"{folder} is not a staged release (no readable {MANIFEST} with a repo_id): {exc}"
        ) from None


def _files(folder: Path) -> list[FileRow]:
    rows = []
    for parent, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            path = Path(parent) / name
            try:
                size = path.stat().st_size
            except OSError:
                continue  # a dangling link has no size to show
            rows.append(FileRow(path.relative_to(folder).as_posix(), size, False))
    return sorted(rows, key=lambda row: row.path)
