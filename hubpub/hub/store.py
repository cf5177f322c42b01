"""Repositories, commits, refs and objects of the embedded Hub, persisted under one folder.

Layout (store layout 2):

    store.json     the layout version
    lock           flock'ed around every write, so several processes can share one store
    signing-key    signs LFS upload links, so links stay valid across restarts
    tmp/           partial files and staged repos; what a killed process left is removed at open
    repos/<type>s/<namespace>/<name>/
                   meta.json, refs.json, commits/<sha>.json (each records its whole tree),
                   blobs/<git sha1> (regular files), lfs/<sha256> (LFS objects uploaded to this repo)
    collections/<namespace>/<24 hex id>.json
                   one collection each: title, description, visibility and its items in order

Every write lands by rename while the lock is held; a repo appears and disappears in one rename.
Each LFS object belongs to one repo: knowing a sha256 never lets another repo link it.
The store is its owner's alone: folders 0700, files 0600 (a store found looser is tightened at open).
No read follows a symbolic link: a link anywhere below the root is refused, never read through.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import yaml

from hubpub.hub import validation
from hubpub.hub.errors import HubConfigError, HubError
from hubpub.hub.validation import REPO_TYPES as REPO_TYPES

LAYOUT = 2
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.safetensors",
        "*.bin",
        "*.gguf",
        "*.pt",
        "*.pth",
        "*.ckpt",
        "*.h5",
        "*.onnx",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.parquet",
        "*.arrow",
        "*.zip",
        "*.tar.gz",
        "*.model",
        "*tfevents*",
    )
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


class CardMetadataError(ValueError):
    """A model card's metadata block that is not a YAML mapping the Hub would take."""


