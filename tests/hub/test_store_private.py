"""The store is its owner's alone, and no read follows a link out of it (or across it).

Before: private repos' files were 0644 in 0755 folders (readable by every local user), and a
collection file, a blob or a repo folder replaced by a symbolic link was read and served.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hubpub.hub import HubServer, HubStore
from tests.hub.harness import ALICE, BOB, TOKENS, Hub, exchange, request

SECRET = b"bob's private weights: 0xDEADBEEF"


def loose_modes(root: Path) -> list[str]:
    """Every folder not 0700 and every file not 0600 below the root (the root included)."""
    found = []
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) != wanted:
            found.append(f"{path.relative_to(root)}: {oct(stat.S_IMODE(info.st_mode))}")
    return found


def test_everything_the_store_writes_is_its_owners_alone(hub: Hub, tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, which made 0644 files and 0755 folders
    try:
        bob = hub.api(BOB)
        bob.create_repo("bob/secret", private=True)
        bob.upload_file(path_or_fileobj=SECRET, path_in_repo="notes.txt", repo_id="bob/secret")
        bob.upload_file(path_or_fileobj=b"\0" * 2048, path_in_repo="model.safetensors", repo_id="bob/secret")
        bob.create_branch("bob/secret", branch="dev")
        bob.create_collection("Bob's things", private=True)
    finally:
        os.umask(previous)
    assert {path.name for path in (hub.root / "repos" / "models" / "bob" / "secret" / "lfs").iterdir()}
    assert any((hub.root / "collections" / "bob").iterdir())
    assert loose_modes(hub.root) == []


def test_a_store_found_with_loose_modes_is_tightened_at_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with HubServer(root, tokens=TOKENS) as server:
        Hub(server, root, []).api(BOB).create_repo("bob/secret", private=True)
    for path in [root, *root.rglob("*")]:  # as an older hubpub left it
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert loose_modes(root) != []
    HubStore(root).close()
    assert loose_modes(root) == []


@pytest.fixture
def secret_repo(hub: Hub) -> Path:
    """bob's private repo with one file; the path of that file's blob."""
    bob = hub.api(BOB)
    bob.create_repo("bob/secret", private=True)
    bob.upload_file(path_or_fileobj=SECRET, path_in_repo="notes.txt", repo_id="bob/secret")
    blobs = list((hub.root / "repos" / "models" / "bob" / "secret" / "blobs").iterdir())
    return next(blob for blob in blobs if blob.read_bytes() == SECRET)


def leaks(reply_body: bytes) -> bool:
    return SECRET in reply_body or b"root:" in reply_body


@pytest.mark.parametrize("target", ["passwd", "other namespace"])
def test_a_blob_replaced_by_a_link_is_never_served(hub: Hub, secret_repo: Path, target: str) -> None:
    alice = hub.api()
    alice.create_repo("alice/open")
    alice.upload_file(path_or_fileobj=b"public card", path_in_repo="README.md", repo_id="alice/open")
    blobs = hub.root / "repos" / "models" / "alice" / "open" / "blobs"
    blob = next(path for path in blobs.iterdir() if path.read_bytes() == b"public card")
    blob.unlink()
    blob.symlink_to("/etc/passwd" if target == "passwd" else secret_repo)
    for token in (None, ALICE):
        reply = exchange(hub.url, request("GET", "/alice/open/resolve/main/README.md", token=token))
        assert reply.status == 500 and not leaks(reply.body)
    page = exchange(hub.url, request("GET", "/alice/open"))
    assert not leaks(page.body)


def test_a_collection_file_replaced_by_a_link_is_never_served(hub: Hub, secret_repo: Path) -> None:
    alice = hub.api()
    mine = alice.create_collection("Mine")
    bob_private = hub.api(BOB).create_collection("Bob's", private=True)
    mine_file = next((hub.root / "collections" / "alice").iterdir())
    bobs_file = next((hub.root / "collections" / "bob").iterdir())
    planted = {mine_file: bobs_file, hub.root / "collections" / "alice" / f"{'0' * 24}.json": Path("/etc/passwd")}
    mine_file.unlink()
    for link, target in planted.items():
        link.symlink_to(target)
    for slug in (mine.slug, f"alice/planted-{'0' * 24}"):
        reply = exchange(hub.url, request("GET", f"/api/collections/{slug}"))
        assert reply.status in (404, 500) and b"Bob's" not in reply.body and not leaks(reply.body)
    listing = exchange(hub.url, request("GET", "/api/collections?owner=alice"))
    assert listing.status == 200 and listing.json() == []
    everything = exchange(hub.url, request("GET", "/api/collections", token=BOB)).json()
    assert isinstance(everything, list) and [collection["slug"] for collection in everything] == [bob_private.slug]


def test_a_repo_or_namespace_folder_that_is_a_link_is_no_repo(hub: Hub, secret_repo: Path) -> None:
    models = hub.root / "repos" / "models"
    hub.api().create_repo("alice/open")
    (models / "alice" / "mirror").symlink_to(models / "bob" / "secret")
    (models / "eve").symlink_to(models / "bob")
    for repo in ("alice/mirror", "eve/secret"):
        for target in (f"/api/models/{repo}", f"/{repo}/resolve/main/notes.txt", f"/{repo}"):
            reply = exchange(hub.url, request("GET", target, token=ALICE))
            assert reply.status in (404, 500) and not leaks(reply.body), target
    listed = exchange(hub.url, request("GET", "/api/models", token=ALICE)).json()
    assert isinstance(listed, list) and [model["id"] for model in listed] == ["alice/open"]


def test_refs_and_commits_that_are_links_to_another_repo_are_refused(hub: Hub, secret_repo: Path) -> None:
    hub.api().create_repo("alice/open")
    folder = hub.root / "repos" / "models" / "alice" / "open"
    bobs = secret_repo.parent.parent
    for name in ("refs.json", "commits"):
        (folder / name).rename(folder / f"{name}.gone")
        (folder / name).symlink_to(bobs / name)
    for target in ("/api/models/alice/open", "/api/models/alice/open/tree/main", "/alice/open"):
        reply = exchange(hub.url, request("GET", target, token=ALICE))
        assert reply.status == 500 and b"notes.txt" not in reply.body, target
