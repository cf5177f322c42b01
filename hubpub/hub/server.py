"""The embedded Hub's HTTP side: the routes huggingface_hub 1.33 uses, tokens, and fault injection.

Routing splits the raw path before percent-decoding (revisions arrive as `refs%2Fpr%2F1`). Every
answer carries a Content-Length and a JSON body, errors the `X-Error-Code` the client maps to its
exception classes, and request bodies are always drained so keep-alive connections stay usable.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from hubpub.hub.store import FRONT_MATTER, REPO_TYPES, Entry, HubStore, HubStoreError, Operation, Repo, front_matter

_TYPE_BY_PLURAL = {f"{kind}s": kind for kind in REPO_TYPES}
_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to, and which namespaces it may write (None: every namespace)."""

    name: str = "hubpub"
    orgs: tuple[str, ...] = ()
    writable: frozenset[str] | None = None

    def can_write(self, namespace: str) -> bool:
        if self.writable is None:
            return True
        return namespace in self.writable or namespace == self.name or namespace in self.orgs


@dataclass
class Fault:
    route: str
    status: int = 500
    times: int = 1
    drop_after_bytes: int | None = None
    delay_seconds: float = 0.0


@dataclass
class Faults:
    """Planned failures for tests: fail the next N calls of a route, drop the connection, or delay."""

    planned: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, route: str, *, status: int = 500, times: int = 1, drop_after_bytes: int | None = None, delay: float = 0.0
    ) -> None:
        with self.lock:
            self.planned.append(Fault(route, status, times, drop_after_bytes, delay))

    def clear(self) -> None:
        with self.lock:
            self.planned.clear()

    def take(self, route: str) -> Fault | None:
        with self.lock:
            for fault in self.planned:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.planned.remove(fault)
                    return fault
        return None


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, message: str, code: str | None = None, extra: dict[str, Any] | None = None) -> _Reply:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return _Reply(status, {"error": message, **(extra or {})}, headers)


class _DroppedConnection(Exception):
    pass


