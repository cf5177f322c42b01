"""The embedded Hub, driven by the unmodified huggingface_hub client over real HTTP on 127.0.0.1."""

from __future__ import annotations

import filecmp
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from hubpub.hub import HubServer, Identity

TOKEN = "hf_test_token_0123456789"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    tokens = {TOKEN: Identity(name="tester", orgs=("demo",), writable=frozenset())}
    with HubServer(tmp_path / "hub", tokens=tokens) as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text('{"hidden_size": 64}')
    (source / "model.safetensors").write_bytes(os.urandom(2_000_000))
    (source / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Model — “quoted” ✅\n", encoding="utf-8")
    (source / "sub" / "notes.txt").write_text("notes")
    return source


def routes(hub: HubServer, *names: str) -> list[str]:
    return [route for _, route, _ in hub.requests if route in names]


def test_whoami_and_create_repo(api: HfApi, hub: HubServer) -> None:
    assert api.whoami()["name"] == "tester"
    url = api.create_repo("demo/model")
    assert url == f"{hub.url}/demo/model"
    assert api.create_repo("demo/model", exist_ok=True) == url
    assert api.list_repo_files("demo/model") == [".gitattributes"]
    with pytest.raises(HfHubHTTPError):
        api.create_repo("demo/model")


def test_upload_download_round_trip_is_byte_identical(api: HfApi, folder: Path, tmp_path: Path) -> None:
    api.create_repo("demo/model")
    commit = api.upload_folder(folder_path=folder, repo_id="demo/model", commit_message="first")
    assert sorted(api.list_repo_files("demo/model")) == [
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",
        "sub/notes.txt",
    ]
    info = api.model_info("demo/model", files_metadata=True)
    assert info.sha == commit.oid
    assert info.card_data is not None and info.card_data.license == "apache-2.0"
    weights = next(sibling for sibling in info.siblings or [] if sibling.rfilename == "model.safetensors")
    assert weights.lfs is not None and weights.lfs.size == 2_000_000
    downloaded = Path(api.snapshot_download("demo/model", local_dir=tmp_path / "download"))
    for name in ("config.json", "model.safetensors", "README.md", "sub/notes.txt"):
        assert filecmp.cmp(folder / name, downloaded / name, shallow=False), name


def test_unchanged_upload_sends_no_bytes_and_makes_no_commit(api: HfApi, hub: HubServer, folder: Path) -> None:
    api.create_repo("demo/model")
    first = api.upload_folder(folder_path=folder, repo_id="demo/model")
    hub.requests.clear()
    second = api.upload_folder(folder_path=folder, repo_id="demo/model")
    assert second.oid == first.oid
    assert routes(hub, "lfs_upload", "commit") == []
    assert len(api.list_repo_commits("demo/model")) == 2


def test_tags_and_commits(api: HfApi, folder: Path) -> None:
    api.create_repo("demo/model")
    commit = api.upload_folder(folder_path=folder, repo_id="demo/model", commit_message="release 1")
    api.create_tag("demo/model", tag="v1.0.0", revision=commit.oid)
    refs = api.list_repo_refs("demo/model")
    assert [(tag.name, tag.target_commit) for tag in refs.tags] == [("v1.0.0", commit.oid)]
    assert api.list_repo_commits("demo/model")[0].title == "release 1"
    assert api.list_repo_files("demo/model", revision="v1.0.0")


def test_stale_parent_commit_is_refused_with_412(api: HfApi) -> None:
    api.create_repo("demo/model")
    head = api.model_info("demo/model").sha
    api.create_commit("demo/model", operations=[CommitOperationAdd("a.txt", b"a")], commit_message="a")
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_commit(
            "demo/model", operations=[CommitOperationAdd("b.txt", b"b")], commit_message="b", parent_commit=head
        )
    assert raised.value.response.status_code == 412
    assert "b.txt" not in api.list_repo_files("demo/model")


def test_wrong_token_and_foreign_namespace_are_refused(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(endpoint=hub.url, token="hf_wrong").whoami()
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=hub.url, token="hf_wrong").create_repo("demo/model")
    with pytest.raises(HfHubHTTPError, match="403"):
        HfApi(endpoint=hub.url, token=TOKEN).create_repo("someone-else/model")
    assert not list((tmp_path / "hub" / "repos").rglob("meta.json"))


def test_private_repos_are_hidden_from_anonymous_readers(api: HfApi, hub: HubServer) -> None:
    api.create_repo("demo/secret", private=True)
    assert api.repo_exists("demo/secret")
    anonymous = HfApi(endpoint=hub.url, token=False)
    assert not anonymous.repo_exists("demo/secret")
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("demo/secret")


def test_repos_persist_across_restarts(tmp_path: Path, folder: Path) -> None:
    tokens = {TOKEN: Identity(name="tester")}
    with HubServer(tmp_path / "hub", tokens=tokens) as first:
        api = HfApi(endpoint=first.url, token=TOKEN)
        api.create_repo("tester/model")
        commit = api.upload_folder(folder_path=folder, repo_id="tester/model", commit_message="x")
    with HubServer(tmp_path / "hub", tokens=tokens) as second:
        api = HfApi(endpoint=second.url, token=TOKEN)
        assert api.model_info("tester/model").sha == commit.oid
        config = api.hf_hub_download("tester/model", "config.json", local_dir=tmp_path / "again")
        assert Path(config).read_text() == (folder / "config.json").read_text()


def test_transient_preupload_failure_is_retried_by_the_client(api: HfApi, hub: HubServer, folder: Path) -> None:
    api.create_repo("demo/model")
    hub.faults.add("preupload", status=503, times=1)
    api.upload_folder(folder_path=folder, repo_id="demo/model")
    assert routes(hub, "preupload").count("preupload") >= 2
    assert "model.safetensors" in api.list_repo_files("demo/model")


def test_connection_dropped_mid_upload_is_retried(api: HfApi, hub: HubServer, folder: Path) -> None:
    api.create_repo("demo/model")
    hub.faults.add("lfs_upload", status=0, drop_after_bytes=100_000)
    api.upload_folder(folder_path=folder, repo_id="demo/model")
    assert "model.safetensors" in api.list_repo_files("demo/model")


def test_failed_commit_leaves_the_remote_unchanged(api: HfApi, hub: HubServer, folder: Path) -> None:
    api.create_repo("demo/model")
    head = api.model_info("demo/model").sha
    hub.faults.add("commit", status=500)
    with pytest.raises(HfHubHTTPError):
        api.upload_folder(folder_path=folder, repo_id="demo/model")
    assert api.model_info("demo/model").sha == head
    assert api.list_repo_files("demo/model") == [".gitattributes"]


def test_hub_serve_command_serves_plain_huggingface_hub_clients(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "hubpub", "hub", "serve", "--dir", str(tmp_path / "served"), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "HUBPUB_HUB_TOKEN": TOKEN})
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()
        url = first_line.rsplit(" at ", 1)[1].strip()
        api = HfApi(endpoint=url, token=TOKEN)
        api.create_repo("hubpub/served")
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id="hubpub/served")
        assert api.list_repo_files("hubpub/served") == [".gitattributes", "hello.txt"]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert TOKEN not in first_line + output
