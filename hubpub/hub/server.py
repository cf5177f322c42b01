"""The embedded Hub's HTTP side: the routes huggingface_hub 1.33 uses, tokens, and fault injection.

Every request goes through the same edge, in this order: framing (one exact Content-Length, no
chunked bodies), the route and the names in its URL, the route's size cap, the token, and only
then the body, read exactly. Routing splits the raw path before percent-decoding (revisions
arrive as `refs%2Fpr%2F1`). Every answer carries a Content-Length and a JSON body, errors the
`X-Error-Code` the client maps to its exception classes, header values are plain printable ASCII,
and no request, however malformed, gets a traceback or a dropped connection: an unexpected error
is a plain 500. Each refused request is one line in the log, never with a token in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from hubpub.hub import edge, listing, pages, validation
from hubpub.hub.cards import CardCache
from hubpub.hub.catalog import Catalog, StagedCatalog, StoreCatalog, store_readme
from hubpub.hub.collections import Address, Collections, item_object_id
from hubpub.hub.errors import HubConfigError, HubError
from hubpub.hub.hosts import AllowedHosts, PublicURL
from hubpub.hub.jobs import JOBS_OFF, JobLimits, Jobs
from hubpub.hub.store import (
    REPO_TYPES,
    CardMetadataError,
    Entry,
    HubStore,
    NewCommit,
    Operation,
    Repo,
    card_metadata,
)
from hubpub.hub.tokens import Identity, TokenTable, can_read
from hubpub.hub.wire import (
    Body,
    DroppedConnection,
    Limits,
    Response,
    commit_line_limit,
    decode_base64,
    header_value,
    ok,
    parse_commit,
    parse_form,
    parse_json,
    parse_query,
    refusal,
    visibility,
)

_TYPE_BY_PLURAL = {f"{kind}s": kind for kind in REPO_TYPES}
_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_RANGE = re.compile(r"bytes=([0-9]{1,18})-([0-9]{0,18})")
_ATTACHMENT_NAME = re.compile(r"[^A-Za-z0-9._+-]")
_RAW_FILE_HEADERS = {
    "Content-Type": "application/octet-stream",
    # A file is the uploader's, never this Hub's page: a browser saves it and runs nothing in this origin.
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}
UPLOAD_LINK_SECONDS = 24 * 3600
_NAME_REQUIRED = frozenset({("POST", "branch"), ("DELETE", "branch"), ("DELETE", "tag")})


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    hub: HubServer
    connections: edge.Connections
    backoff: edge.AcceptBackoff

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback; a connection that failed outside a request is one line.
        self.hub.log_line(f"connection from {client_address[0]} failed outside a request")

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            accepted = super().get_request()
        except OSError as exc:
            self.backoff.failed(exc)  # out of descriptors: the listening socket stays readable, so pause
            raise
        self.backoff.succeeded()
        return accepted

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.connections.admit(request) is None:
            edge.refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release(request)


class HubServer:
    """A Hub-compatible server on 127.0.0.1, running in a background thread, with web pages of its repos.

    `tokens` maps tokens to identities (or is a TokenTable of digests, from a tokens file). `log`
    receives one line per refused request; the library stays quiet unless given one. With `staged`
    (release folders that `push` has not sent), the pages preview those folders instead of the store.
    `public_url` is where clients reach it from elsewhere (a reverse proxy): the login accepts it, and
    links name it, besides the loopback names (hubpub/hub/hosts.py).
    """

    def __init__(
        self,
        root: Path,
        *,
        tokens: Mapping[str, Identity] | TokenTable | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_token: str | None = None,
        limits: Limits | None = None,
        log: Callable[[str], None] | None = None,
        staged: Sequence[Path] = (),
        public_url: str | None = None,
        jobs: bool = False,
        job_limits: JobLimits | None = None,
        hidden_from_jobs: Sequence[Path] = (),
    ) -> None:
        public = PublicURL.parse(public_url) if public_url is not None else None
        preview = StagedCatalog(staged) if staged else None
        self.store = HubStore(root)
        self.collections = Collections(self.store)
        self.tokens = tokens if isinstance(tokens, TokenTable) else TokenTable.from_tokens(tokens or {})
        self.jobs = Jobs(self.store.root, self.tokens, enabled=jobs, limits=job_limits, hidden=hidden_from_jobs)
        catalog: Catalog = preview or StoreCatalog(self.store)
        self.cards = CardCache()
        """Parsed card metadata and rendered cards, shared by the pages and the API."""
        self.pages = pages.Pages(catalog, self.tokens, None if preview else self.collections, limits, cards=self.cards)
        self.faults = Faults()
        self.admin_token = admin_token
        self.limits = limits or Limits()
        self._log = log
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=100_000)
        """(method, route, status) of recent requests, for tests."""
        self.received_bytes: dict[str, int] = {}
        """Request body bytes received, by route (what clients sent)."""
        handler = type("Handler", (_Handler,), {"hub": self, "timeout": self.limits.socket_timeout})
        try:
            self.httpd = _HTTPServer((host, port), handler)
        except OSError as exc:
            self.store.close()
            raise HubConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.hub = self
        self.hosts = AllowedHosts.of(str(self.httpd.server_address[0]), int(self.httpd.server_address[1]), public)
        self.httpd.connections = edge.Connections(self.limits.max_connections)
        self.httpd.backoff = edge.AcceptBackoff(self.log_line)
        self.memory = edge.MemoryBudget(self.limits.body_memory, self.limits.memory_wait_seconds)
        """Body bytes held in memory at once, across requests."""
        self._thread: threading.Thread | None = None
        try:
            self.jobs.open(self.loopback_url)
        except HubConfigError:
            self.httpd.server_close()
            self.store.close()
            raise

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def loopback_url(self) -> str:
        """How a process on this machine reaches the server (a job's HF_ENDPOINT), whatever address it listens on."""
        host, port = self.httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}
        address = wildcard.get(name, f"[{name}]" if ":" in name else name)
        return f"http://{address}:{port}"

    @property
    def pages_url(self) -> str:
        """The web pages' index."""
        return f"{self.url}/"

    def start(self) -> HubServer:
        # A short poll makes stop() quick; an idle wake-up every 0.1 s costs nothing measurable.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="hubpub-hub", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.jobs.close()
        self.httpd.server_close()
        self.store.close()

    def stop(self) -> None:
        self.httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        self.close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_line(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def sign(self, repo: Repo, oid: str, size: int, expires: int) -> str:
        """The signature of an upload link; the key lives in the store, so links outlive a restart."""
        message = f"{repo.type}/{repo.namespace}/{repo.name}/{oid}/{size}/{expires}".encode()
        return hmac.new(self.store.signing_key, message, hashlib.sha256).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "hubpub-hub"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return  # refusals are logged once, by _finish and send_error

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def handle_expect_100(self) -> bool:
        self._expect_continue = True  # "100 Continue" goes out only when the body is about to be read
        return True

    def setup(self) -> None:
        super().setup()
        connections = self.hub.httpd.connections
        self._slot = connections.slot(self.connection)
        self.rfile = edge.reader(connections, self._slot, self.hub.limits, self.timeout)

    def handle_one_request(self) -> None:
        self._expect_continue = False
        self.command, self.path, self.request_version = None, "", "HTTP/1.1"  # type: ignore[assignment]
        self.hub.httpd.connections.wait_for_request(self._slot, self.hub.limits)
        try:
            super().handle_one_request()
        except edge.DeadlinePassed:
            self.close_connection = True
            if self._slot.phase == edge.HEADERS:
                with contextlib.suppress(OSError):
                    self.send_error(408, "The request's headers did not arrive in time")
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a bug outside _handle: close, log one line, no traceback
            self.close_connection = True
            self.hub.log_line(f"hub: connection closed after an internal error ({type(exc).__name__})")

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed and self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return parsed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's answer to requests it cannot parse, as JSON with headers, and one log line."""
        reason = message or self.responses.get(code, ("Bad request",))[0]
        self.close_connection = True
        if getattr(self, "request_version", "") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # unparsed; the stdlib would answer with a bare body
        response = Response(code, {"error": reason}, {"X-Error-Message": reason}, reason=reason)
        self._logrefusal(str(getattr(self, "command", None) or "-"), response)
        try:
            self._write(response, head=getattr(self, "command", None) == "HEAD", close=True)
        except OSError:
            return
        self._linger(self.hub.limits.drain)

    # -- the edge ------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        self._token = ""
        self._body = Body(self.rfile, 0, None)
        route = "unknown"
        connections, limits = self.hub.httpd.connections, self.hub.limits
        if not connections.busy(self._slot, limits, 0):
            self.close_connection = True  # closed to make room while its headers were still arriving
            return
        try:
            declared = self._framing(method)
            connections.busy(self._slot, limits, declared)
            self._body = Body(self.rfile, declared, self._send_continue if self._expect_continue else None)
            split = urlsplit(self.path)
            self.query = parse_query(split.query)
            # Only the leading "/" goes: `branch/` names an empty branch, not the default one.
            route, handler = self._route(method, split.path.removeprefix("/").split("/"))
            cap = self.hub.limits.body_cap(route)
            if declared > cap:
                raise HubError(413, f"The request body of {declared} bytes is over this route's limit of {cap}")
            self.hub.received_bytes[route] = self.hub.received_bytes.get(route, 0) + declared
            self._take_fault(route)
            if handler is None:
                raise HubError(404, f"No route for {method} {validation.shown(split.path, 120)}")
            response = handler()
        except DroppedConnection:
            self.hub.requests.append((method, route, 0))
            return
        except HubError as error:
            response = refusal(error)
        except (TimeoutError, edge.DeadlinePassed):
            self.close_connection = True
            response = Response(408, {"error": "Request timeout"}, reason="the client stopped sending")
        except ConnectionError:
            self.close_connection = True
            self.hub.requests.append((method, route, 0))
            return
        except Exception as exc:
            reason = f"internal error ({type(exc).__name__})"
            response = Response(500, {"error": "Internal Server Error"}, reason=reason)
        self._finish(method, route, response)

    def _framing(self, method: str) -> int:
        """The body's exact length; anything that leaves it in doubt closes the connection after the answer."""
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            raise HubError(411, "Chunked request bodies are not supported: send a Content-Length")
        values = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if not values:
            if method in ("POST", "PUT"):
                self.close_connection = True
                raise HubError(411, "A Content-Length header is required")
            return 0
        if len(values) > 1 or not _CONTENT_LENGTH.fullmatch(next(iter(values))):
            self.close_connection = True
            raise HubError(400, "Invalid Content-Length: it must be one whole number of bytes")
        return int(next(iter(values)))

    def _send_continue(self) -> None:
        self.send_response_only(100)
        self.end_headers()

    def _take_fault(self, route: str) -> None:
        fault = self.hub.faults.take(route)
        if fault is None:
            return
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.drop_after_bytes is not None:
            self._body.discard(fault.drop_after_bytes)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise DroppedConnection
        if fault.status:
            raise HubError(fault.status, f"injected failure of {route}")

    def _finish(self, method: str, route: str, response: Response) -> None:
        unread = self._body.remaining
        if unread and not self.close_connection:
            if self._body.awaiting_continue:
                self.close_connection = True  # an Expect: 100-continue client never sent the body
            elif unread <= self.hub.limits.drain:
                try:
                    self._body.discard(unread)
                except OSError:
                    self.close_connection = True
                if self._body.remaining:
                    self.close_connection = True
            else:
                self.close_connection = True
        if response.status >= 400:
            self._logrefusal(method, response)
        try:
            self._write(response, head=method == "HEAD", close=self.close_connection)
        except OSError:
            self.close_connection = True
        else:
            if self.close_connection:
                self._linger(max(unread, self.hub.limits.drain))
        self.hub.requests.append((method, route, response.status))

    def _linger(self, budget: int) -> None:
        """Before closing, read away (and drop) what the client is still sending, for a while: closing a socket
        with unread bytes resets the connection, and the client would lose the answer it has not read yet."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.hub.limits.linger_seconds
            self.connection.settimeout(self.hub.limits.linger_seconds)
            while budget > 0 and time.monotonic() < deadline:
                chunk = self.connection.recv(min(1 << 16, budget))
                if not chunk:
                    break
                budget -= len(chunk)

    def _write(self, response: Response, *, head: bool, close: bool) -> None:
        if response.stream is not None:
            self._write_stream(response, close=close)
            return
        payload = b"" if response.file is not None else response.content
        if payload is None:
            payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers, "X-Content-Type-Options": "nosniff"}
        headers["Content-Length"] = str(response.length if response.file is not None else len(payload))
        headers["X-Request-Id"] = secrets.token_hex(8)
        if close:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, header_value(value))
        self.end_headers()
        if head:
            return
        if response.file is None:
            self.wfile.write(payload)
            return
        with os.fdopen(self.hub.store.open_file(response.file), "rb") as handle:
            handle.seek(response.offset)
            left = response.length
            while left > 0 and (block := handle.read(min(1 << 20, left))):
                self.wfile.write(block)
                left -= len(block)

    def _write_stream(self, response: Response, *, close: bool) -> None:
        """A body of unknown length (a job's log), sent chunked as it comes; the client may leave at any time."""
        assert response.stream is not None
        self.send_response(response.status)
        headers = {**response.headers, "Transfer-Encoding": "chunked", "X-Request-Id": secrets.token_hex(8)}
        headers["X-Content-Type-Options"] = "nosniff"
        if close:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, header_value(value))
        self.end_headers()
        try:
            for block in response.stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close_stream = getattr(response.stream, "close", None)
            if close_stream is not None:
                close_stream()

    def _logrefusal(self, method: str, response: Response) -> None:
        line = f"hub: {response.status} {header_value(method, 16)} {header_value(_path_only(self), 200)}: "
        line += header_value(response.reason or str(response.status), 300)
        token = getattr(self, "_token", "")
        self.hub.log_line(line.replace(token, "***") if token else line)

    # -- identity ------------------------------------------------------------------------------
    def _identity(self, *, required: bool) -> Identity | None:
        header = self.headers.get("Authorization")
        if header is None:
            if required:
                raise HubError(401, "You must be authenticated to access this resource")
            return None
        scheme, _, token = header.strip().partition(" ")
        self._token = token.strip()
        identity = self.hub.tokens.lookup(self._token) if scheme.lower() == "bearer" and self._token else None
        if identity is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return identity

    def _readable(self, repo: Repo, *, cookie: bool = False) -> None:
        """404 unless the caller may read the repo; `cookie` also accepts the pages' login (for file links)."""
        identity = self._identity(required=False)
        if identity is None and cookie:
            identity, _ = self._viewer()
        if not can_read(identity, repo.namespace, private=self.hub.store.meta(repo)["private"]):
            raise HubError(404, f"Repository Not Found: {repo.id}", "RepoNotFound")

    def _viewer(self) -> tuple[Identity | None, bool]:
        """Who is looking at a page, by the Authorization header or else the pages' login session; and whether a
        token or session came that this Hub does not know (the page then shows public repos and says so)."""
        if self.headers.get("Authorization") is not None:
            try:
                return self._identity(required=True), False
            except HubError:
                return None, True
        session = pages.cookie_session(self.headers.get_all("Cookie") or [])
        if session is None:
            return None, False
        identity = self.hub.pages.sessions.identity(session)
        return identity, identity is None

    def _same_origin(self) -> bool:
        """Whether a form comes from this Hub's own pages: the browser says the site is the same, and both `Host`
        and `Origin` name this Hub (a DNS rebinding page names itself in both). The login and logout need it."""
        site = (self.headers.get("Sec-Fetch-Site") or "none").strip().lower()
        origin = self.headers.get("Origin")
        hosts = self.hub.hosts
        return (
            site in ("same-origin", "none")
            and hosts.host_allowed(self.headers.get("Host"))
            and (origin is None or hosts.origin_allowed(origin))
        )

    def _writable(self, repo: Repo) -> Identity:
        identity = self._identity(required=True)
        assert identity is not None
        if not identity.can_write(repo.namespace):
            read_only = " (this token is read-only)" if identity.read_only else ""
            raise HubError(403, f"You don't have the rights to write to {repo.id}{read_only}")
        return identity

    # -- bodies --------------------------------------------------------------------------------
    def _json(self) -> dict[str, Any]:
        with self.hub.memory.hold(self._body.remaining):
            return parse_json(self._body.read_all(), "request body")

    def _commit_body(self, stack: contextlib.ExitStack) -> tuple[dict[str, Any], list[Operation]]:
        """The commit's header and operations; a large body, and the files in it, wait in spool files, not memory."""
        limits = self.hub.limits
        if self._body.remaining <= limits.spool_body:
            with self.hub.memory.hold(self._body.remaining):
                return parse_commit(io.BytesIO(self._body.read_all()), limits)
        body = stack.enter_context(self.hub.store.spool())
        self._body.spool_into(body)
        blobs = stack.enter_context(self.hub.store.spool())
        with self.hub.memory.hold(commit_line_limit(limits)), body.reader() as lines:
            return parse_commit(lines, limits, blobs)

    # -- routing -------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], Response] | None]:
        if parts[:1] == ["api"]:
            return self._api_route(method, parts[1:])
        if parts[:1] == ["_lfs"]:
            return self._lfs_route(method, parts[1:])
        if parts == ["_hubpub", "faults"] and method == "POST":
            return "admin", self._admin_faults
        if pages.is_page(method, parts):
            return "page", lambda: self._page(method, parts)
        kind = "model"
        if parts[:1] in (["datasets"], ["spaces"]):
            kind = _TYPE_BY_PLURAL[parts[0]]
            parts = parts[1:]
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            repo = _repo(kind, parts[0], parts[1].removesuffix(".git"))
            return "lfs_batch", (lambda: self._lfs_batch(repo)) if method == "POST" else None
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = _repo(kind, parts[0], parts[1])
            revision = validation.url_segment(parts[3], "revision")
            path = "/".join(validation.url_segment(part, "path") for part in parts[4:])
            return "resolve", lambda: self._resolve(repo, revision, path)
        return "unknown", None

    def _api_route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], Response] | None]:
        simple: dict[tuple[str, str], tuple[str, Callable[[], Response]]] = {
            ("GET", "whoami-v2"): ("whoami", self._whoami),
            ("GET", "agent-harnesses"): ("harnesses", lambda: ok({"standardEnvVars": [], "harnesses": {}})),
            ("POST", "validate-yaml"): ("validate_yaml", self._validate_yaml),
            ("POST", "repos/create"): ("create_repo", self._create_repo),
            ("DELETE", "repos/delete"): ("delete_repo", self._delete_repo),
            ("GET", "settings/repositories"): ("repo_storage", lambda: self._repo_storage(None)),
        }
        joined = "/".join(parts)
        if (method, joined) in simple:
            return simple[(method, joined)]
        if parts[:1] == ["collections"]:
            return self._collection_route(method, parts[1:])
        if parts[:1] == ["jobs"]:
            return self._jobs_route(method, parts[1:])
        if len(parts) == 4 and parts[0] == "organizations" and parts[2:] == ["settings", "repositories"]:
            namespace = validation.repo_part(validation.url_segment(parts[1], "namespace"), "namespace")
            return "repo_storage", (lambda: self._repo_storage(namespace)) if method == "GET" else None
        if len(parts) == 1 and parts[0] in _TYPE_BY_PLURAL:
            kind = _TYPE_BY_PLURAL[parts[0]]
            return "list_repos", (lambda: self._list_repos(kind)) if method == "GET" else None
        if len(parts) < 3 or parts[0] not in _TYPE_BY_PLURAL:
            return "unknown", None
        repo = _repo(_TYPE_BY_PLURAL[parts[0]], parts[1], parts[2])
        rest = parts[3:]
        action = rest[0] if rest else ""
        if len(rest) > 2 and action != "tree":
            return "unknown", None
        if len(rest) < 2 and (method, action) in _NAME_REQUIRED:
            return "unknown", None
        argument = validation.url_segment(rest[1], "revision") if len(rest) > 1 else "main"
        table: dict[tuple[str, str], tuple[str, Callable[[], Response]]] = {
            ("GET", ""): ("repo_info", lambda: self._repo_info(repo, "main")),
            ("GET", "revision"): ("repo_info", lambda: self._repo_info(repo, argument)),
            ("GET", "tree"): ("tree", lambda: self._tree(repo, argument, rest[2:])),
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
        route, handler = table.get((method, action), ("unknown", None))
        return route, handler

    def _collection_route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], Response] | None]:
        collections = self.hub.collections
        if not parts:
            if method == "GET":
                return "collections", lambda: ok(collections.listing(self.query, self._reader(), self._base_url()))
            if method == "POST":
                return "collections", lambda: ok(collections.create(self._writer(), self._json(), self._base_url()))
            return "collections", None
        if len(parts) < 2:
            return "collections", None
        address = Address.parse(
            validation.url_segment(parts[0], "collection namespace"),
            validation.url_segment(parts[1], "collection slug"),
        )
        rest = parts[2:]
        table: dict[tuple[str, int], Callable[[], Response]] = {
            ("GET", 0): lambda: ok(collections.get(address, self._reader(), self._base_url())),
            ("PATCH", 0): lambda: ok(collections.update(address, self._writer(), self._json(), self._base_url())),
            ("DELETE", 0): lambda: ok(collections.delete(address, self._writer())),
            ("POST", 1): lambda: ok(collections.add_item(address, self._writer(), self._json(), self._base_url())),
        }
        if rest[:1] == ["items"] and len(rest) == 2:
            item = item_object_id(validation.url_segment(rest[1], "item id"))
            if method == "PATCH":
                return "collection_item", lambda: self._done(
                    lambda: collections.update_item(address, item, self._writer(), self._json())
                )
            if method == "DELETE":
                return "collection_item", lambda: self._done(
                    lambda: collections.delete_item(address, item, self._writer())
                )
            return "collection_item", None
        if rest and rest != ["items"]:
            return "collections", None
        return "collections", table.get((method, len(rest)))

    def _jobs_route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], Response] | None]:
        """Jobs, run by the local stand-in for Hugging Face's machines (hubpub/hub/jobs.py)."""
        jobs = self.hub.jobs
        if not jobs.enabled:
            return "jobs", lambda: refusal(HubError(403, JOBS_OFF))
        if not 1 <= len(parts) <= 3:
            return "jobs", None
        namespace = validation.url_segment(parts[0], "namespace")
        if len(parts) == 1:
            table: dict[str, Callable[[], Response]] = {
                "POST": lambda: ok(jobs.create(self._writer(), namespace, self._json(), self._base_url())),
                "GET": lambda: ok(jobs.listing(self._writer(), namespace, self.query, self._base_url())),
            }
            return "jobs", table.get(method)
        job_id = validation.url_segment(parts[1], "job id")
        action = parts[2] if len(parts) == 3 else ""
        if (method, action) == ("GET", ""):
            return "jobs", lambda: ok(jobs.info(self._writer(), namespace, job_id, self._base_url()))
        if (method, action) == ("POST", "cancel"):
            return "jobs", lambda: self._done(lambda: jobs.cancel(self._writer(), namespace, job_id))
        if (method, action) == ("GET", "logs"):
            tail = self.query.get("tail", [None])[0]
            return "job_logs", lambda: Response(
                200,
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                stream=jobs.stream(self._writer(), namespace, job_id, tail),
            )
        return "jobs", None

    def _reader(self) -> Identity | None:
        return self._identity(required=False)

    def _writer(self) -> Identity:
        identity = self._identity(required=True)
        assert identity is not None
        return identity

    @staticmethod
    def _done(action: Callable[[], None]) -> Response:
        action()
        return ok({})

    def _lfs_route(self, method: str, parts: list[str]) -> tuple[str, Callable[[], Response] | None]:
        if len(parts) < 4 or parts[0] not in _TYPE_BY_PLURAL:
            return "unknown", None
        repo = _repo(_TYPE_BY_PLURAL[parts[0]], parts[1], parts[2])
        oid = validation.lfs_oid(validation.url_segment(parts[3], "LFS oid"))
        if method == "PUT" and len(parts) == 4:
            return "lfs_upload", lambda: self._lfs_upload(repo, oid)
        if method == "POST" and parts[4:] == ["verify"]:
            return "lfs_verify", lambda: self._lfs_verify(repo, oid)
        return "unknown", None

    def _base_url(self) -> str:
        """The URL clients reached this server at (its Host header) when that is one of this Hub's names, else the
        public URL or the server's own: a forged Host never leads a client elsewhere."""
        return self.hub.hosts.base_url(self.headers.get("Host"))

    def _repo_url(self, repo: Repo) -> str:
        return f"{self._base_url()}/{_TYPE_PREFIX[repo.type]}{repo.id}"

    # -- web pages -----------------------------------------------------------------------------
    def _page(self, method: str, parts: list[str]) -> Response:
        form = parse_form(self._body.read_all(), "The login form", 16) if method == "POST" else {}
        viewer, refused = self._viewer()
        request = pages.PageRequest(
            method,
            tuple(parts),
            viewer,
            refused,
            query=self.query,
            form=form,
            same_origin=self._same_origin(),
            session=pages.cookie_session(self.headers.get_all("Cookie") or []),
            client=str(self.client_address[0]),
        )
        return self.hub.pages.answer(request)

    # -- account and repos ---------------------------------------------------------------------
    def _whoami(self) -> Response:
        identity = self._identity(required=True)
        assert identity is not None
        return ok(
            {
                "type": "user",
                "name": identity.name,
                "fullname": identity.name,
                "email": None,
                "orgs": [{"name": org, "type": "org"} for org in identity.namespaces],
                "auth": {"type": "access_token", "accessToken": {"displayName": "hubpub", "role": identity.role}},
            }
        )

    def _create_repo(self) -> Response:
        identity = self._identity(required=True)
        assert identity is not None
        body = self._json()
        namespace = body.get("organization") or identity.name
        repo = Repo.checked(body.get("type") or "model", namespace, body.get("name"))
        private = visibility(body)
        if not identity.can_write(repo.namespace):
            raise HubError(403, f"You don't have the rights to create a repo in {repo.namespace}")
        url = self._repo_url(repo)
        if not self.hub.store.create_repo(repo, private=bool(private), author=identity.name):
            raise HubError(409, f"You already created this {repo.type} repo", extra={"url": url})
        return ok({"url": url, "name": repo.id, "id": repo.id})

    def _delete_repo(self) -> Response:
        identity = self._identity(required=True)
        assert identity is not None
        body = self._json()
        repo = Repo.checked(body.get("type") or "model", body.get("organization") or identity.name, body.get("name"))
        self._writable(repo)
        self.hub.store.delete_repo(repo)
        return ok({})

    def _settings(self, repo: Repo) -> Response:
        self._writable(repo)
        body = self._json()
        private = visibility(body)
        if private is not None:
            self.hub.store.set_private(repo, private)
        else:
            self.hub.store.meta(repo)
        return ok({})

    def _repo_info(self, repo: Repo, revision: str) -> Response:
        self._readable(repo)
        store = self.hub.store
        sha = store.resolve(repo, revision)
        info = self._summary(repo, store.meta(repo), sha)
        if self.query.get("blobs", [""])[0] == "true":
            tree = store.tree(repo, sha)
            for sibling in info["siblings"]:
                entry = tree[sibling["rfilename"]]
                sibling.update({"size": entry.size, "blobId": entry.oid})
                if entry.lfs_sha256:
                    pointer_size = len(f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.lfs_sha256}")
                    sibling["lfs"] = {"sha256": entry.lfs_sha256, "size": entry.size, "pointerSize": pointer_size + 20}
        return ok(info)

    def _summary(self, repo: Repo, meta: dict[str, Any], sha: str) -> dict[str, Any]:
        """What repo info and the list endpoints say about a repo at one commit."""
        store = self.hub.store
        tree = store.tree(repo, sha)
        card = self._card_data(repo, tree)
        summary: dict[str, Any] = {"id": repo.id}
        if repo.type == "model":
            summary["modelId"] = repo.id
        summary.update(
            {
                "author": repo.namespace,
                "sha": sha,
                "private": meta["private"],
                "gated": False,
                "disabled": False,
                "lastModified": store.read_commit(repo, sha)["date"],
                "createdAt": meta["createdAt"],
                "tags": listing.card_tags(repo.type, card),
                "downloads": 0,
                "likes": 0,
                "trendingScore": 0,
                "siblings": [{"rfilename": path} for path in sorted(tree)],
                "cardData": card,
            }
        )
        if repo.type == "space":
            del summary["downloads"]
        if repo.type == "model":
            for key in ("pipeline_tag", "library_name"):
                if isinstance((card or {}).get(key), str):
                    summary[key] = (card or {})[key]
        return summary

    def _list_repos(self, kind: str) -> Response:
        identity = self._identity(required=False)
        query = listing.parse_query(kind, self.query, self.hub.limits.list_page)
        store = self.hub.store
        summaries = []
        for repo in store.repos(kind):
            if query.author is not None and repo.namespace.lower() != query.author.lower():
                continue
            try:
                meta = store.meta(repo)
                if not can_read(identity, repo.namespace, private=meta["private"]):
                    continue
                summary = self._summary(repo, meta, store.resolve(repo, "main"))
            except HubError:
                continue  # deleted, or left without a main branch, while we listed
            if listing.selected(summary, query):
                summaries.append(summary)
        shown, cursor = listing.page(summaries, query)
        headers = {}
        if cursor is not None:
            link = f"{self._base_url()}/api/{kind}s?{listing.next_link(self.query, cursor)}"
            headers["Link"] = f'<{link}>; rel="next"'
        return ok([listing.shaped(summary, query) for summary in shown], headers)

    def _repo_storage(self, namespace: str | None) -> Response:
        """`hf repos ls`: every repo of the caller's namespace (or of one it owns), with the bytes it stores.

        One page: a namespace on this Hub holds as many repos as its owner made, not the Hub's millions.
        """
        identity = self._identity(required=True)
        assert identity is not None
        namespace = namespace or identity.name
        if not identity.owns(namespace):
            raise HubError(403, f"This token cannot read the settings of {namespace}")
        store = self.hub.store
        items = []
        for kind in REPO_TYPES:
            for repo in store.repos(kind):
                if repo.namespace.lower() != namespace.lower():
                    continue
                try:
                    meta, sha = store.meta(repo), store.resolve(repo, "main")
                    updated, storage = store.read_commit(repo, sha)["date"], store.storage(repo)
                except (HubError, OSError):
                    continue  # deleted while we listed
                visibility = "private" if meta["private"] else "public"
                items.append(
                    {"id": repo.id, "type": kind, "updatedAt": updated, "visibility": visibility, "storage": storage}
                )
        total = sum(item["storage"] for item in items) or 1
        return ok([{**item, "storagePercent": round(100 * item["storage"] / total, 2)} for item in items])

    def _card_data(self, repo: Repo, tree: dict[str, Entry]) -> dict[str, Any] | None:
        entry = tree.get("README.md")
        if entry is None:
            return None
        return self.hub.cards.info(store_readme(self.hub.store, repo, entry)).metadata

    # -- listings ------------------------------------------------------------------------------
    def _tree_item(self, path: str, entry: Entry) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.lfs_sha256:
            item["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": 134}
        return item

    def _tree(self, repo: Repo, revision: str, raw_prefix: list[str]) -> Response:
        prefix = "/".join(validation.url_segment(part, "path") for part in raw_prefix)
        self._readable(repo)
        tree = self.hub.store.tree(repo, self.hub.store.resolve(repo, revision))
        recursive = self.query.get("recursive", ["false"])[0] == "true"
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        if base and not any(path.startswith(base) for path in tree):
            raise HubError(404, f"{validation.shown(prefix)} does not exist", "EntryNotFound")
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
        return ok(list(items.values()))

    def _paths_info(self, repo: Repo, revision: str) -> Response:
        self._readable(repo)
        with self.hub.memory.hold(self._body.remaining):
            form = parse_form(self._body.read_all(), "The paths-info body", self.hub.limits.max_items)
        tree = self.hub.store.tree(repo, self.hub.store.resolve(repo, revision))
        return ok([self._tree_item(path, tree[path]) for path in form.get("paths", []) if path in tree])

    def _refs(self, repo: Repo) -> Response:
        self._readable(repo)
        refs = self.hub.store.refs(repo)
        return ok(
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

    def _commits(self, repo: Repo, revision: str) -> Response:
        self._readable(repo)
        store = self.hub.store
        return ok(
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
    def _create_tag(self, repo: Repo, revision: str) -> Response:
        self._writable(repo)
        body = self._json()
        tag = validation.ref_name(body.get("tag"), "tag")
        if body.get("message") is not None:
            validation.text(body["message"], "tag message")
        sha = self.hub.store.resolve(repo, revision)
        self.hub.store.set_ref(repo, "tag", tag, sha)
        return ok({})

    def _create_branch(self, repo: Repo, branch: str) -> Response:
        self._writable(repo)
        name = validation.ref_name(branch, "branch")
        body = self._json()
        starting_point = body.get("startingPoint") or "main"
        sha = self.hub.store.resolve(repo, validation.text(starting_point, "startingPoint", 1024))
        self.hub.store.set_ref(repo, "branch", name, sha)
        return ok({})

    def _delete_ref(self, repo: Repo, kind: str, name: str) -> Response:
        self._writable(repo)
        if kind == "branch" and name == "main":
            raise HubError(400, "The main branch cannot be deleted")
        self.hub.store.set_ref(repo, kind, name, None)
        return ok({})

    # -- uploads -------------------------------------------------------------------------------
    def _validate_yaml(self) -> Response:
        body = self._json()
        content = validation.text(body.get("content", ""), "content", self.hub.limits.large_json_body)
        try:
            card_metadata(content)
        except CardMetadataError as error:
            return Response(400, {"errors": [{"message": str(error)}]}, reason=str(error))
        return ok({"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, revision: str) -> Response:
        self._writable(repo)
        if "create_pr" in self.query:
            raise HubError(400, "pull requests are not supported by the embedded Hub")
        store = self.hub.store
        sha = store.resolve(repo, revision)
        body = self._json()
        files = validation.listing(body.get("files"), "files", self.hub.limits.max_items)
        patterns = store.lfs_patterns(repo, sha)
        tree = store.tree(repo, sha)
        answers = []
        for item in files:
            item = validation.mapping(item, "each file")
            path = validation.file_path(item.get("path"))
            size = validation.size(item.get("size", 0), self.hub.limits.lfs_object)
            sample = decode_base64(item.get("sample", ""), "sample")
            lfs = store.wants_lfs(patterns, path, size, sample)
            answer: dict[str, Any] = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            current = tree.get(path)
            if current is not None:
                answer["oid"] = current.lfs_sha256 if lfs else current.oid
            answers.append(answer)
        return ok({"files": answers, "commitOid": sha})

    def _lfs_batch(self, repo: Repo) -> Response:
        self._writable(repo)
        self.hub.store.meta(repo)
        body = self._json()
        if body.get("operation", "upload") != "upload":
            raise HubError(400, "the embedded Hub's LFS batch API takes uploads only")
        items = validation.listing(body.get("objects"), "objects", self.hub.limits.max_items)
        objects = []
        expires = int(time.time()) + UPLOAD_LINK_SECONDS
        for item in items:
            item = validation.mapping(item, "each object")
            oid = validation.lfs_oid(item.get("oid"))
            size = validation.size(item.get("size"), self.hub.limits.lfs_object)
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if not self.hub.store.has_lfs(repo, oid, size):
                link = f"{self._base_url()}/_lfs/{repo.type}s/{repo.id}/{oid}"
                signature = self.hub.sign(repo, oid, size, expires)
                entry["actions"] = {
                    "upload": {"href": f"{link}?size={size}&expires={expires}&sig={signature}", "header": {}},
                    "verify": {"href": f"{link}/verify", "header": {}},
                }
            objects.append(entry)
        return ok({"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, repo: Repo, oid: str) -> Response:
        """The signed link stands in for a token (the client sends none): it names repo, object, size and expiry."""
        size_text, expires_text = self.query.get("size", [""])[0], self.query.get("expires", [""])[0]
        signature = self.query.get("sig", [""])[0]
        if not (_CONTENT_LENGTH.fullmatch(size_text) and _CONTENT_LENGTH.fullmatch(expires_text)):
            raise HubError(403, "invalid upload link")
        size, expires = int(size_text), int(expires_text)
        if not hmac.compare_digest(signature, self.hub.sign(repo, oid, size, expires)):
            raise HubError(403, "invalid upload signature")
        if expires < time.time():
            raise HubError(403, "the upload link has expired; ask the LFS batch API for a new one")
        if self._body.length != size:
            raise HubError(400, f"The body has {self._body.length} bytes; this upload link is for {size}")
        self.hub.store.store_lfs(repo, oid, size, self._body)
        return ok({})

    def _lfs_verify(self, repo: Repo, oid: str) -> Response:
        self._writable(repo)
        body = self._json()
        size = validation.size(body.get("size"), self.hub.limits.lfs_object)
        if body.get("oid", oid) != oid or not self.hub.store.has_lfs(repo, oid, size):
            raise HubError(404, f"LFS object {oid} of {size} bytes is not stored in {repo.id}")
        return ok({})

    def _commit(self, repo: Repo, revision: str) -> Response:
        identity = self._writable(repo)
        if "create_pr" in self.query:
            raise HubError(400, "pull requests are not supported by the embedded Hub")
        self.hub.store.meta(repo)
        with contextlib.ExitStack() as spools:
            header, operations = self._commit_body(spools)
            change = NewCommit(
                revision,
                tuple(operations),
                title=header["summary"],
                message=header["description"],
                author=identity.name,
                parent_commit=header.get("parentCommit"),
            )
            sha = self.hub.store.commit(repo, change)
        return ok(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._repo_url(repo)}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _admin_faults(self) -> Response:
        authorization = self.headers.get("Authorization") or ""
        expected = f"Bearer {self.hub.admin_token}"
        if not self.hub.admin_token or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HubError(403, "fault injection needs the admin token")
        body = self._json()
        if body.get("clear"):
            self.hub.faults.clear()
        for fault in validation.listing(body.get("faults", []), "faults", 100):
            fault = validation.mapping(fault, "each fault")
            drop, delay = fault.get("drop_after_bytes"), fault.get("delay", 0)
            if isinstance(delay, bool) or not isinstance(delay, int | float):
                raise HubError(400, "delay must be a number of seconds")
            self.hub.faults.add(
                validation.text(fault.get("route"), "route", 64),
                status=validation.size(fault.get("status", 500), 599, "status"),
                times=validation.size(fault.get("times", 1), 1_000_000, "times"),
                drop_after_bytes=None if drop is None else validation.size(drop, 1 << 40, "drop_after_bytes"),
                delay=min(max(float(delay), 0.0), 60.0),
            )
        return ok({"planned": len(self.hub.faults.planned)})

    # -- downloads -----------------------------------------------------------------------------
    def _resolve(self, repo: Repo, revision: str, path: str) -> Response:
        self._readable(repo, cookie=True)
        store = self.hub.store
        sha = store.resolve(repo, revision)
        entry = store.tree(repo, sha).get(path)
        if entry is None:
            # X-Repo-Commit lets the client remember the miss for this commit.
            headers = {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": sha}
            return Response(404, {"error": f"Entry not found: {validation.shown(path)}"}, headers, reason="no entry")
        headers = {
            **_RAW_FILE_HEADERS,
            "Content-Disposition": _attachment(path),
            "ETag": f'"{entry.oid}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
        }
        if entry.lfs_sha256:
            headers.update({"X-Linked-Etag": f'"{entry.lfs_sha256}"', "X-Linked-Size": str(entry.size)})
        blob = store.open_entry(repo, entry)
        wanted = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if wanted is None:
            return Response(200, headers=headers, file=blob, length=entry.size)
        start = int(wanted.group(1))
        end = min(int(wanted.group(2)), entry.size - 1) if wanted.group(2) else entry.size - 1
        if start >= entry.size:
            message = f"Range starts at {start}, past the end of {entry.size} bytes"
            headers = {"Content-Range": f"bytes */{entry.size}", "X-Error-Message": message}
            return Response(416, {"error": message}, headers, reason=message)
        if end < start:
            return Response(200, headers=headers, file=blob, length=entry.size)
        headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        return Response(206, headers=headers, file=blob, offset=start, length=end - start + 1)


def _attachment(path: str) -> str:
    """`Content-Disposition: attachment` with the file's name: plain ASCII, then the exact name (RFC 6266)."""
    name = path.rsplit("/", 1)[-1]
    return f"attachment; filename=\"{_ATTACHMENT_NAME.sub('_', name)}\"; filename*=UTF-8''{quote(name, safe='')}"


def _path_only(handler: BaseHTTPRequestHandler) -> str:
    """The request's path without its query (upload links carry their signature there)."""
    raw = str(getattr(handler, "path", "") or "")
    try:
        return urlsplit(raw).path
    except ValueError:
        return raw.split("?", 1)[0]


def _repo(kind: str, raw_namespace: str, raw_name: str) -> Repo:
    return Repo.checked(
        kind, validation.url_segment(raw_namespace, "namespace"), validation.url_segment(raw_name, "repo name")
    )