class HubServer:
    """A Hub-compatible server on 127.0.0.1, running in a background thread."""

    def __init__(
        self,
        root: Path,
        *,
        tokens: dict[str, Identity] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_token: str | None = None,
    ) -> None:
        self.store = HubStore(root)
        self.tokens = tokens if tokens is not None else {}
        self.faults = Faults()
        self.admin_token = admin_token
        self.requests: list[tuple[str, str, int]] = []
        self.received_bytes: dict[str, int] = {}
        """Request body bytes received, by route (what clients sent)."""
        self._signing_key = secrets.token_bytes(32)
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hubpub-hub", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def sign(self, oid: str) -> str:
        return hmac.new(self._signing_key, oid.encode(), hashlib.sha256).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self._body_read = False
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        segments = split.path.strip("/").split("/")
        route, handler = self._route(method, segments)
        received = int(self.headers.get("Content-Length") or 0)
        self.hub.received_bytes[route] = self.hub.received_bytes.get(route, 0) + received
        status = 200
        try:
            fault = self.hub.faults.take(route)
            if fault is not None:
                if fault.delay_seconds:
                    time.sleep(fault.delay_seconds)
                if fault.drop_after_bytes is not None:
                    self._drop(fault.drop_after_bytes)
                if fault.status:
                    raise _error(fault.status, f"injected failure of {route}")
            if handler is None:
                raise _error(404, f"no route for {method} {split.path}")
            handler()  # returns only after writing its own response (downloads)
        except _DroppedConnection:
            self.hub.requests.append((method, route, 0))
            return
        except _Reply as reply:
            status = reply.status
            self._send(reply.status, reply.body, reply.headers, head=method == "HEAD")
        except HubStoreError as exc:
            status = exc.status
            headers = {"X-Error-Message": str(exc), **({"X-Error-Code": exc.code} if exc.code else {})}
            self._send(exc.status, {"error": str(exc)}, headers, head=method == "HEAD")
        self.hub.requests.append((method, route, status))

    def _drop(self, after_bytes: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(after_bytes, length))
        self._body_read = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _DroppedConnection

    def _body(self) -> bytes:
        if self._body_read:
            return b""
        self._body_read = True
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self) -> Any:
        raw = self._body()
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise _error(400, "request body is not JSON") from None

    def _send(self, status: int, body: Any, headers: dict[str, str], *, head: bool = False) -> None:
        self._body()
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", secrets.token_hex(8))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def _ok(self, body: Any, headers: dict[str, str] | None = None) -> None:
        raise _Reply(200, body, headers)

    # -- identity ------------------------------------------------------------------------------
    def _identity(self, *, required: bool) -> Identity | None:
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if token:
            identity = self.hub.tokens.get(token)
            if identity is None:
                raise _error(401, "Invalid credentials in Authorization header", "RepoNotFound")
            return identity
        if required:
            raise _error(401, "You must be authenticated to access this resource")
        return None

    def _readable(self, repo: Repo) -> None:
        meta = self.hub.store.meta(repo)
        identity = self._identity(required=False)
        if meta["private"] and (identity is None or not identity.can_write(repo.namespace)):
            raise _error(404, "Repository Not Found", "RepoNotFound")

    def _writable(self, repo: Repo) -> Identity:
        identity = self._identity(required=True)
        assert identity is not None
        if not identity.can_write(repo.namespace):
            raise _error(403, f"You don't have the rights to write to {repo.id}")
        return identity

    # -- routing -------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], None] | None]:
        if parts[:1] == ["api"]:
            return self._api_route(method, parts[1:])
        if parts[:1] == ["_lfs"] and len(parts) >= 2:
            if method == "PUT" and len(parts) == 2:
                return "lfs_upload", lambda: self._lfs_upload(parts[1])
            if method == "POST" and parts[2:] == ["verify"]:
                return "lfs_verify", lambda: self._lfs_verify(parts[1])
        if parts[:1] == ["_hubpub"] and parts[1:] == ["faults"] and method == "POST":
            return "admin", self._admin_faults
        kind = "model"
        if parts[:1] in (["datasets"], ["spaces"]):
            kind = _TYPE_BY_PLURAL[parts[0]]
            parts = parts[1:]
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"]:
            repo = Repo(kind, unquote(parts[0]), unquote(parts[1].removesuffix(".git")))
            if method == "POST" and parts[5:] == ["batch"]:
                return "lfs_batch", lambda: self._lfs_batch(repo)
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = Repo(kind, unquote(parts[0]), unquote(parts[1]))
            path = "/".join(unquote(part) for part in parts[4:])
            return "resolve", lambda: self._resolve(repo, unquote(parts[3]), path, head=method == "HEAD")
        return "unknown", None

    def _api_route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], None] | None]:
        simple: dict[tuple[str, str], tuple[str, Callable[[], None]]] = {
            ("GET", "whoami-v2"): ("whoami", self._whoami),
            ("GET", "agent-harnesses"): ("harnesses", lambda: self._ok({"standardEnvVars": [], "harnesses": {}})),
            ("POST", "validate-yaml"): ("validate_yaml", self._validate_yaml),
        }
        joined = "/".join(parts)
        if (method, joined) in simple:
            return simple[(method, joined)]
        if parts[:1] == ["repos"] and parts[1:2] == ["create"] and method == "POST":
            return "create_repo", self._create_repo
        if parts[:1] == ["repos"] and parts[1:2] == ["delete"] and method == "DELETE":
            return "delete_repo", self._delete_repo
        if len(parts) < 3 or parts[0] not in _TYPE_BY_PLURAL:
            return "unknown", None
        repo = Repo(_TYPE_BY_PLURAL[parts[0]], unquote(parts[1]), unquote(parts[2]))
        rest = parts[3:]
        action = rest[0] if rest else ""
        argument = unquote(rest[1]) if len(rest) > 1 else "main"
        table: dict[tuple[str, str], tuple[str, Callable[[], None]]] = {
            ("GET", ""): ("repo_info", lambda: self._repo_info(repo, "main")),
            ("GET", "revision"): ("repo_info", lambda: self._repo_info(repo, argument)),
            ("GET", "tree"): ("tree", lambda: self._tree(repo, argument, "/".join(unquote(p) for p in rest[2:]))),
            ("POST", "paths-info"): ("paths_info", lambda: self._paths_info(repo, argument)),
            ("GET", "refs"): ("refs", lambda: self._refs(repo)),
            ("GET", "commits"): ("commits", lambda: self._commits(repo, argument)),
            ("POST", "preupload"): ("preupload", lambda: self._preupload(repo, argument)),
            ("POST", "commit"): ("commit", lambda: self._commit(repo, argument)),
            ("POST", "tag"): ("tag", lambda: self._create_tag(repo, argument)),
            ("DELETE", "tag"): ("tag", lambda: self._delete_ref(repo, "tag", argument)),
            ("POST", "branch"): ("branch", lambda: self._create_branch(repo, argument)),
            ("DELETE", "branch"): ("branch", lambda: self._delete_ref(repo, "branch", argument)),
            ("PUT", "settings"): ("settings", lambda: self._settings(repo)),
        }
        return table.get((method, action), ("unknown", None))

    # -- account and repos ---------------------------------------------------------------------
    def _whoami(self) -> None:
        identity = self._identity(required=True)
        assert identity is not None
        self._ok(
            {
                "type": "user",
                "name": identity.name,
                "fullname": identity.name,
                "email": None,
                "orgs": [{"name": org, "type": "org"} for org in identity.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "hubpub", "role": "write"}},
            }
        )

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{_TYPE_PREFIX[repo.type]}{repo.id}"

    def _create_repo(self) -> None:
        body = self._json()
        identity = self._identity(required=True)
        assert identity is not None
        namespace = body.get("organization") or identity.name
        repo = Repo(body.get("type") or "model", namespace, body["name"])
        if repo.type not in REPO_TYPES:
            raise _error(400, f"unknown repo type {repo.type}")
        self._writable(repo)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        url = self._repo_url(repo)
        if not self.hub.store.create_repo(repo, private=private, author=identity.name):
            raise _error(409, "You already created this model repo", extra={"url": url})
        self._ok({"url": url, "name": repo.id, "id": repo.id})

    def _delete_repo(self) -> None:
        body = self._json()
        identity = self._identity(required=True)
        assert identity is not None
        repo = Repo(body.get("type") or "model", body.get("organization") or identity.name, body["name"])
        self._writable(repo)
        self.hub.store.delete_repo(repo)
        self._ok({})

    def _settings(self, repo: Repo) -> None:
        body = self._json()
        self._writable(repo)
        if "visibility" in body or "private" in body:
            self.hub.store.set_private(repo, body.get("visibility") == "private" or bool(body.get("private")))
        self._ok({})

    def _repo_info(self, repo: Repo, revision: str) -> None:
        self._readable(repo)
        store = self.hub.store
        sha = store.resolve(repo, revision)
        commit = store.read_commit(repo, sha)
        tree = store.tree(repo, sha)
        with_blobs = self.query.get("blobs", [""])[0] == "true"
        siblings = []
        for path, entry in sorted(tree.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update({"size": entry.size, "blobId": entry.oid})
                if entry.lfs_sha256:
                    pointer_size = len(f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.lfs_sha256}")
                    sibling["lfs"] = {"sha256": entry.lfs_sha256, "size": entry.size, "pointerSize": pointer_size + 20}
            siblings.append(sibling)
        meta = store.meta(repo)
        self._ok(
            {
                "id": repo.id,
                "modelId": repo.id,
                "author": repo.namespace,
                "sha": sha,
                "private": meta["private"],
                "gated": False,
                "disabled": False,
                "lastModified": commit["date"],
                "createdAt": meta["createdAt"],
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": siblings,
                "cardData": self._card_data(repo, tree),
            }
        )

    def _card_data(self, repo: Repo, tree: dict[str, Entry]) -> dict[str, Any] | None:
        entry = tree.get("README.md")
        if entry is None:
            return None
        return front_matter(self.hub.store.open_entry(repo, entry).read_text(encoding="utf-8", errors="replace"))

    # -- listings ------------------------------------------------------------------------------
    def _tree_item(self, path: str, entry: Entry) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.lfs_sha256:
            item["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": 134}
        return item

    def _tree(self, repo: Repo, revision: str, prefix: str) -> None:
        self._readable(repo)
        tree = self.hub.store.tree(repo, self.hub.store.resolve(repo, revision))
        recursive = self.query.get("recursive", ["false"])[0] == "true"
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        if base and not any(path.startswith(base) for path in tree):
            raise _error(404, f"{prefix} does not exist", "EntryNotFound")
        items: dict[str, dict[str, Any]] = {}
        for path, entry in sorted(tree.items()):
            if not path.startswith(base):
                continue
            relative = path[len(base) :].split("/")
            for depth in range(1, len(relative)):
                folder = base + "/".join(relative[:depth])
                if (recursive or depth == 1) and folder not in items:
                    items[folder] = {
                        "type": "directory",
                        "oid": hashlib.sha1(folder.encode(), usedforsecurity=False).hexdigest(),
                        "path": folder,
                    }
            if recursive or len(relative) == 1:
                items[path] = self._tree_item(path, entry)
        self._ok(list(items.values()))

    def _paths_info(self, repo: Repo, revision: str) -> None:
        self._readable(repo)
        form = parse_qs(self._body().decode())
        tree = self.hub.store.tree(repo, self.hub.store.resolve(repo, revision))
        self._ok([self._tree_item(path, tree[path]) for path in form.get("paths", []) if path in tree])

    def _refs(self, repo: Repo) -> None:
        self._readable(repo)
        refs = self.hub.store.refs(repo)
        self._ok(
            {
                "branches": [
                    {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                    for name, sha in refs["branches"].items()
                ],
                "converts": [],
                "tags": [
                    {"name": name, "ref": f"refs/tags/{name}", "targetCommit": sha}
                    for name, sha in refs["tags"].items()
                ],
                "pullRequests": [],
            }
        )

    def _commits(self, repo: Repo, revision: str) -> None:
        self._readable(repo)
        store = self.hub.store
        self._ok(
            [
                {
                    "id": commit["id"],
                    "title": commit["title"],
                    "message": commit["message"],
                    "date": commit["date"],
                    "authors": [{"user": commit["author"]}],
                }
                for commit in store.history(repo, store.resolve(repo, revision))
            ]
        )

    # -- refs ----------------------------------------------------------------------------------
    def _create_tag(self, repo: Repo, revision: str) -> None:
        body = self._json()
        self._writable(repo)
        sha = self.hub.store.resolve(repo, revision)
        self.hub.store.set_ref(repo, "tag", body["tag"], sha)
        self._ok({})

    def _create_branch(self, repo: Repo, branch: str) -> None:
        body = self._json()
        self._writable(repo)
        sha = self.hub.store.resolve(repo, body.get("startingPoint") or "main")
        self.hub.store.set_ref(repo, "branch", branch, sha)
        self._ok({})

    def _delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        self._writable(repo)
        self.hub.store.set_ref(repo, kind, name, None)
        self._ok({})

    # -- uploads -------------------------------------------------------------------------------
    def _validate_yaml(self) -> None:
        body = self._json()
        match = FRONT_MATTER.match(str(body.get("content", "")))
        if match:
            try:
                data = yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                raise _Reply(400, {"errors": [{"message": f"Invalid YAML in README.md metadata: {exc}"}]}) from None
            if data is not None and not isinstance(data, dict):
                raise _Reply(400, {"errors": [{"message": "README.md metadata must be a mapping"}]})
        self._ok({"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, revision: str) -> None:
        body = self._json()
        self._writable(repo)
        if "create_pr" in self.query:
            raise _error(400, "pull requests are not supported by the embedded Hub")
        store = self.hub.store
        sha = store.resolve(repo, revision)
        patterns = store.lfs_patterns(repo, sha)
        tree = store.tree(repo, sha)
        answers = []
        for item in body.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = store.wants_lfs(patterns, item["path"], int(item.get("size", 0)), sample)
            answer: dict[str, Any] = {
                "path": item["path"],
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
            }
            current = tree.get(item["path"])
            if current is not None:
                answer["oid"] = current.lfs_sha256 if lfs else current.oid
            answers.append(answer)
        self._ok({"files": answers, "commitOid": sha})

    def _lfs_batch(self, repo: Repo) -> None:
        body = self._json()
        self._writable(repo)
        objects = []
        for item in body.get("objects", []):
            oid, size = item["oid"], int(item["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if not self.hub.store.has_lfs(oid, size):
                signature = self.hub.sign(oid)
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/_lfs/{oid}?size={size}&sig={signature}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/_lfs/{oid}/verify", "header": {}},
                }
            objects.append(entry)
        self._ok({"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str) -> None:
        signature = self.query.get("sig", [""])[0]
        if not hmac.compare_digest(signature, self.hub.sign(oid)):
            raise _error(403, "invalid upload signature")
        size = int(self.headers.get("Content-Length") or 0)
        self._body_read = True
        try:
            self.hub.store.store_lfs(oid, size, self.rfile)
        except HubStoreError:
            self.close_connection = True
            raise
        self._ok({})

    def _lfs_verify(self, oid: str) -> None:
        body = self._json()
        self._identity(required=True)
        if not self.hub.store.has_lfs(oid, int(body.get("size", -1))):
            raise _error(404, f"LFS object {oid} is not stored")
        self._ok({})

    def _commit(self, repo: Repo, revision: str) -> None:
        raw = self._body()
        identity = self._writable(repo)
        if "create_pr" in self.query:
            raise _error(400, "pull requests are not supported by the embedded Hub")
        header: dict[str, Any] = {}
        operations: list[Operation] = []
        try:
            for line in raw.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    operations.append(Operation("file", value["path"], base64.b64decode(value["content"])))
                elif key == "lfsFile":
                    operations.append(
                        Operation("lfsFile", value["path"], sha256=value["oid"], size=value.get("size", 0))
                    )
                elif key in ("deletedFile", "deletedFolder"):
                    operations.append(Operation(key, value["path"]))
                else:
                    raise _error(400, f"unknown commit line key {key}")
        except (json.JSONDecodeError, KeyError, ValueError) as exc:
            raise _error(400, f"malformed commit body: {exc}") from None
        sha = self.hub.store.commit(
            repo,
            revision,
            operations,
            title=header.get("summary", ""),
            message=header.get("description", ""),
            author=identity.name,
            parent_commit=header.get("parentCommit"),
        )
        self._ok(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._repo_url(repo)}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _admin_faults(self) -> None:
        body = self._json()
        if not self.hub.admin_token or self.headers.get("Authorization") != f"Bearer {self.hub.admin_token}":
            raise _error(403, "fault injection needs the admin token")
        if body.get("clear"):
            self.hub.faults.clear()
        for fault in body.get("faults", []):
            self.hub.faults.add(
                fault["route"],
                status=fault.get("status", 500),
                times=fault.get("times", 1),
                drop_after_bytes=fault.get("drop_after_bytes"),
                delay=fault.get("delay", 0.0),
            )
        self._ok({"planned": len(self.hub.faults.planned)})

    # -- downloads -----------------------------------------------------------------------------
    def _resolve(self, repo: Repo, revision: str, path: str, *, head: bool) -> None:
        self._readable(repo)
        store = self.hub.store
        sha = store.resolve(repo, revision)
        entry = store.tree(repo, sha).get(path)
        if entry is None:
            # X-Repo-Commit lets the client remember the miss for this commit.
            raise _Reply(
                404,
                {"error": f"Entry not found: {path}"},
                {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": sha},
            )
        blob = store.open_entry(repo, entry)
        headers = {
            "ETag": f'"{entry.oid}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.lfs_sha256:
            headers.update({"X-Linked-Etag": f'"{entry.lfs_sha256}"', "X-Linked-Size": str(entry.size)})
        start = 0
        range_header = self.headers.get("Range", "")
        range_match = re.match(r"bytes=(\d+)-$", range_header)
        if range_match:
            start = min(int(range_match.group(1)), entry.size)
        length = entry.size - start
        self._body()
        self.send_response(206 if range_match else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        if range_match:
            self.send_header("Content-Range", f"bytes {start}-{entry.size - 1}/{entry.size}")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if not head:
            with blob.open("rb") as handle:
                handle.seek(start)
                while block := handle.read(1 << 20):
                    self.wfile.write(block)
