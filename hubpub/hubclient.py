"""Talking to a Hub: the target, the upload plan, one guarded commit with retries, tags.

Everything goes through huggingface_hub's `HfApi` with an explicit endpoint and token, so the
same code publishes to the embedded Hub, to huggingface.co or to any Hub-compatible URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpub.errors import PublishError

logger = logging.getLogger(__name__)

RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
COMMIT_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class HubTarget:
    """Where releases go. `label` is what the user chose: local, hf, or a URL."""

    label: str
    endpoint: str
    token: str = field(repr=False)

    def scrub(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def repo_url(self, repo_id: str) -> str:
        return f"{self.endpoint.rstrip('/')}/{repo_id}"


@contextmanager
def open_target(hub: str, *, local_dir: Path) -> Iterator[HubTarget]:
    """`local` starts the embedded Hub in this process for the duration; `hf` and URLs need a token."""
    if hub == "local":
        os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
        _disable_xet()
        from hubpub.hub import HubServer, Identity

        token = f"hf_local_{secrets.token_urlsafe(18)}"
        with HubServer(local_dir, tokens={token: Identity(name="hubpub")}) as server:
            yield HubTarget("local", server.url, token)
        return
    if hub == "hf":
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    elif hub.startswith(("http://", "https://")):
        endpoint = hub
        _disable_xet()
    else:
        raise PublishError(f"--hub {hub}: use local, hf, or a URL such as http://127.0.0.1:8765")
    found = os.environ.get("HF_TOKEN") or _stored_token()
    if not found:
        raise PublishError(f"no token for {endpoint}: set HF_TOKEN, or log in with `hf auth login`")
    yield HubTarget(hub, endpoint, found)


def _stored_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _disable_xet() -> None:
    # The embedded Hub and other Hub-compatible servers speak LFS; huggingface_hub checks this per call.
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_XET = True


def client(target: HubTarget) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=target.endpoint, token=target.token, library_name="hubpub")


@dataclass(frozen=True)
class FileChange:
    path: str
    size: int


@dataclass
class UploadPlan:
    """What a push would change on the remote: only these files are sent or deleted."""

    repo_exists: bool
    head: str | None
    added: list[FileChange] = field(default_factory=list)
    changed: list[FileChange] = field(default_factory=list)
    deleted: list[FileChange] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    @property
    def bytes_to_send(self) -> int:
        return sum(change.size for change in self.added + self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_exists": self.repo_exists,
            "head": self.head,
            "added": [change.path for change in self.added],
            "changed": [change.path for change in self.changed],
            "deleted": [change.path for change in self.deleted],
            "unchanged": self.unchanged,
            "bytes_to_send": self.bytes_to_send,
        }


def _local_ids(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read once."""
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % path.stat().st_size, usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


