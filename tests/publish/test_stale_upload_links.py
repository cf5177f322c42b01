"""Upload links the Hub issued and then refuses (403, as after a restart) are replaced by fresh ones, a few times."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub import api
from hubpub.errors import PublishError
from hubpub.hub import HubServer
from hubpub.hubclient import COMMIT_ATTEMPTS
from tests.publish.conftest import REPO_ID, remote, routes


def statuses(hub: HubServer, route: str) -> list[int]:
    return [status for _, name, status in hub.requests if name == route]


@pytest.mark.parametrize("route", ["lfs_upload", "lfs_verify"])
def test_a_refused_upload_or_verify_link_is_asked_for_again(
    staged: tuple[Path, Path], hub: HubServer, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec, workdir = staged
    hub.faults.add(route, status=403)
    (result,) = api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert result.status == "committed" and result.tag_status == "created"
    assert statuses(hub, route)[0] == 403
    assert statuses(hub, "lfs_batch") == [200, 200], "a second batch gave fresh links"
    assert len(remote(hub).list_repo_commits(REPO_ID)) == 2, "the repo's first commit and the release"
    assert "trying again with fresh upload links" in caplog.text


def test_links_refused_every_time_are_asked_for_a_bounded_number_of_times(
    staged: tuple[Path, Path], hub: HubServer
) -> None:
    spec, workdir = staged
    hub.faults.add("lfs_upload", status=403, times=100)
    with pytest.raises(PublishError, match=r"refused an upload link it had issued.*; the remote is unchanged"):
        api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert statuses(hub, "lfs_batch") == [200] * COMMIT_ATTEMPTS
    assert routes(hub, "commit") == []
    assert remote(hub).list_repo_files(REPO_ID) == [".gitattributes"]


def test_a_refused_batch_is_a_refusal_not_a_stale_link(staged: tuple[Path, Path], hub: HubServer) -> None:
    spec, workdir = staged
    hub.faults.add("lfs_batch", status=403, times=100)
    with pytest.raises(PublishError, match="the Hub refused the commit"):
        api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)
    assert statuses(hub, "lfs_batch") == [403]
