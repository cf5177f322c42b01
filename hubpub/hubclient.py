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
from typing import Any, Literal

from hubpub.errors import PublishError, UnfinishedPublishError

logger = logging.getLogger(__name__)

RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
COMMIT_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 2.0, 4.0)
READ_ATTEMPTS = 3


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


HUGGINGFACE_CO = "https://huggingface.co"
_IMPLICIT_TOKEN_ENV = "HF_HUB_DISABLE_IMPLICIT_TOKEN"


@dataclass(frozen=True)
class SourceHub:
    """Where base models, their configs and datasets are read from, with the token it may receive (False: none)."""

    endpoint: str
    token: str | Literal[False] = field(repr=False)


def environment_endpoint() -> str:
    """The Hub this environment names: $HF_ENDPOINT, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or HUGGINGFACE_CO).rstrip("/")


def token_for(endpoint: str) -> str | None:
    """The token hubpub may send to `endpoint`, or None.

    $HF_TOKEN belongs to the Hub it is given with: the environment's ($HF_ENDPOINT, else huggingface.co)
    or the `--hub URL` chosen beside it. The token `hf auth login` stored (in $HF_HOME) is the user's
    huggingface.co token: it goes to https://huggingface.co only, never to an $HF_ENDPOINT or URL that
    someone else may have set (a job's own listener).
    """
    given = os.environ.get("HF_TOKEN")
    if given:
        return given
    return _stored_token() if endpoint.rstrip("/") == HUGGINGFACE_CO else None


def source_hub() -> SourceHub:
    """The environment's Hub for reading bases and datasets; anonymous there when it may have no token."""
    endpoint = environment_endpoint()
    return SourceHub(endpoint, token_for(endpoint) or False)


@contextmanager
def implicit_token_guarded() -> Iterator[None]:
    """While it lasts, libraries that find the stored token themselves (datasets, lm-eval, in this process and in
    children started meanwhile) do not send it to an $HF_ENDPOINT that is not huggingface.co. Put back after, so
    a program that calls hubpub keeps its own setting."""
    if source_hub().token is not False:
        yield
        return
    from huggingface_hub import constants

    before = os.environ.get(_IMPLICIT_TOKEN_ENV), constants.HF_HUB_DISABLE_IMPLICIT_TOKEN
    os.environ[_IMPLICIT_TOKEN_ENV] = "1"
    constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    try:
        yield
    finally:
        if before[0] is None:
            os.environ.pop(_IMPLICIT_TOKEN_ENV, None)
        else:
            os.environ[_IMPLICIT_TOKEN_ENV] = before[0]
        constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = before[1]


@contextmanager
def open_target(hub: str, *, local_dir: Path, jobs: bool = False) -> Iterator[HubTarget]:
    """`local` starts the embedded Hub in this process for the duration (running Jobs with `jobs`); `hf` and
    URLs need a token.

    `hf` is the environment's Hub ($HF_ENDPOINT, else huggingface.co). The token is the one `token_for`
    allows for that endpoint: without one, publishing stops before anything is sent.
    """
    if hub == "local":
        os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
        _disable_xet()
        from hubpub.hub import HubServer, Identity

        token = f"hf_local_{secrets.token_urlsafe(18)}"
        with HubServer(local_dir, tokens={token: Identity(name="hubpub")}, jobs=jobs) as server:
            yield HubTarget("local", server.url, token)
        return
    if hub == "hf":
        endpoint = environment_endpoint()
    elif hub.startswith(("http://", "https://")):
        endpoint = hub
        _disable_xet()
    else:
        raise PublishError(f"--hub {hub}: use local, hf, or a URL such as http://127.0.0.1:8765")
    found = token_for(endpoint)
    if not found:
        how = (
            "set HF_TOKEN, or log in with `hf auth login`"
            if endpoint.rstrip("/") == HUGGINGFACE_CO
            else f"set HF_TOKEN (the token `hf auth login` stored is sent to {HUGGINGFACE_CO} only)"
        )
        raise PublishError(f"no token for {endpoint}: {how}")
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
class FileIds:
    """The names the Hub gives a file's content: its sha256 when stored in LFS, its git blob id otherwise."""

    sha256: str
    git_blob: str

    @classmethod
    def of_file(cls, path: Path) -> FileIds:
        with path.open("rb") as handle:
            return cls._of_blocks(path.stat().st_size, iter(lambda: handle.read(1 << 20), b""))

    @classmethod
    def of_bytes(cls, content: bytes) -> FileIds:
        return cls._of_blocks(len(content), iter((content,)))

    @classmethod
    def _of_blocks(cls, size: int, blocks: Iterator[bytes]) -> FileIds:
        sha256 = hashlib.sha256()
        git_blob = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
        for block in blocks:
            sha256.update(block)
            git_blob.update(block)
        return cls(sha256.hexdigest(), git_blob.hexdigest())

    def held_by(self, sibling: Any) -> bool:
        """Whether a file listed by `model_info(files_metadata=True)` has this content."""
        if sibling.lfs is not None:
            return bool(sibling.lfs.sha256 == self.sha256)
        return bool(sibling.blob_id == self.git_blob)


@dataclass(frozen=True)
class WantedTree:
    """What the remote must hold once a commit is done: every path of `files` with its content, none of `gone`."""

    files: dict[str, FileIds]
    gone: frozenset[str] = frozenset()

    def mismatches(self, remote: dict[str, Any]) -> list[str]:
        """The paths the remote files (by path) get wrong: missing, other content, or still there though gone."""
        wrong = [path for path, ids in self.files.items() if path not in remote or not ids.held_by(remote[path])]
        return sorted(wrong + [path for path in self.gone if path in remote])


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
    local: dict[str, FileIds] = field(default_factory=dict)
    """Every file of the folder with its content ids: what the remote must hold after the push."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    @property
    def bytes_to_send(self) -> int:
        return sum(change.size for change in self.added + self.changed)

    @property
    def wanted(self) -> WantedTree:
        return WantedTree(self.local, frozenset(change.path for change in self.deleted))

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


def plan_upload(api: Any, repo_id: str, folder: Path) -> UploadPlan:
    """Diff the folder against the remote head by sha256 (LFS files) or git blob id (the others)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    local = {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}
    ids = {name: FileIds.of_file(path) for name, path in local.items()}
    try:
        info = api.model_info(repo_id, files_metadata=True)
    except RepositoryNotFoundError:
        added = [FileChange(name, path.stat().st_size) for name, path in local.items()]
        return UploadPlan(repo_exists=False, head=None, added=added, local=ids)
    remote = {sibling.rfilename: sibling for sibling in info.siblings or []}
    plan = UploadPlan(repo_exists=True, head=info.sha, local=ids)
    for name, path in local.items():
        change = FileChange(name, path.stat().st_size)
        if name not in remote:
            plan.added.append(change)
        elif ids[name].held_by(remote[name]):
            plan.unchanged += 1
        else:
            plan.changed.append(change)
    plan.deleted = [
        FileChange(name, sibling.size or 0)
        for name, sibling in sorted(remote.items())
        if name not in local and name != ".gitattributes"
    ]
    return plan


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
    """Make the remote hold the folder as planned, with one commit on top of `plan.head`; returns its id.

    The commit is confirmed by the tree it landed (every file of the folder with its sha256 or git blob
    id, the deleted ones gone), never by its answer or title alone: see `_commit`.
    """
    sources: dict[str, Path | bytes] = {name: folder / name for name in plan.local}
    changes = [change.path for change in plan.added + plan.changed + plan.deleted]
    return _commit(api, target, repo_id, plan.wanted, sources, changes, plan.head, title, description, sleep)


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
    """One commit that writes small files (path → content) on top of `parent`, with `commit_plan`'s guarantees."""
    wanted = WantedTree({path: FileIds.of_bytes(content) for path, content in files.items()})
    sources: dict[str, Path | bytes] = dict(files)
    return _commit(api, target, repo_id, wanted, sources, list(files), parent, title, description, sleep)


@dataclass(frozen=True)
class _Remote:
    sha: str
    files: dict[str, Any]


_STALE_LINK = "the Hub refused an upload link it had issued (HTTP 403, as after a restart)"


def _commit(
    api: Any,
    target: HubTarget,
    repo_id: str,
    wanted: WantedTree,
    sources: dict[str, Path | bytes],
    changes: list[str],
    parent: str | None,
    title: str,
    description: str,
    sleep: Callable[[float], None],
) -> str:
    """Commit `changes` on top of `parent` until the remote tree is the wanted one; never the same commit twice.

    huggingface_hub retries the upload steps itself but not the commit POST; an answer can be lost after
    the commit landed, and a body cut short can land as a partial commit. So after every attempt, answered
    or not, the landed tree is read and compared with the wanted one. Complete: done. Unchanged: the commit
    is tried again (with fresh upload links). A partial commit of ours (our title, on our parent): what it
    misses is committed on top of it. Anything else means someone else committed, and publishing stops.
    """
    reader = _Reader(api, target, repo_id, sleep)
    operations = _operations(wanted, sources, changes)
    failure = ""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            info = api.create_commit(
                repo_id,
                operations=operations,
                commit_message=title,
                commit_description=description,
                parent_commit=parent,
            )
        except Exception as exc:
            failure = _retriable(exc) or ""
            if not failure:
                refused = f"the Hub refused the commit to {repo_id}" if _status(exc) else f"publishing {repo_id} failed"
                raise reader.stopped(f"{refused}: {_described(target, exc)}") from None
            remote = reader.tree(None)
        else:
            failure = ""
            remote = reader.tree(str(info.oid))
        reader.missing = wanted.mismatches(remote.files)
        if not reader.missing:
            if failure:
                logger.info("the commit to %s was confirmed by the tree it landed (%s)", repo_id, failure)
            return remote.sha
        if remote.sha != parent:
            if not reader.made_here(remote.sha, parent, title):
                raise reader.stopped(
                    f"{repo_id} changed while publishing (another commit, {remote.sha[:12]}, landed on main);"
                    " run the push again",
                    head=remote.sha,
                )
            reader.partial = parent = remote.sha
            failure = "a commit landed incomplete"
            if attempt + 1 < COMMIT_ATTEMPTS:
                logger.warning(
                    "commit %s to %s landed incomplete (%s); committing them on top of it",
                    remote.sha[:12],
                    repo_id,
                    _lacking(reader.missing),
                )
                operations = _operations(wanted, sources, reader.missing)
            continue
        failure = failure or "the Hub answered but made no commit"
        if attempt + 1 < COMMIT_ATTEMPTS:
            if failure == _STALE_LINK:
                logger.warning("commit to %s failed (%s); trying again with fresh upload links", repo_id, failure)
                continue
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
            logger.warning("commit to %s failed (%s); trying again in %.0f s", repo_id, failure, delay)
            sleep(delay)
    raise reader.stopped(f"could not commit to {repo_id} after {COMMIT_ATTEMPTS} attempts (last: {failure})")


def _operations(wanted: WantedTree, sources: dict[str, Path | bytes], paths: list[str]) -> list[Any]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=sources[path])
        for path in sorted(paths)
        if path in wanted.files
    ]
    return operations + [CommitOperationDelete(path_in_repo=path) for path in sorted(paths) if path in wanted.gone]


