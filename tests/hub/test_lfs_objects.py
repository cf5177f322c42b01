"""Items 2, 3 and 12 (upload links): LFS objects belong to one repo, an oid is never a path, links are signed.

Before: an `oid` in a commit was joined to the store's path (so `/etc/hostname` was served back),
all repos shared one object folder (so knowing a private file's sha256 was enough to link it from
another repo), and the signing key died with the process (links issued before a restart got 403).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub.errors import EntryNotFoundError

from hubpub.hub import HubServer
from tests.hub.harness import ALICE, BOB, TOKENS, Hub, commit_body, exchange, json_request, request

WEIGHTS = os.urandom(4096)
WEIGHTS_SHA256 = hashlib.sha256(WEIGHTS).hexdigest()


def lfs_pointer(path: str, oid: str, size: int | None = 1) -> dict[str, object]:
    value: dict[str, object] = {"path": path, "algo": "sha256", "oid": oid}
    if size is not None:
        value["size"] = size
    return {"key": "lfsFile", "value": value}


def batch(hub: Hub, repo: str, oid: str, size: int, token: str = ALICE) -> dict[str, object]:
    body = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]}
    reply = exchange(hub.url, json_request("POST", f"/{repo}.git/info/lfs/objects/batch", body, token=token))
    assert reply.status == 200, reply.body
    objects = reply.json()["objects"]  # type: ignore[index]
    assert isinstance(objects, list)
    return dict(objects[0])


def upload_target(href: str) -> str:
    split = urlsplit(href)
    return f"{split.path}?{split.query}"


@pytest.mark.parametrize(
    "oid",
    [
        "/etc/hostname",
        "../../../../../../etc/hostname",
        "../repos/models/alice/secret/blobs/" + "0" * 40,
        "%2Fetc%2Fhostname",
        "A" * 64,
        "0" * 63,
        "g" * 64,
        "",
    ],
)
def test_an_lfs_oid_is_never_a_path(hub: Hub, oid: str) -> None:
    hub.api(BOB).create_repo("bob/files")
    commit = request("POST", "/api/models/bob/files/commit/main", commit_body(lfs_pointer("x", oid)), token=BOB)
    assert exchange(hub.url, commit).status == 400
    with pytest.raises(EntryNotFoundError):
        hub.api(BOB).hf_hub_download("bob/files", "x")
    for attack in (
        request("PUT", f"/_lfs/models/bob/files/{oid}?size=1&expires=9999999999&sig=00", b"x"),
        json_request("POST", f"/_lfs/models/bob/files/{oid}/verify", {"oid": oid, "size": 1}, token=BOB),
    ):
        assert exchange(hub.url, attack).status in (400, 404)


@pytest.fixture
def alice_private_weights(hub: Hub) -> None:
    api = hub.api(ALICE)
    api.create_repo("alice/secret", private=True)
    api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="model.safetensors", repo_id="alice/secret")
    assert api.model_info("alice/secret", files_metadata=True).siblings[-1].lfs is not None  # type: ignore[index]


def test_knowing_a_private_objects_sha256_does_not_let_another_repo_link_it(
    hub: Hub, alice_private_weights: None, tmp_path: Path
) -> None:
    bob = hub.api(BOB)
    bob.create_repo("bob/stolen")
    answer = batch(hub, "bob/stolen", WEIGHTS_SHA256, len(WEIGHTS), token=BOB)
    assert "actions" in answer, "the batch call must not say another repo's object is already here"
    pointer = lfs_pointer("stolen.safetensors", WEIGHTS_SHA256, len(WEIGHTS))
    commit = request("POST", "/api/models/bob/stolen/commit/main", commit_body(pointer), token=BOB)
    reply = exchange(hub.url, commit)
    assert reply.status == 422 and b"not uploaded to this repo" in reply.body
    copy = lfs_pointer("copy.safetensors", WEIGHTS_SHA256, None)  # a server-side copy leaves out the size
    assert (
        exchange(hub.url, request("POST", "/api/models/bob/stolen/commit/main", commit_body(copy), token=BOB)).status
        == 422
    )
    assert bob.list_repo_files("bob/stolen") == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        bob.hf_hub_download("bob/stolen", "stolen.safetensors", local_dir=tmp_path / "loot")


def test_an_object_in_a_repos_history_can_be_linked_again(hub: Hub, alice_private_weights: None) -> None:
    api = hub.api(ALICE)
    api.delete_file("model.safetensors", "alice/secret")
    pointer = lfs_pointer("again.safetensors", WEIGHTS_SHA256, None)
    commit = request("POST", "/api/models/alice/secret/commit/main", commit_body(pointer), token=ALICE)
    assert exchange(hub.url, commit).status == 200
    assert Path(api.hf_hub_download("alice/secret", "again.safetensors")).read_bytes() == WEIGHTS


def test_an_upload_with_wrong_bytes_is_refused_and_stores_nothing(hub: Hub) -> None:
    hub.api().create_repo("alice/repo")
    href = batch(hub, "alice/repo", WEIGHTS_SHA256, len(WEIGHTS))["actions"]["upload"]["href"]  # type: ignore[index]
    wrong = os.urandom(len(WEIGHTS))
    assert exchange(hub.url, request("PUT", upload_target(href), wrong)).status == 400
    assert exchange(hub.url, request("PUT", upload_target(href), WEIGHTS[:-1])).status == 400
    assert "actions" in batch(hub, "alice/repo", WEIGHTS_SHA256, len(WEIGHTS))
    assert not list((hub.root / "tmp").iterdir())


def test_an_upload_link_is_for_one_repo_object_and_size(hub: Hub) -> None:
    hub.api(ALICE).create_repo("alice/repo")
    hub.api(BOB).create_repo("bob/repo")
    href = batch(hub, "alice/repo", WEIGHTS_SHA256, len(WEIGHTS))["actions"]["upload"]["href"]  # type: ignore[index]
    target = upload_target(href)
    elsewhere = target.replace("/alice/repo/", "/bob/repo/")
    assert exchange(hub.url, request("PUT", elsewhere, WEIGHTS)).status == 403
    bigger = target.replace(f"size={len(WEIGHTS)}", f"size={len(WEIGHTS) + 1}")
    assert exchange(hub.url, request("PUT", bigger, WEIGHTS + b"!")).status == 403
    assert exchange(hub.url, request("PUT", target, WEIGHTS)).status == 200
    assert "actions" not in batch(hub, "alice/repo", WEIGHTS_SHA256, len(WEIGHTS))
    assert "actions" in batch(hub, "bob/repo", WEIGHTS_SHA256, len(WEIGHTS), token=BOB)


def test_upload_links_issued_before_a_restart_still_work(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with HubServer(root, tokens=TOKENS) as first:
        hub = Hub(first, root, [])
        hub.api().create_repo("alice/repo")
        href = batch(hub, "alice/repo", WEIGHTS_SHA256, len(WEIGHTS))["actions"]["upload"]["href"]  # type: ignore[index]
    with HubServer(root, tokens=TOKENS) as second:
        assert exchange(second.url, request("PUT", upload_target(str(href)), WEIGHTS)).status == 200
        pointer = lfs_pointer("model.safetensors", WEIGHTS_SHA256, len(WEIGHTS))
        commit = request("POST", "/api/models/alice/repo/commit/main", commit_body(pointer), token=ALICE)
        assert exchange(second.url, commit).status == 200
    assert json.loads((root / "store.json").read_text())["layout"] == 2
    assert oct((root / "signing-key").stat().st_mode & 0o777) == "0o600"