def card_metadata(text: str) -> dict[str, Any] | None:
    """The YAML metadata block at the top of a model card; None when there is none.

    A block over MAX_CARD_METADATA characters, whose aliases expand past MAX_CARD_NODES nodes (a
    "billion laughs" card), or nested deeper than MAX_CARD_DEPTH (deeper than JSON answers can encode),
    is refused before it is built, like invalid YAML and non-mappings.
    """
    match = FRONT_MATTER.match(text)
    if not match or not match.group(1).strip():
        return None
    source = match.group(1)
    if len(source) > MAX_CARD_METADATA:
        raise CardMetadataError(f"README.md metadata is over {MAX_CARD_METADATA} characters")
    try:
        nodes, depth = expanded_yaml_nodes(yaml.compose(source, Loader=_SAFE_LOADER))
        if nodes > MAX_CARD_NODES:
            raise CardMetadataError(f"README.md metadata expands to more than {MAX_CARD_NODES} YAML nodes")
        if depth > MAX_CARD_DEPTH:
            raise CardMetadataError(f"README.md metadata is nested more than {MAX_CARD_DEPTH} levels deep")
        data = yaml.load(source, Loader=_SAFE_LOADER)
    except (yaml.YAMLError, RecursionError) as exc:
        raise CardMetadataError(f"Invalid YAML in README.md metadata: {type(exc).__name__}: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise CardMetadataError("README.md metadata must be a mapping")
    return data


def front_matter(text: str) -> dict[str, Any] | None:
    """The card's metadata, or None when it is absent or not one the Hub would take."""
    try:
        return card_metadata(text)
    except CardMetadataError:
        return None


MAX_CARD_METADATA = 256 << 10
"""Characters; parsing costs about 1 s per MiB, once per README (the pages and the API cache it)."""
# libyaml refuses deep nesting at once; the pure-Python loader takes seconds to reach its recursion limit.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_CARD_NODES = 100_000
MAX_CARD_DEPTH = 100


def expanded_yaml_nodes(node: yaml.Node | None, budget: int = MAX_CARD_NODES) -> tuple[int, int]:
    """How many nodes a composed document has once aliases are expanded, and how deep it is nested, counting no
    further than past `budget` nodes."""
    count = deepest = 0
    pending = [(node, 1)] if node is not None else []
    while pending and count <= budget:
        current, depth = pending.pop()
        count += 1
        deepest = max(deepest, depth)
        if isinstance(current, yaml.SequenceNode):
            pending.extend((item, depth + 1) for item in current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                pending.extend(((key, depth + 1), (value, depth + 1)))
    return count, deepest


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


@dataclass(frozen=True)
class Entry:
    """A file in a commit's tree. LFS files carry their sha256; `oid` is always the git blob id."""

    oid: str
    size: int
    lfs_sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"oid": self.oid, "size": self.size}
        if self.lfs_sha256:
            data["lfs"] = self.lfs_sha256
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(oid=data["oid"], size=data["size"], lfs_sha256=data.get("lfs"))

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.oid


@dataclass(frozen=True)
class Repo:
    type: str
    namespace: str
    name: str

    @classmethod
    def checked(cls, kind: object, namespace: object, name: object) -> Repo:
        """A repo from untrusted parts: each is held to the Hub's rules (400 otherwise)."""
        return cls(
            validation.repo_type(kind),
            validation.repo_part(namespace, "namespace"),
            validation.repo_part(name, "repo name"),
        )

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class SpooledBlob:
    """A regular file's content, kept in a spool file instead of memory."""

    spool: Spool
    offset: int
    size: int
    oid: str


@dataclass(frozen=True)
class Operation:
    kind: str  # "file", "lfsFile", "deletedFile", "deletedFolder"
    path: str
    content: bytes = b""
    sha256: str = ""
    size: int | None = None
    blob: SpooledBlob | None = None
    """A regular file's content when it waits in a spool file (large commits) instead of `content`."""


@dataclass(frozen=True)
class NewCommit:
    """A commit to make: operations on top of a branch, and who says what about them."""

    branch: str
    operations: tuple[Operation, ...]
    title: str
    message: str
    author: str
    parent_commit: str | None = None


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class Spool:
    """A temporary file in the store's tmp/ that holds a large body or the files of a commit, instead of memory.

    It is flock'ed while open, so a store opened meanwhile by another process leaves it alone; closing
    removes it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def append(self, data: bytes) -> int:
        """Write `data` at the end; its offset."""
        offset = self.size
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, self.size)
            view = view[written:]
            self.size += written
        return offset

    def keep(self, content: bytes) -> SpooledBlob:
        return SpooledBlob(self, self.append(content), len(content), git_blob_sha1(content))

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    @contextmanager
    def reader(self) -> Iterator[BinaryIO]:
        """The spool from its start, as a file to read (lines and all)."""
        handle = os.fdopen(os.dup(self._fd), "rb")
        try:
            handle.seek(0)
            yield handle
        finally:
            handle.close()

    def close(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


class HubStore:
    """One folder of repos, safe to share between threads and between processes."""

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.root = root.resolve()
            self._make_private()
            for folder in ("repos", "tmp"):
                (self.root / folder).mkdir(exist_ok=True, mode=0o700)
            self._lock_fd: int | None = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise HubConfigError(f"cannot open the Hub store at {root}: {exc}") from None
        self._thread_lock = threading.RLock()
        self._depth = 0
        with self.write_lock():
            self._upgrade_layout()
            self._remove_leftovers()
            self.signing_key = self._load_signing_key()

    def close(self) -> None:
        with self._thread_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Held around every write: a thread lock within this process, an flock between processes."""
        with self._thread_lock:
            if self._lock_fd is None:
                raise HubError(503, "the Hub store is closed")
            if self._depth == 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _make_private(self) -> None:
        """Root 0700; a store made before that (or by hand) has its folders made 0700 and its files 0600."""
        if stat.S_IMODE(os.stat(self.root).st_mode) & 0o077 == 0:
            return
        os.chmod(self.root, 0o700)
        for parent, folders, files in os.walk(self.root):
            for name in folders + files:
                path = os.path.join(parent, name)
                with suppress(FileNotFoundError):
                    mode = os.lstat(path).st_mode
                    if stat.S_ISDIR(mode) and stat.S_IMODE(mode) & 0o077:
                        os.chmod(path, 0o700)
                    elif stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
                        os.chmod(path, 0o600)

    # -- paths ---------------------------------------------------------------------------------
    def inside(self, path: Path) -> Path:
        """`path`, once it is below the root with no symbolic link on the way (as far as it exists)."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            raise HubError(400, "Invalid path: it leads outside the Hub's store") from None
        if ".." in parts:
            raise HubError(400, "Invalid path: it leads outside the Hub's store")
        current = self.root
        for part in parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break
            if stat.S_ISLNK(mode):
                raise _link_found()
        return path

    def open_file(self, path: Path) -> int:
        """A descriptor of a regular file below the root, opened without following a symbolic link on the way."""
        parts = self.inside(path).relative_to(self.root).parts
        if not parts:
            raise HubError(400, "Invalid path: it names the Hub's store itself")
        folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
                os.close(folder)
                folder = inner
            handle = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _link_found() from None
            raise
        finally:
            os.close(folder)
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            raise _link_found()
        os.set_blocking(handle, True)
        return handle

    def read_file(self, path: Path) -> bytes:
        with os.fdopen(self.open_file(path), "rb") as handle:
            return handle.read()

    def read_json(self, path: Path) -> Any:
        return json.loads(self.read_file(path).decode("utf-8"))

    def _regular_size(self, path: Path) -> int | None:
        """The size of a regular file below the root; None when it is missing (or is not one)."""
        try:
            info = os.lstat(self.inside(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def make_folder(self, path: Path) -> Path:
        """`path` and the folders above it up to the root, each made 0700 where it is missing."""
        current = self.root
        for part in self.inside(path).relative_to(self.root).parts:
            current = current / part
            with suppress(FileExistsError):
                current.mkdir(mode=0o700)
        return self.inside(path)

    @contextmanager
    def spool(self) -> Iterator[Spool]:
        """A temporary file in tmp/ for what would not fit in memory; removed when the block ends."""
        spool = Spool(self._temporary("spool"))
        try:
            yield spool
        finally:
            spool.close()

    def repo_dir(self, repo: Repo) -> Path:
        checked = Repo.checked(repo.type, repo.namespace, repo.name)
        return self.inside(self.root / "repos" / f"{checked.type}s" / checked.namespace / checked.name)

    def _lfs_file(self, folder: Path, sha256: str) -> Path:
        return self.inside(folder / "lfs" / validation.lfs_oid(sha256))

    def _temporary(self, purpose: str) -> Path:
        return self.root / "tmp" / f"{purpose}-{os.getpid()}-{secrets.token_hex(8)}"

    # -- repos ---------------------------------------------------------------------------------
    def repos(self, kind: str) -> list[Repo]:
        """Every repo of one type, by its folder; a folder whose name breaks the Hub's rules holds no repo."""
        found = []
        for namespace in subfolders(self.root / "repos" / f"{validation.repo_type(kind)}s"):
            for folder in subfolders(namespace):
                if self._regular_size(folder / "meta.json") is None:
                    continue
                try:
                    found.append(Repo.checked(kind, namespace.name, folder.name))
                except HubError:
                    continue
        return sorted(found, key=lambda repo: (repo.namespace, repo.name))

    def storage(self, repo: Repo) -> int:
        """Bytes the repo's objects take: every blob and LFS object it holds, in any commit."""
        folder = self.repo_dir(repo)
        total = 0
        for part in ("blobs", "lfs"):
            with os.scandir(folder / part) as entries:
                total += sum(entry.stat().st_size for entry in entries if entry.is_file(follow_symlinks=False))
        return total

    def exists(self, repo: Repo) -> bool:
        return self._regular_size(self.repo_dir(repo) / "meta.json") is not None

    def meta(self, repo: Repo) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = self.read_json(self.repo_dir(repo) / "meta.json")
        except (FileNotFoundError, NotADirectoryError):
            raise HubError(404, f"Repository Not Found: {repo.id}", "RepoNotFound") from None
        return meta

    def create_repo(self, repo: Repo, *, private: bool, author: str) -> bool:
        """Create the repo with the Hub's initial `.gitattributes` commit, in one rename; False when it exists."""
        with self.write_lock():
            folder = self.repo_dir(repo)
            if self.exists(repo):
                return False
            if folder.exists():
                # A repo half-made by a hubpub whose creation was not yet atomic.
                self._discard(folder)
            staging = self._temporary("repo")
            staging.mkdir(mode=0o700)
            for part in ("commits", "blobs", "lfs"):
                (staging / part).mkdir(mode=0o700)
            self.write_json(staging / "refs.json", {"branches": {}, "tags": {}})
            self.write_json(staging / "meta.json", {"private": private, "createdAt": now_iso()})
            gitattributes = Operation("file", ".gitattributes", DEFAULT_GITATTRIBUTES.encode())
            initial = NewCommit("main", (gitattributes,), title="initial commit", message="", author=author)
            self._commit_in(staging, initial, create_branch=True)
            self.make_folder(folder.parent)
            os.rename(staging, folder)
            return True

    def delete_repo(self, repo: Repo) -> None:
        with self.write_lock():
            self.meta(repo)
            self._discard(self.repo_dir(repo))

    def set_private(self, repo: Repo, private: bool) -> None:
        with self.write_lock():
            meta = self.meta(repo)
            meta["private"] = private
            self.write_json(self.repo_dir(repo) / "meta.json", meta)

    # -- refs and commits ----------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, dict[str, str]]:
        self.meta(repo)
        return self._read_refs(self.repo_dir(repo))

    def resolve(self, repo: Repo, revision: str) -> str:
        """The commit sha a full commit id, branch, tag or unique prefix (7+ hex digits) names; 404 otherwise."""
        refs = self.refs(repo)
        commits = self.repo_dir(repo) / "commits"
        if _FULL_SHA.fullmatch(revision) and self._regular_size(commits / f"{revision}.json") is not None:
            return revision
        branch = revision.removeprefix("refs/heads/")
        if branch in refs["branches"]:
            return refs["branches"][branch]
        tag = revision.removeprefix("refs/tags/")
        if tag in refs["tags"]:
            return refs["tags"][tag]
        if _SHA_PREFIX.fullmatch(revision):
            matches = [path.stem for path in commits.glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, f"Invalid rev id: {validation.shown(revision)}", "RevisionNotFound")

    def read_commit(self, repo: Repo, sha: str) -> dict[str, Any]:
        path = self.repo_dir(repo) / "commits" / f"{validation.commit_id(sha)}.json"
        commit: dict[str, Any] = self.read_json(path)
        return commit

    def tree(self, repo: Repo, sha: str) -> dict[str, Entry]:
        return {path: Entry.from_json(data) for path, data in self.read_commit(repo, sha)["tree"].items()}

    def history(self, repo: Repo, sha: str) -> Iterator[dict[str, Any]]:
        current: str | None = sha
        while current:
            commit = self.read_commit(repo, current)
            yield commit
            current = commit["parent"]

    def commit(self, repo: Repo, change: NewCommit) -> str:
        """Apply the operations on top of the branch head as one commit and move the branch.

        `parent_commit`, when given, must be the branch head (412 otherwise). Nothing is written
        unless every operation applies and the resulting tree is valid.
        """
        with self.write_lock():
            self.meta(repo)
            return self._commit_in(self.repo_dir(repo), change)

    def _commit_in(self, folder: Path, change: NewCommit, *, create_branch: bool = False) -> str:
        refs = self._read_refs(folder)
        head = refs["branches"].get(change.branch)
        if head is None and not create_branch:
            raise HubError(404, f"Invalid rev id: {validation.shown(change.branch)}", "RevisionNotFound")
        if change.parent_commit is not None and change.parent_commit != head:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        tree: dict[str, Any] = {}
        if head:
            tree = self.read_json(folder / "commits" / f"{head}.json")["tree"]
        new_blobs: dict[str, bytes | SpooledBlob] = {}
        for operation in change.operations:
            self._apply(folder, tree, operation, new_blobs)
        validation.tree_shape(tree)
        for oid, content in new_blobs.items():
            blob = folder / "blobs" / oid
            if self._regular_size(blob) is None:
                self._write_bytes(blob, content)
        body = {
            "parent": head,
            "tree": tree,
            "title": change.title,
            "message": change.message,
            "author": change.author,
            "date": now_iso(),
        }
        sha = hashlib.sha1(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
        self.write_json(folder / "commits" / f"{sha}.json", {"id": sha, **body})
        refs["branches"][change.branch] = sha
        self.write_json(folder / "refs.json", refs)
        return sha

    def _apply(
        self, folder: Path, tree: dict[str, Any], operation: Operation, new_blobs: dict[str, bytes | SpooledBlob]
    ) -> None:
        if operation.kind == "file" and operation.blob is not None:
            new_blobs[operation.blob.oid] = operation.blob
            tree[operation.path] = {"oid": operation.blob.oid, "size": operation.blob.size}
        elif operation.kind == "file":
            oid = git_blob_sha1(operation.content)
            new_blobs[oid] = operation.content
            tree[operation.path] = {"oid": oid, "size": len(operation.content)}
        elif operation.kind == "lfsFile":
            size = self._regular_size(self._lfs_file(folder, operation.sha256))
            if size is None:
                raise HubError(422, f"LFS object {operation.sha256} of {operation.path} was not uploaded to this repo")
            if operation.size is not None and operation.size != size:
                raise HubError(400, f"LFS object {operation.sha256} has {size} bytes, not {operation.size}")
            pointer = lfs_pointer(operation.sha256, size)
            tree[operation.path] = {"oid": git_blob_sha1(pointer), "size": size, "lfs": operation.sha256}
        elif operation.kind == "deletedFile":
            if tree.pop(operation.path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {operation.path}", "EntryNotFound")
        elif operation.kind == "deletedFolder":
            prefix = operation.path.rstrip("/") + "/"
            doomed = [path for path in tree if path.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {operation.path}", "EntryNotFound")
            for path in doomed:
                del tree[path]
        else:
            raise HubError(400, f"unknown commit operation {validation.shown(operation.kind)}")

    def set_ref(self, repo: Repo, kind: str, name: str, sha: str | None) -> None:
        """Create (sha given) or delete (sha None) a branch or tag."""
        with self.write_lock():
            refs = self.refs(repo)
            table = refs["branches" if kind == "branch" else "tags"]
            if sha is None:
                if name not in table:
                    raise HubError(404, f"{kind} {validation.shown(name)} not found", "RevisionNotFound")
                del table[name]
            else:
                if name in table:
                    raise HubError(409, f"{kind} {validation.shown(name)} already exists")
                table[name] = sha
            self.write_json(self.repo_dir(repo) / "refs.json", refs)

    def _read_refs(self, folder: Path) -> dict[str, dict[str, str]]:
        refs: dict[str, dict[str, str]] = self.read_json(folder / "refs.json")
        return refs

    # -- content -------------------------------------------------------------------------------
    def has_lfs(self, repo: Repo, sha256: str, size: int) -> bool:
        return self._regular_size(self._lfs_file(self.repo_dir(repo), sha256)) == size

    def store_lfs(self, repo: Repo, sha256: str, size: int, body: Readable) -> None:
        """Receive an LFS object for one repo; it lands only when its size and sha256 match.

        The partial file is flock'ed while it is written, so a store opened meanwhile by another
        process leaves it alone, and removes it only once its writer is gone.
        """
        self.meta(repo)
        target = self._lfs_file(self.repo_dir(repo), sha256)
        partial = self._temporary("lfs")
        digest = hashlib.sha256()
        received = 0
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                while received < size:
                    block = body.read(min(1 << 20, size - received))
                    if not block:
                        break
                    digest.update(block)
                    handle.write(block)
                    received += len(block)
                if received != size:
                    raise HubError(400, f"LFS object {sha256}: the body was cut short at {received} of {size} bytes")
                if digest.hexdigest() != sha256:
                    raise HubError(400, f"LFS object {sha256}: the bytes received hash to {digest.hexdigest()}")
                handle.flush()
                with self.write_lock():
                    self.meta(repo)
                    os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def open_entry(self, repo: Repo, entry: Entry) -> Path:
        """Where the entry's bytes lie; open it with `open_file` (or read it with `read_file`), never directly."""
        folder = self.repo_dir(repo)
        if entry.lfs_sha256:
            return self._lfs_file(folder, entry.lfs_sha256)
        if not _FULL_SHA.fullmatch(entry.oid):
            raise HubError(500, "the store holds a malformed blob id")
        return self.inside(folder / "blobs" / entry.oid)

    def lfs_patterns(self, repo: Repo, sha: str) -> list[str]:
        entry = self.tree(repo, sha).get(".gitattributes")
        if entry is None:
            return []
        text = self.read_file(self.open_entry(repo, entry)).decode("utf-8", errors="replace")
        return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line and line.split()]

    def wants_lfs(self, patterns: list[str], path: str, size: int, sample: bytes) -> bool:
        name = path.rsplit("/", 1)[-1]
        matches = any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in patterns)
        return size > LFS_SIZE_THRESHOLD or matches or b"\0" in sample

    # -- upkeep --------------------------------------------------------------------------------
    def _upgrade_layout(self) -> None:
        marker = self.root / "store.json"
        if self._regular_size(marker) is not None:
            layout = self.read_json(marker).get("layout")
            if not isinstance(layout, int) or layout > LAYOUT:
                raise HubConfigError(f"{self.root} holds a Hub store of layout {layout!r}, newer than this hubpub's")
        legacy = self.root / "lfs"
        if legacy.is_dir():
            self._move_shared_lfs_objects_into_repos(legacy)
        if self._regular_size(marker) is None:
            self.write_json(marker, {"layout": LAYOUT})

    def _move_shared_lfs_objects_into_repos(self, legacy: Path) -> None:
        """Layout 1 shared `lfs/<sha256>` between all repos: give each repo the objects its history names."""
        for meta in (self.root / "repos").glob("*/*/*/meta.json"):
            folder = meta.parent
            (folder / "lfs").mkdir(exist_ok=True, mode=0o700)
            for commit in (folder / "commits").glob("*.json"):
                for entry in json.loads(commit.read_text(encoding="utf-8"))["tree"].values():
                    sha256 = entry.get("lfs")
                    if not (isinstance(sha256, str) and _LFS_OID.fullmatch(sha256)):
                        continue
                    source, target = legacy / sha256, folder / "lfs" / sha256
                    if source.is_file() and not source.is_symlink() and not target.exists():
                        try:
                            os.link(source, target)
                        except OSError:
                            self._write_bytes(target, source.read_bytes())
        for partial in (self.root / "repos").rglob("*.partial"):
            partial.unlink(missing_ok=True)
        self._discard(legacy)

    def _remove_leftovers(self) -> None:
        """Remove what killed writers left in tmp/: staged repos, partial files whose writer is gone."""
        for leftover in (self.root / "tmp").iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
                continue
            try:
                handle = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                leftover.unlink(missing_ok=True)
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                leftover.unlink(missing_ok=True)
            except BlockingIOError:
                pass  # an upload in another process is still writing it
            finally:
                os.close(handle)

    def _load_signing_key(self) -> bytes:
        path = self.root / "signing-key"
        if self._regular_size(path) == 32:
            return self.read_file(path)
        key = secrets.token_bytes(32)
        partial = self._temporary("key")
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(handle, key)
        finally:
            os.close(handle)
        os.replace(partial, path)
        return key

    # -- helpers -------------------------------------------------------------------------------
    def _discard(self, folder: Path) -> None:
        doomed = self._temporary("discarded")
        os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def write_json(self, path: Path, data: Any) -> None:
        self._write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _write_bytes(self, path: Path, content: bytes | SpooledBlob) -> None:
        partial = self._temporary("write")
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(handle, "wb") as file:
                if isinstance(content, bytes):
                    file.write(content)
                else:
                    for start in range(0, content.size, 1 << 20):
                        file.write(content.spool.read_at(content.offset + start, min(1 << 20, content.size - start)))
            os.replace(partial, self.inside(path))
        finally:
            partial.unlink(missing_ok=True)


_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_SHA_PREFIX = re.compile(r"[0-9a-f]{7,39}")
_LFS_OID = re.compile(r"[0-9a-f]{64}")


def _link_found() -> HubError:
    return HubError(500, "The Hub store holds a symbolic link or a special file where a file should be; not followed")


def subfolders(parent: Path) -> list[Path]:
    """The folders in `parent` that are folders themselves, not links to one."""
    try:
        with os.scandir(parent) as entries:
            return sorted(Path(entry.path) for entry in entries if entry.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