@dataclass
class _Reader:
    """Reads the remote back during a commit, and says what it holds when publishing stops."""

    api: Any
    target: HubTarget
    repo_id: str
    sleep: Callable[[float], None]
    partial: str | None = None
    """The incomplete commit of ours main is at, once one landed."""
    missing: list[str] = field(default_factory=list)

    def tree(self, revision: str | None) -> _Remote:
        """The head (or `revision`) with its files, with their content ids."""
        info = self._read(lambda: self.api.model_info(self.repo_id, revision=revision, files_metadata=True))
        return _Remote(str(info.sha), {sibling.rfilename: sibling for sibling in info.siblings or []})

    def made_here(self, sha: str, parent: str | None, title: str) -> bool:
        """Whether commit `sha` has our title and our parent: ours, whatever its answer was."""
        commits = self._read(lambda: self.api.list_repo_commits(self.repo_id, revision=sha))
        on_parent = parent is None or (len(commits) > 1 and commits[1].commit_id == parent)
        return bool(commits) and commits[0].title == title and on_parent

    def _read(self, call: Callable[[], Any]) -> Any:
        for attempt in range(READ_ATTEMPTS):
            try:
                return call()
            except Exception as exc:
                failure = _retriable(exc)
                if not failure or attempt + 1 == READ_ATTEMPTS:
                    raise UnfinishedPublishError(
                        f"could not read {self.repo_id} back after a commit attempt ({_described(self.target, exc)}),"
                        " so what it holds now is unknown. To repair: `hubpub push --dry-run` shows what differs"
                        " from the staged release, and `hubpub push` sends only that, then tags"
                    ) from None
                self.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
        raise AssertionError("unreachable")

    def stopped(self, reason: str, *, head: str | None = None) -> PublishError:
        """The error to stop with, saying what main holds; `head` when main moved to a commit not made here."""
        if self.partial is None:
            return PublishError(reason if head else f"{reason}; the remote is unchanged")
        at = f"{self.partial[:12]}, a partial commit of this release"
        if head is not None and head != self.partial:
            at = f"{head[:12]}, a commit made elsewhere after this push's partial commit {self.partial[:12]}"
        return UnfinishedPublishError(
            f"{reason}.\nOn the Hub: main of {self.repo_id} is at {at} ({_lacking(self.missing)}); no tag was made."
            "\nTo repair: run the push again; it sends only what is missing, and tags once the release is complete"
        )


