"""Item 4: file paths in commits, and branch and tag names, follow the Hub's rules; nothing else lands.

Each hostile path below used to be committed, after which huggingface_hub refused to download the
whole repo. Names of refs follow `git check-ref-format`, which the property test uses as its oracle.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import BadRequestError, HfHubHTTPError
from hypothesis import given, settings
from hypothesis import strategies as st

from hubpub.hub import HubServer
from tests.hub.harness import ALICE, TOKENS, Hub, add_file, commit_body, exchange, json_request, request

COMMIT = "/api/models/alice/repo/commit/main"


@pytest.fixture
def repo(hub: Hub) -> str:
    hub.api().create_repo("alice/repo")
    return str(hub.api().model_info("alice/repo").sha)


def commit(hub: Hub, *operations: dict[str, object]) -> int:
    return exchange(hub.url, request("POST", COMMIT, commit_body(*operations), token=ALICE)).status


HOSTILE_PATHS = [
    "../x",
    "/abs",
    "/etc/passwd",
    "a/../../b",
    "a/./b",
    ".git/config",
    "sub/.git/hooks/post-checkout",
    ".cache/huggingface/download/x.metadata",
    "a\x00b",
    "a\nb",
    "",
    "a//b",
    "trailing/",
    "a\\..\\..\\b",
    "x" * 256,
    "a/" * 2100 + "b",
    "\udcff",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_a_hostile_path_is_refused_and_the_repo_stays_downloadable(
    hub: Hub, repo: str, path: str, tmp_path: Path
) -> None:
    for operation in (
        add_file(path, b"x"),
        {"key": "deletedFile", "value": {"path": path}},
        {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": "0" * 64, "size": 1}},
    ):
        assert commit(hub, operation) == 400, (path, operation["key"])
    assert hub.api().model_info("alice/repo").sha == repo
    hub.api().snapshot_download("alice/repo", local_dir=tmp_path / "download")


def test_a_file_beside_a_folder_of_the_same_name_is_refused(hub: Hub, repo: str) -> None:
    assert commit(hub, add_file("a", b"1"), add_file("a/b", b"2")) == 400
    assert commit(hub, add_file("a/b", b"2")) == 200
    assert commit(hub, add_file("a", b"1")) == 400
    assert commit(hub, add_file("a/b/c", b"3")) == 400
    assert commit(hub, {"key": "deletedFolder", "value": {"path": "a/"}}, add_file("a", b"1")) == 200
    assert sorted(hub.api().list_repo_files("alice/repo")) == [".gitattributes", "a"]


def test_the_real_client_sees_a_bad_request(hub: Hub, repo: str) -> None:
    with pytest.raises(BadRequestError, match=r"Invalid path 'a//b\.txt'"):
        hub.api().create_commit(
            "alice/repo", operations=[CommitOperationAdd("a//b.txt", b"x")], commit_message="double slash"
        )


@pytest.mark.parametrize(
    "name",
    ["a..b", "..", "x\x00y", "t" * 3000, "0123456789abcdef0123456789abcdef01234567", "a b", "~x", "a.lock", ""],
)
def test_bad_branch_and_tag_names_are_refused(hub: Hub, repo: str, name: str) -> None:
    api = hub.api()
    with pytest.raises(BadRequestError):
        api.create_tag("alice/repo", tag=name)
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_branch("alice/repo", branch=name)
    assert raised.value.response.status_code in (400, 404)  # an empty name in the URL is no route at all
    refs = api.list_repo_refs("alice/repo")
    assert refs.tags == [] and [branch.name for branch in refs.branches] == ["main"]


def test_a_forty_hex_name_cannot_shadow_a_commit(hub: Hub, repo: str) -> None:
    with pytest.raises(BadRequestError, match="shadow a commit id"):
        hub.api().create_branch("alice/repo", branch=repo)
    assert hub.api().list_repo_files("alice/repo", revision=repo) == [".gitattributes"]


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("paths") / "store"
    with HubServer(root, tokens=TOKENS) as server:
        shared = Hub(server, root, [])
        shared.api().create_repo("alice/repo")
        yield shared


SEGMENTS = st.sampled_from(["a", "b.txt", "..", ".", "", ".git", ".cache", "x\x00", "\u00e9", "\\", " ", "%2F", "\t"])
PATHS = st.one_of(st.text(max_size=40), st.lists(SEGMENTS | st.text(max_size=6), min_size=1, max_size=5).map("/".join))


def safe_everywhere(path: str) -> bool:
    """What a path must be for every client to write it inside its download folder."""
    parts = path.split("/")
    return (
        bool(path)
        and not path.startswith("/")
        and "\\" not in path
        and all(part and part not in (".", "..", ".git", ".cache") for part in parts)
        and not any(ord(char) < 32 or ord(char) == 127 for char in path)
        and "/".join(PurePosixPath(path).parts) == path
        and not path.startswith(".gitattributes/")  # a folder beside the repo's own file
    )


@settings(max_examples=150)
@given(path=PATHS)
def test_an_accepted_path_is_one_every_client_can_write_inside_its_folder(shared_hub: Hub, path: str) -> None:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return  # cannot even be put in a JSON body as UTF-8; tested above with a lone surrogate
    status = commit(shared_hub, add_file(path, b"x"))
    assert status == (200 if safe_everywhere(path) else 400), path
    if status == 200:
        assert path in shared_hub.api().list_repo_files("alice/repo")
        assert commit(shared_hub, {"key": "deletedFile", "value": {"path": path}}) == 200


def git_accepts(name: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"], capture_output=True, check=False)
    return result.returncode == 0


REF_PIECES = st.sampled_from(["v1", ".", "..", "/", "@{", "@", ".lock", "~", "^", ":", "?", "*", "[", "\\", " ", "-"])


@pytest.mark.skipif(shutil.which("git") is None, reason="git is the oracle for ref names")
@settings(max_examples=100)
@given(name=st.one_of(st.text(max_size=20), st.lists(REF_PIECES, min_size=1, max_size=6).map("".join)))
def test_the_server_accepts_the_tag_names_git_accepts(shared_hub: Hub, name: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return
    reply = exchange(shared_hub.url, json_request("POST", "/api/models/alice/repo/tag/main", {"tag": name}))
    # Stricter than git where a short name would read as something else: HEAD, "@" (git's HEAD), refs/...
    reserved = name in ("HEAD", "@") or name.startswith("refs/") or "\x00" in name
    expected = 200 if not reserved and git_accepts(name) else 400
    assert reply.status == expected, (name, reply.body)
    if reply.status == 200:
        delete = request("DELETE", f"/api/models/alice/repo/tag/{quote(name, safe='')}", token=ALICE)
        assert exchange(shared_hub.url, delete).status == 200
