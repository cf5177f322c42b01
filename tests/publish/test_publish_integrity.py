"""Publish integrity: a commit counts by the tree it landed, and the tag comes only after the round trip.

`hubpub push` and `hubpub release` talk to a real embedded Hub through a proxy that cuts the first
commit request's body short and drops the answer. The server of today commits what arrived; a
hardened one refuses the short body. Either way the remote must end unchanged or complete (every
staged file with its sha256 or git blob id), a tag must mark only a complete commit, and the exit
status must say which.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd

from hubpub import hubclient
from hubpub.hub import HubServer
from hubpub.stages import publish as publish_stage
from tests.conftest import run_cli
from tests.publish.conftest import REPO_ID, remote, staged_folder
from tests.publish.cutting_proxy import CutCommit, CuttingProxy, after_lines, before_last_line, into_line, whole

TAG = "v0.0.1"


def content_ids(folder: Path) -> dict[str, tuple[str, str]]:
    """(sha256, git blob id) of every file of the folder, by path."""
    ids = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
            ids[path.relative_to(folder).as_posix()] = (hashlib.sha256(data).hexdigest(), blob)
    return ids


def differences(hub: HubServer, folder: Path, revision: str | None = None) -> list[str]:
    """The staged files a remote revision lacks or holds with other content, and the files it has beyond them."""
    info = remote(hub).model_info(REPO_ID, revision=revision, files_metadata=True)
    found = {sibling.rfilename: sibling for sibling in info.siblings or [] if sibling.rfilename != ".gitattributes"}
    wrong = []
    for path, (sha256, blob) in content_ids(folder).items():
        sibling = found.pop(path, None)
        held = None if sibling is None else sibling.lfs.sha256 if sibling.lfs else sibling.blob_id
        if sibling is None or held != (sha256 if sibling.lfs else blob):
            wrong.append(path)
    return sorted(wrong + list(found))


def tags(hub: HubServer) -> dict[str, str]:
    return {tag.name: tag.target_commit for tag in remote(hub).list_repo_refs(REPO_ID).tags}


def head(hub: HubServer) -> str:
    return str(remote(hub).model_info(REPO_ID).sha)


def seed_older_release(hub: HubServer, folder: Path) -> str:
    """The repo as an older version of the release left it: another card, other weights, the same manifest."""
    client = remote(hub)
    client.create_repo(REPO_ID)
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    operations = [
        CommitOperationAdd(path, folder / path)
        for path in content_ids(folder)
        if path not in ("README.md", "model.safetensors")
    ]
    operations += [
        CommitOperationAdd("README.md", b"---\nlicense: apache-2.0\n---\n# The older card\n"),
        CommitOperationAdd("model.safetensors", bytes(weights)),
    ]
    return str(client.create_commit(REPO_ID, operations=operations, commit_message="the older release").oid)


def outcome(hub: HubServer, folder: Path, pushed: Pushed) -> str:
    """What a push left, checked against its exit: complete and tagged (0), unchanged (5) or partial (6)."""
    message = " ".join(pushed.err.split())
    for name, commit in tags(hub).items():
        assert differences(hub, folder, commit) == [], f"tag {name} marks an incomplete commit"
    if pushed.code == 0:
        assert differences(hub, folder) == [], message
        assert tags(hub) == {TAG: head(hub)}
        return "complete"
    assert TAG not in tags(hub)
    if head(hub) == pushed.before:
        assert pushed.code == 5 and "the remote is unchanged" in message, message
        return "unchanged"
    assert pushed.code == 6, message
    assert (
        f"On the Hub: main of {REPO_ID} is at {head(hub)[:12]}" in message
        and "To repair: run the push again" in message
    )
    return "partial"


@dataclass(frozen=True)
class Pushed:
    before: str | None
    cut: list[CutCommit]
    code: int
    out: str
    err: str


def push_over_an_older_release(
    staged: tuple[Path, Path],
    hub: HubServer,
    capsys: pytest.CaptureFixture[str],
    *flags: str,
    keep: Callable[[bytes], int],
    forward_reply: bool = False,
    cuts: int = 1,
) -> Pushed:
    """`hubpub push` through a cutting proxy, onto a repo that holds an older version of the release."""
    spec, workdir = staged
    before = seed_older_release(hub, staged_folder(workdir))
    with CuttingProxy(hub.url, keep=keep, forward_reply=forward_reply, cuts=cuts) as proxy:
        code, out, err = run_cli(["push", str(spec), "--workdir", str(workdir), "--hub", proxy.url, *flags], capsys)
    return Pushed(before, proxy.cut, code, out, err)


def tagged_after_the_round_trip(hub: HubServer) -> bool:
    routes = [route for _, route, _ in hub.requests]
    if routes.count("tag") != 1:
        return False
    # Downloads after the tag are the family's collection sync reading the published manifests.
    tag = routes.index("tag")
    last_commit = max(index for index, route in enumerate(routes[:tag]) if route == "commit")
    return "resolve" in routes[last_commit:tag]


@pytest.mark.parametrize("roundtrip", [False, True], ids=["no-roundtrip", "roundtrip"])
def test_a_commit_cut_between_the_new_card_and_the_new_weights_is_completed_before_the_tag(
    staged: tuple[Path, Path], hub: HubServer, capsys: pytest.CaptureFixture[str], roundtrip: bool
) -> None:
    flags = [] if roundtrip else ["--no-roundtrip"]
    pushed = push_over_an_older_release(staged, hub, capsys, *flags, keep=after_lines(2))
    (cut,) = pushed.cut
    assert cut.sent < cut.declared
    assert outcome(hub, staged_folder(staged[1]), pushed) == "complete"
    on_top = [commit.commit_id for commit in remote(hub).list_repo_commits(REPO_ID)]
    assert 1 <= on_top.index(pushed.before) <= 2, "the cut commit and at most one that completes it"
    if roundtrip:
        assert "verified downloaded, byte-identical" in pushed.out
        assert tagged_after_the_round_trip(hub)
    else:
        assert "no round trip ran (--no-roundtrip)" in " ".join(pushed.out.split())


def test_a_body_cut_inside_a_line_commits_nothing_and_the_retry_completes(
    staged: tuple[Path, Path], hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = push_over_an_older_release(staged, hub, capsys, "--no-roundtrip", keep=into_line(1, 40))
    assert [cut.status for cut in pushed.cut] == [400]
    assert outcome(hub, staged_folder(staged[1]), pushed) == "complete"
    assert [commit.commit_id for commit in remote(hub).list_repo_commits(REPO_ID)][1] == pushed.before


def test_a_cut_body_whose_answer_arrives_is_never_taken_for_the_release(
    staged: tuple[Path, Path], hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Today's server commits the cut body and answers 200; a hardened one answers 400. Neither gets tagged."""
    pushed = push_over_an_older_release(staged, hub, capsys, "--no-roundtrip", keep=after_lines(2), forward_reply=True)
    assert outcome(hub, staged_folder(staged[1]), pushed) in ("complete", "unchanged")


