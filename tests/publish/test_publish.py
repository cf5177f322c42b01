"""Publishing a staged release to the embedded Hub with the real huggingface_hub client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd

from hubpub import api
from hubpub.errors import PublishError
from hubpub.hub import HubServer
from hubpub.hubclient import HubTarget, commit_plan, plan_upload
from tests.conftest import run_cli, write_spec
from tests.publish.conftest import TOKEN, remote, routes


def test_full_release_is_published_tagged_and_proven(staged: tuple[Path, Path], hub: HubServer) -> None:
    spec, workdir = staged
    (result,) = api.push([spec], workdir=workdir, hub=hub.url)
    assert result.status == "committed" and result.commit
    files = remote(hub).list_repo_files("test/tiny-w4a16")
    assert {"model.safetensors", "config.json", "recipe.yaml", "hubpub-manifest.json", "tokenizer.json"} <= set(files)
    refs = remote(hub).list_repo_refs("test/tiny-w4a16")
    assert [(tag.name, tag.target_commit) for tag in refs.tags] == [("v0.0.1", result.commit)]
    assert result.roundtrip["files_identical"] and result.roundtrip["loaded"]
    assert result.roundtrip["perplexity"] == pytest.approx(result.roundtrip["verified_perplexity"], rel=1e-6)
    commit = remote(hub).list_repo_commits("test/tiny-w4a16")[0]
    assert commit.title.startswith("hubpub ") and "spec.yaml" in commit.title and "(v0.0.1)" in commit.title


def test_second_push_makes_no_commit_and_sends_no_bytes(staged: tuple[Path, Path], hub: HubServer) -> None:
    spec, workdir = staged
    (first,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    hub.requests.clear()
    (second,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert second.status == "unchanged" and second.commit == first.commit
    assert second.plan.bytes_to_send == 0
    assert routes(hub, "preupload", "lfs_batch", "lfs_upload", "commit") == []
    assert second.tag_status == "present"


def test_a_changed_file_commits_only_that_file(staged: tuple[Path, Path], hub: HubServer, tmp_path: Path) -> None:
    spec, workdir = staged
    api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    folder = next(workdir.glob("releases/*/staged"))
    client = remote(hub)
    target = HubTarget("url", hub.url, TOKEN)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "README.md").write_text("---\nlicense: apache-2.0\n---\n# changed card\n", encoding="utf-8")
    plan = plan_upload(client, "test/tiny-w4a16", copy)
    assert [change.path for change in plan.changed] == ["README.md"] and not plan.added and not plan.deleted
    hub.requests.clear()
    commit_plan(client, target, "test/tiny-w4a16", copy, plan, title="card", description="")
    assert routes(hub, "lfs_upload") == []
    assert client.list_repo_commits("test/tiny-w4a16")[0].title == "card"


def test_stale_parent_fails_cleanly(staged: tuple[Path, Path], hub: HubServer, tmp_path: Path) -> None:
    spec, workdir = staged
    api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    client = remote(hub)
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "notes.md").write_text("# new notes\n", encoding="utf-8")
    plan = plan_upload(client, "test/tiny-w4a16", folder)
    plan.deleted = []
    client.create_commit("test/tiny-w4a16", operations=[CommitOperationAdd("other.txt", b"x")], commit_message="other")
    head = client.model_info("test/tiny-w4a16").sha
    target = HubTarget("url", hub.url, TOKEN)
    with pytest.raises(PublishError, match="changed while publishing"):
        commit_plan(client, target, "test/tiny-w4a16", folder, plan, title="card", description="")
    assert client.model_info("test/tiny-w4a16").sha == head
    assert "notes.md" not in client.list_repo_files("test/tiny-w4a16")


@pytest.mark.parametrize("route", ["preupload", "lfs_batch", "lfs_upload"])
@pytest.mark.parametrize("status", [500, 429])
def test_transient_upload_failures_are_retried(
    staged: tuple[Path, Path], hub: HubServer, route: str, status: int
) -> None:
    spec, workdir = staged
    hub.faults.add(route, status=status)
    (result,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert result.status == "committed"
    assert routes(hub, route).count(route) >= 2


@pytest.mark.parametrize("status", [500, 429])
def test_failed_commit_post_is_retried_once_the_head_is_read(
    staged: tuple[Path, Path], hub: HubServer, status: int
) -> None:
    spec, workdir = staged
    hub.faults.add("commit", status=status)
    (result,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert result.status == "committed"
    assert len(remote(hub).list_repo_commits("test/tiny-w4a16")) == 2


def test_connection_dropped_mid_upload_then_succeeds(staged: tuple[Path, Path], hub: HubServer) -> None:
    spec, workdir = staged
    hub.faults.add("lfs_upload", status=0, drop_after_bytes=10_000)
    (result,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert result.status == "committed"


def test_persistent_commit_failure_leaves_the_remote_unchanged_and_a_rerun_completes(
    staged: tuple[Path, Path], hub: HubServer
) -> None:
    spec, workdir = staged
    hub.faults.add("commit", status=503, times=4)
    with pytest.raises(PublishError, match="remote is unchanged"):
        api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert remote(hub).list_repo_files("test/tiny-w4a16") == [".gitattributes"]
    (result,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert result.status == "committed"


def test_wrong_token_fails_and_writes_nothing(
    staged: tuple[Path, Path], hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec, workdir = staged
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(PublishError):
        api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert not list((tmp_path / "hub" / "repos").rglob("meta.json"))


def test_dry_run_writes_nothing(staged: tuple[Path, Path], hub: HubServer, tmp_path: Path) -> None:
    spec, workdir = staged
    (result,) = api.push([spec], workdir=workdir, hub=hub.url, dry_run=True)
    assert result.status == "dry-run"
    assert "model.safetensors" in [change.path for change in result.plan.added]
    assert not list((tmp_path / "hub" / "repos").rglob("meta.json"))


def test_guard_refuses_another_family_unless_forced(
    staged: tuple[Path, Path], hub: HubServer, tiny_llama: Path
) -> None:
    spec, workdir = staged
    api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    other = write_spec(spec.parent, tiny_llama, "family: another\n", name="other.yaml")
    api.release([other], workdir=workdir / "other", push=False)
    with pytest.raises(PublishError, match="holds a hubpub release from family 'tiny'"):
        api.push([other], workdir=workdir / "other", hub=hub.url, roundtrip=False)
    (forced,) = api.push([other], workdir=workdir / "other", hub=hub.url, roundtrip=False, force=True)
    assert forced.status == "committed"


def test_push_refuses_an_unstaged_release(hub: HubServer, tiny_llama: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    with pytest.raises(PublishError, match="not staged"):
        api.push([spec], workdir=tmp_path / "nothing", hub=hub.url)


def test_token_appears_nowhere(
    staged: tuple[Path, Path], hub: HubServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    spec, workdir = staged
    code, out, err = run_cli(["-v", "push", str(spec), "--workdir", str(workdir), "--hub", hub.url, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["status"] == "committed"
    hub.faults.add("commit", status=400)
    code, out2, err2 = run_cli(
        ["release", str(spec), "--workdir", str(workdir), "--hub", hub.url, "--force", "publish"], capsys
    )
    written = [path.read_bytes() for path in workdir.rglob("*") if path.is_file()]
    assert all(TOKEN.encode() not in content for content in written)
    assert TOKEN not in out + err + out2 + err2 + caplog.text


def test_dry_run_shows_the_readme_diff(staged: tuple[Path, Path], hub: HubServer, tmp_path: Path) -> None:
    spec, workdir = staged
    api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    remote(hub).upload_file(path_or_fileobj=b"# old card\n", path_in_repo="README.md", repo_id="test/tiny-w4a16")
    staged_card = next(workdir.glob("releases/*/staged")) / "README.md"
    original = staged_card.read_bytes()
    staged_card.unlink()
    staged_card.write_text("# new card\n", encoding="utf-8")
    try:
        (result,) = api.push([spec], workdir=workdir, hub=hub.url, dry_run=True)
    finally:
        staged_card.unlink()
        staged_card.write_bytes(original)
    assert [change.path for change in result.plan.changed] == ["README.md"]
    assert result.readme_diff is not None
    assert "-# old card" in result.readme_diff and "+# new card" in result.readme_diff
    assert remote(hub).list_repo_commits("test/tiny-w4a16")[0].title.startswith("Upload README.md")
