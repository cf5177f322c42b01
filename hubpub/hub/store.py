"""Repositories, commits, refs and objects of the embedded Hub, persisted under one folder.

Layout: `repos/<type>s/<namespace>/<name>/` holds `meta.json`, `refs.json`, `commits/<sha>.json`
(each commit records its whole file tree) and `blobs/<git sha1>` for regular files. LFS objects
are shared by all repos under `lfs/<sha256>`. Every write goes through one lock and lands by rename.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml

REPO_TYPES = ("model", "dataset", "space")
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


class HubStoreError(Exception):
    """A request the store refuses; `code` is the Hub's X-Error-Code when it has one."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def front_matter(text: str) -> dict[str, Any] | None:
    """The YAML metadata block at the top of a model card, or None when it is absent or not a mapping."""
    match = FRONT_MATTER.match(text)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


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

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Operation:
    kind: str  # "file", "lfsFile", "deletedFile", "deletedFolder"
    path: str
    content: bytes = b""
    sha256: str = ""
    size: int = 0


class HubStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        (root / "repos").mkdir(parents=True, exist_ok=True)
        (root / "lfs").mkdir(parents=True, exist_ok=True)

    # -- repos ---------------------------------------------------------------------------------
    def _dir(self, repo: Repo) -> Path:
        return self.root / "repos" / f"{repo.type}s" / repo.namespace / repo.name

    def exists(self, repo: Repo) -> bool:
        return (self._dir(repo) / "meta.json").is_file()

    def meta(self, repo: Repo) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((self._dir(repo) / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HubStoreError(404, f"Repository Not Found for url: {repo.id}", "RepoNotFound") from None
        return meta

    def create_repo(self, repo: Repo, *, private: bool, author: str) -> bool:
        """Create the repo with the Hub's initial `.gitattributes` commit; False when it exists."""
        with self.lock:
            if self.exists(repo):
                return False
            folder = self._dir(repo)
            (folder / "commits").mkdir(parents=True, exist_ok=True)
            (folder / "blobs").mkdir(exist_ok=True)
            self._write_json(folder / "refs.json", {"branches": {}, "tags": {}})
            self._write_json(folder / "meta.json", {"private": private, "createdAt": now_iso()})
            self.commit(
                repo,
                "main",
                [Operation("file", ".gitattributes", DEFAULT_GITATTRIBUTES.encode())],
                title="initial commit",
                message="",
                author=author,
                create_branch=True,
            )
            return True

    def delete_repo(self, repo: Repo) -> None:
        with self.lock:
            self.meta(repo)
            shutil.rmtree(self._dir(repo))

    def set_private(self, repo: Repo, private: bool) -> None:
        with self.lock:
            meta = self.meta(repo)
            meta["private"] = private
            self._write_json(self._dir(repo) / "meta.json", meta)

    # -- refs and commits ----------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, dict[str, str]]:
        self.meta(repo)
        refs: dict[str, dict[str, str]] = json.loads((self._dir(repo) / "refs.json").read_text(encoding="utf-8"))
        return refs

    def resolve(self, repo: Repo, revision: str) -> str:
        """The commit sha a branch, tag or sha names; 404 RevisionNotFound otherwise."""
        refs = self.refs(repo)
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if name in refs["branches"]:
            return refs["branches"][name]
        if name in refs["tags"]:
            return refs["tags"][name]
        if len(revision) >= 7 and all(char in "0123456789abcdef" for char in revision):
            matches = [path.stem for path in (self._dir(repo) / "commits").glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise HubStoreError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def read_commit(self, repo: Repo, sha: str) -> dict[str, Any]:
        commit: dict[str, Any] = json.loads((self._dir(repo) / "commits" / f"{sha}.json").read_text(encoding="utf-8"))
        return commit

    def tree(self, repo: Repo, sha: str) -> dict[str, Entry]:
        return {path: Entry.from_json(data) for path, data in self.read_commit(repo, sha)["tree"].items()}

    def history(self, repo: Repo, sha: str) -> Iterator[dict[str, Any]]:
        current: str | None = sha
        while current:
            commit = self.read_commit(repo, current)
            yield commit
            current = commit["parent"]

    def commit(
        self,
        repo: Repo,
        branch: str,
        operations: Iterable[Operation],
        *,
        title: str,
        message: str,
        author: str,
        parent_commit: str | None = None,
        create_branch: bool = False,
    ) -> str:
        """Apply the operations on top of the branch head as one commit and move the branch."""
        with self.lock:
            refs = self.refs(repo)
            head = refs["branches"].get(branch)
            if head is None and not create_branch:
                raise HubStoreError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if parent_commit and (head is None or not head.startswith(parent_commit)):
                raise HubStoreError(412, "A commit has happened since. Please refresh and try again.")
            tree = {path: entry.as_json() for path, entry in self.tree(repo, head).items()} if head else {}
            for operation in operations:
                self._apply(repo, tree, operation)
            date = now_iso()
            body = {"parent": head, "tree": tree, "title": title, "message": message, "author": author, "date": date}
            sha = hashlib.sha1(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
            self._write_json(self._dir(repo) / "commits" / f"{sha}.json", {"id": sha, **body})
            refs["branches"][branch] = sha
            self._write_json(self._dir(repo) / "refs.json", refs)
            return sha

    def _apply(self, repo: Repo, tree: dict[str, Any], operation: Operation) -> None:
        if operation.kind == "file":
            oid = git_blob_sha1(operation.content)
            blob = self._dir(repo) / "blobs" / oid
            if not blob.is_file():
                self._write_bytes(blob, operation.content)
            tree[operation.path] = {"oid": oid, "size": len(operation.content)}
        elif operation.kind == "lfsFile":
            stored = self.lfs_path(operation.sha256)
            if not stored.is_file():
                raise HubStoreError(422, f"LFS object {operation.sha256} of {operation.path} was never uploaded")
            size = stored.stat().st_size
            pointer = lfs_pointer(operation.sha256, size)
            tree[operation.path] = {"oid": git_blob_sha1(pointer), "size": size, "lfs": operation.sha256}
        elif operation.kind == "deletedFile":
            if tree.pop(operation.path, None) is None:
                raise HubStoreError(404, f"A file with this name doesn't exist: {operation.path}", "EntryNotFound")
        elif operation.kind == "deletedFolder":
            prefix = operation.path.rstrip("/") + "/"
            doomed = [path for path in tree if path.startswith(prefix)]
            if not doomed:
                raise HubStoreError(404, f"A folder with this name doesn't exist: {operation.path}", "EntryNotFound")
            for path in doomed:
                del tree[path]
        else:
            raise HubStoreError(400, f"unknown commit operation {operation.kind}")

    def set_ref(self, repo: Repo, kind: str, name: str, sha: str | None, *, exist_ok: bool = False) -> None:
        """Create (sha given) or delete (sha None) a branch or tag."""
        with self.lock:
            refs = self.refs(repo)
            table = refs["branches" if kind == "branch" else "tags"]
            if sha is None:
                if name not in table:
                    raise HubStoreError(404, f"{kind} {name} not found", "RevisionNotFound")
                del table[name]
            else:
                if name in table and not exist_ok:
                    raise HubStoreError(409, f"{kind} {name} already exists")
                table[name] = sha
            self._write_json(self._dir(repo) / "refs.json", refs)

    # -- content -------------------------------------------------------------------------------
    def lfs_path(self, sha256: str) -> Path:
        return self.root / "lfs" / sha256

    def has_lfs(self, sha256: str, size: int) -> bool:
        stored = self.lfs_path(sha256)
        return stored.is_file() and stored.stat().st_size == size

    def store_lfs(self, sha256: str, size: int, body: io.BufferedIOBase | BinaryIO) -> None:
        """Receive an LFS object; it lands only when its size and sha256 match."""
        partial = self.root / "lfs" / f"{sha256}.{threading.get_ident()}.partial"
        digest = hashlib.sha256()
        received = 0
        try:
            with partial.open("wb") as handle:
                while received < size:
                    block = body.read(min(1 << 20, size - received))
                    if not block:
                        break
                    digest.update(block)
                    handle.write(block)
                    received += len(block)
            if received != size or digest.hexdigest() != sha256:
                raise HubStoreError(400, f"LFS object {sha256}: received {received} of {size} bytes, or a wrong hash")
            partial.replace(self.lfs_path(sha256))
        finally:
            partial.unlink(missing_ok=True)

    def open_entry(self, repo: Repo, entry: Entry) -> Path:
        if entry.lfs_sha256:
            return self.lfs_path(entry.lfs_sha256)
        return self._dir(repo) / "blobs" / entry.oid

    def lfs_patterns(self, repo: Repo, sha: str) -> list[str]:
        entry = self.tree(repo, sha).get(".gitattributes")
        if entry is None:
            return []
        text = self.open_entry(repo, entry).read_text(encoding="utf-8", errors="replace")
        return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line and line.split()]

    def wants_lfs(self, patterns: list[str], path: str, size: int, sample: bytes) -> bool:
        name = path.rsplit("/", 1)[-1]
        matches = any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in patterns)
        return size > LFS_SIZE_THRESHOLD or matches or b"\0" in sample

    # -- helpers -------------------------------------------------------------------------------
    def _write_json(self, path: Path, data: Any) -> None:
        self._write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _write_bytes(self, path: Path, content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        partial.write_bytes(content)
        partial.replace(path)