def plan_upload(api: Any, repo_id: str, folder: Path) -> UploadPlan:
    """Diff the folder against the remote head by sha256 (LFS files) or git blob id (the others)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.model_info(repo_id, files_metadata=True)
    except RepositoryNotFoundError:
        plan = UploadPlan(repo_exists=False, head=None)
        plan.added = [FileChange(path.relative_to(folder).as_posix(), path.stat().st_size) for path in _files(folder)]
        return plan
    remote = {sibling.rfilename: sibling for sibling in info.siblings or []}
    plan = UploadPlan(repo_exists=True, head=info.sha)
    local_paths = set()
    for path in _files(folder):
        name = path.relative_to(folder).as_posix()
        local_paths.add(name)
        change = FileChange(name, path.stat().st_size)
        sibling = remote.get(name)
        if sibling is None:
            plan.added.append(change)
            continue
        sha256, git_sha1 = _local_ids(path)
        same = sibling.lfs.sha256 == sha256 if sibling.lfs is not None else sibling.blob_id == git_sha1
        if same:
            plan.unchanged += 1
        else:
            plan.changed.append(change)
    plan.deleted = [
        FileChange(name, sibling.size or 0)
        for name, sibling in sorted(remote.items())
        if name not in local_paths and name != ".gitattributes"
    ]
    return plan


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def commit_plan(
    api: Any,
    target: HubTarget,
    repo_id: str,
    folder: Path,
    plan: UploadPlan,
    *,
    title: str,
    description: str,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Make one commit of the plan on top of `plan.head`; never makes the same commit twice.

    huggingface_hub retries the upload steps itself but not the commit POST. After a failed POST
    the remote head is read again: if our commit landed (the answer was lost), it is the result;
    if someone else's did, publishing stops; if nothing landed, the commit is tried again.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=change.path, path_or_fileobj=folder / change.path)
        for change in plan.added + plan.changed
    ]
    operations += [CommitOperationDelete(path_in_repo=change.path) for change in plan.deleted]
    return _commit(api, target, repo_id, operations, plan.head, title=title, description=description, sleep=sleep)


def commit_files(
    api: Any,
    target: HubTarget,
    repo_id: str,
    files: dict[str, bytes],
    *,
    parent: str,
    title: str,
    description: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """One commit that writes small files (path → content) on top of `parent`, with `commit_plan`'s retries."""
    from huggingface_hub import CommitOperationAdd

    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content) for path, content in files.items()]
    return _commit(api, target, repo_id, operations, parent, title=title, description=description, sleep=sleep)


def _commit(
    api: Any,
    target: HubTarget,
    repo_id: str,
    operations: list[Any],
    parent: str | None,
    *,
    title: str,
    description: str,
    sleep: Callable[[float], None],
) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(COMMIT_ATTEMPTS):
        try:
            info = api.create_commit(
                repo_id,
                operations=operations,
                commit_message=title,
                commit_description=description,
                parent_commit=parent,
            )
            return str(info.oid)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 412:
                raise PublishError(
                    f"{repo_id} changed while publishing (another commit landed on main); run the push again"
                ) from None
            if status not in RETRIABLE_STATUSES:
                raise PublishError(f"the Hub refused the commit to {repo_id}: {target.scrub(str(exc))}") from None
            failure = f"HTTP {status}"
        except OSError as exc:
            failure = type(exc).__name__
        except Exception as exc:
            if not _is_transport_error(exc):
                raise PublishError(f"publishing {repo_id} failed: {target.scrub(str(exc))}") from None
            failure = type(exc).__name__
        landed = _landed(api, repo_id, parent, title)
        if landed is not None:
            logger.info("the commit to %s landed although its answer was lost (%s)", repo_id, failure)
            return landed
        if attempt + 1 < COMMIT_ATTEMPTS:
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
            logger.warning("commit to %s failed (%s); retrying in %.0f s", repo_id, failure, delay)
            sleep(delay)
    raise PublishError(f"could not commit to {repo_id} after {COMMIT_ATTEMPTS} attempts; the remote is unchanged")


def _is_transport_error(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.TransportError)


def _landed(api: Any, repo_id: str, parent: str | None, title: str) -> str | None:
    head = api.model_info(repo_id).sha
    if head == parent:
        return None
    latest = api.list_repo_commits(repo_id)[0]
    if latest.title == title:
        return str(head)
    raise PublishError(f"{repo_id} changed while publishing (a commit by someone else landed); run the push again")


def ensure_tag(api: Any, repo_id: str, tag: str, commit: str) -> str:
    """Tag the release commit; an existing tag is never moved. Returns created, present or kept."""
    refs = api.list_repo_refs(repo_id)
    existing = {ref.name: ref.target_commit for ref in refs.tags}
    if tag not in existing:
        api.create_tag(repo_id, tag=tag, revision=commit, tag_message=f"hubpub release {tag}")
        return "created"
    if existing[tag] == commit:
        return "present"
    logger.warning("tag %s of %s already marks %s; it is not moved to %s", tag, repo_id, existing[tag], commit)
    return "kept"