def test_a_commit_whose_answer_was_lost_is_confirmed_by_its_tree_and_tagged_after_the_round_trip(
    staged: tuple[Path, Path],
    hub: HubServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec, workdir = staged
    folder = staged_folder(workdir)
    with CuttingProxy(hub.url, keep=whole) as proxy:
        code, out, err = run_cli(["-v", "release", str(spec), "--workdir", str(workdir), "--hub", proxy.url], capsys)
    released = Pushed(None, proxy.cut, code, out, err)
    assert [(cut.sent == cut.declared, cut.status) for cut in released.cut] == [(True, 200)]
    assert outcome(hub, folder, released) == "complete"
    assert len(remote(hub).list_repo_commits(REPO_ID)) == 2, "the repo's first commit and the release, made once"
    assert "confirmed by the tree it landed" in " ".join((caplog.text + err).split())
    assert "verified downloaded, byte-identical" in out
    assert tagged_after_the_round_trip(hub)


def test_a_failed_round_trip_leaves_no_tag_and_says_what_is_on_the_hub(
    staged: tuple[Path, Path], hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, workdir = staged
    folder = staged_folder(workdir)
    tolerance = publish_stage.PERPLEXITY_TOLERANCE
    monkeypatch.setattr(publish_stage, "PERPLEXITY_TOLERANCE", -1.0)  # no perplexity passes
    code, _, err = run_cli(["push", str(spec), "--workdir", str(workdir), "--hub", hub.url], capsys)
    message = " ".join(err.split())
    assert code == 6, message
    assert differences(hub, folder) == [] and tags(hub) == {}
    assert "measures perplexity" in message
    assert f"On the Hub: main of {REPO_ID} is at {head(hub)[:12]}" in message
    assert f"failed the round trip; this push did not tag it {TAG}" in message
    assert "To repair: fix the cause, then run the push again" in message
    monkeypatch.setattr(publish_stage, "PERPLEXITY_TOLERANCE", tolerance)
    code, out, err = run_cli(["push", str(spec), "--workdir", str(workdir), "--hub", hub.url], capsys)
    assert code == 0, err
    assert "unchanged" in out and tags(hub) == {TAG: head(hub)}


def test_a_partial_commit_that_cannot_be_completed_says_so_and_a_rerun_completes_it(
    staged: tuple[Path, Path], hub: HubServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, workdir = staged
    monkeypatch.setattr(hubclient, "BACKOFF_SECONDS", (0.0,))
    pushed = push_over_an_older_release(
        staged, hub, capsys, "--no-roundtrip", keep=before_last_line, cuts=hubclient.COMMIT_ATTEMPTS
    )
    assert len(pushed.cut) == hubclient.COMMIT_ATTEMPTS
    left = outcome(hub, staged_folder(workdir), pushed)
    assert left in ("unchanged", "partial")
    if left == "partial":
        assert "(model.safetensors missing or stale); no tag was made" in " ".join(pushed.err.split())
    code, out, err = run_cli(["push", str(spec), "--workdir", str(workdir), "--hub", hub.url, "--no-roundtrip"], capsys)
    assert outcome(hub, staged_folder(workdir), Pushed(pushed.before, [], code, out, err)) == "complete"
