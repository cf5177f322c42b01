"""Item 12: ranges past the end, wrong tokens and short parent commits get the answers the Hub gives.

Upload links that outlive a restart are in test_lfs_objects.py.
"""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.hub.harness import ALICE, BOB, Hub, add_file, commit_body, exchange, request


@pytest.fixture
def repo(hub: Hub) -> str:
    hub.api().create_repo("alice/repo")
    hub.api().upload_file(path_or_fileobj=b"0123456789", path_in_repo="ten.txt", repo_id="alice/repo")
    return str(hub.api().model_info("alice/repo").sha)


@pytest.mark.parametrize(
    ("range_header", "status", "body"),
    [
        ("bytes=10-", 416, None),
        ("bytes=999-", 416, None),
        ("bytes=4-", 206, b"456789"),
        ("bytes=2-4", 206, b"234"),
        ("bytes=8-100", 206, b"89"),
        ("bytes=5-1", 200, b"0123456789"),
        ("bytes=-3", 200, b"0123456789"),
        ("items=1-", 200, b"0123456789"),
    ],
)
def test_ranges(hub: Hub, repo: str, range_header: str, status: int, body: bytes | None) -> None:
    reply = exchange(hub.url, request("GET", "/alice/repo/resolve/main/ten.txt", headers={"Range": range_header}))
    assert reply.status == status
    if status == 416:
        assert reply.headers["content-range"] == "bytes */10"
    else:
        assert reply.body == body


def test_a_wrong_token_is_invalid_credentials_not_a_missing_repo(hub: Hub, repo: str) -> None:
    wrong = HfApi(endpoint=hub.url, token="hf_wrong_token_0000000000")
    with pytest.raises(HfHubHTTPError, match="Invalid credentials") as raised:
        wrong.model_info("alice/repo")
    assert not isinstance(raised.value, RepositoryNotFoundError)
    assert raised.value.response.status_code == 401


def test_a_private_repo_of_another_namespace_still_reads_as_not_found(hub: Hub, repo: str) -> None:
    hub.api().update_repo_settings("alice/repo", private=True)
    with pytest.raises(RepositoryNotFoundError):
        hub.api(BOB).model_info("alice/repo")
    with pytest.raises(HfHubHTTPError, match="403"):
        hub.api(BOB).upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="alice/repo")


@pytest.mark.parametrize("length", [1, 5, 7, 39])
def test_parent_commit_must_be_a_full_commit_id(hub: Hub, repo: str, length: int) -> None:
    body = commit_body(add_file("b.txt", b"b"), parent=repo[:length])
    reply = exchange(hub.url, request("POST", "/api/models/alice/repo/commit/main", body, token=ALICE))
    assert reply.status == 400 and b"full commit id" in reply.body
    assert hub.api().model_info("alice/repo").sha == repo


def test_a_full_parent_commit_in_capitals_is_the_same_commit(hub: Hub, repo: str) -> None:
    body = commit_body(add_file("b.txt", b"b"), parent=repo.upper())
    assert exchange(hub.url, request("POST", "/api/models/alice/repo/commit/main", body, token=ALICE)).status == 200


def test_the_main_branch_cannot_be_deleted_through_an_empty_name(hub: Hub, repo: str) -> None:
    for target in ("/api/models/alice/repo/branch/", "/api/models/alice/repo/branch/main"):
        assert exchange(hub.url, request("DELETE", target, token=ALICE)).status in (400, 404)
    assert hub.api().model_info("alice/repo").sha == repo