def _lacking(paths: list[str]) -> str:
    more = len(paths) - 5
    return ", ".join(paths[:5]) + (f" and {more} more" if more > 0 else "") + " missing or stale"


def _retriable(exc: BaseException) -> str | None:
    """What went wrong, when it is worth trying again once the remote was read; None when it is not."""
    import httpx

    status = _status(exc)
    if status == 403 and _transfer_link(exc):
        return _STALE_LINK
    if status == 412:
        return "another commit landed first (HTTP 412)"
    if status is not None:
        return f"HTTP {status}" if status in RETRIABLE_STATUSES else None
    transport = [error for error in _causes(exc) if isinstance(error, (OSError, httpx.TransportError))]
    return type(transport[0]).__name__ if transport else None


def _http_error(exc: BaseException) -> Any:
    from huggingface_hub.errors import HfHubHTTPError

    return next((error for error in _causes(exc) if isinstance(error, HfHubHTTPError)), None)


def _status(exc: BaseException) -> int | None:
    """The HTTP status the Hub answered with, also when huggingface_hub wrapped the error."""
    error = _http_error(exc)
    return int(error.response.status_code) if error is not None and error.response is not None else None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from (huggingface_hub wraps upload errors in RuntimeError)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def _transfer_link(exc: BaseException) -> bool:
    """Whether the refused request went to an LFS upload or verify link the batch issued, not to the Hub's API."""
    try:
        path = str(_http_error(exc).response.request.url.path)
    except (AttributeError, RuntimeError):
        return False
    return "/api/" not in path and not path.endswith("/info/lfs/objects/batch")


def _described(target: HubTarget, exc: BaseException) -> str:
    text = str(exc)
    if exc.__cause__ is not None:
        text = f"{text} ({exc.__cause__})"
    return target.scrub(text or type(exc).__name__)


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
