"""What crosses the wire: size limits, bodies read exactly, answers whose headers cannot be split, and the
request bodies parsed strictly (JSON, base64, the NDJSON commit), each doubt a 400.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from hubpub.hub import validation
from hubpub.hub.errors import HubError
from hubpub.hub.store import Operation, Spool

_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f]")
LARGE_JSON_ROUTES = frozenset({"preupload", "paths_info", "validate_yaml", "lfs_batch"})


@dataclass(frozen=True)
class Limits:
    """What one request may send, and how long the server waits for it."""

    json_body: int = 1 << 20
    large_json_body: int = 16 << 20
    """preupload, paths-info, validate-yaml and the LFS batch call."""
    commit_body: int = 128 << 20
    lfs_object: int = 50 << 30
    regular_file: int = 10 << 20
    """The Hub's limit for a file committed without LFS."""
    session_seconds: float = 12 * 3600
    """How long a login to the web pages lasts."""
    login_failures: int = 10
    login_window_seconds: float = 600.0
    """After `login_failures` failed logins within this many seconds, a client address waits (429)."""
    drain: int = 1 << 16
    """Unread body bytes read away after a refusal, to keep the connection usable; more closes it."""
    linger_seconds: float = 2.0
    """After a refusal that closes the connection, how long unread bytes are still read away (and dropped),
    so that the client, still sending, gets the answer instead of a reset."""
    socket_timeout: float = 60.0
    """The longest one read from a client may wait; the deadlines below bound the whole request."""
    keep_alive_seconds: float = 30.0
    """How long an open connection may wait for its next request before it is closed."""
    header_seconds: float = 20.0
    """From a request's first byte, how long its request line and headers may take to arrive."""
    body_seconds: float = 30.0
    body_min_rate: int = 64 << 10
    """A body's deadline: `body_seconds` plus its declared size at this many bytes a second (408 after it)."""
    max_connections: int = 128
    """Connections served at once; past it, the one waiting longest for a request is closed (a 503 when none)."""
    spool_body: int = 1 << 20
    """Commit bodies over this many bytes go to a file in the store's tmp/, not to memory."""
    body_memory: int = 256 << 20
    """Body bytes held in memory at once, across all requests; past it, a request waits, then gets a 503."""
    memory_wait_seconds: float = 5.0
    max_items: int = 10_000
    list_page: int = 1000
    """The most repos one page of `GET /api/models` (datasets, spaces) holds; the Hub's own page size."""

    def body_cap(self, route: str) -> int:
        if route == "commit":
            return self.commit_body
        if route == "lfs_upload":
            return self.lfs_object
        return self.large_json_body if route in LARGE_JSON_ROUTES else self.json_body


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    """Sent instead of `body`, from `offset`, `length` bytes (downloads)."""
    content: bytes | None = None
    """Sent as it is instead of `body` (the web pages); its Content-Type is in `headers`."""
    stream: Iterator[bytes] | None = None
    """Sent chunked as it comes, instead of `body` (a job's log); its Content-Type is in `headers`."""
    offset: int = 0
    length: int = 0
    reason: str = ""
    """Why the request was refused, for the log line."""


def ok(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(200, body, headers or {})


def refusal(error: HubError) -> Response:
    headers = {"X-Error-Message": error.message, **({"X-Error-Code": error.code} if error.code else {})}
    if error.status == 503:
        headers["Retry-After"] = "1"
    return Response(error.status, {"error": error.message, **error.extra}, headers, reason=error.message)


def header_value(value: str, limit: int = 512) -> str:
    """A header value that is printable ASCII: CR/LF cannot split the header, non-Latin-1 cannot break it."""
    escaped = value.encode("ascii", "backslashreplace").decode("ascii")
    escaped = _UNSAFE_HEADER_CHARS.sub(lambda match: f"\\x{ord(match.group()):02x}", escaped)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


class DroppedConnection(Exception):
    pass


class Body:
    """The request body: exactly the Content-Length bytes, read on demand, never more."""

    def __init__(
        self, rfile: io.BufferedIOBase, length: int, before_first_read: Callable[[], None] | None = None
    ) -> None:
        self.rfile = rfile
        self.length = length
        self.consumed = 0
        self._before_first_read = before_first_read

    @property
    def remaining(self) -> int:
        return self.length - self.consumed

    @property
    def awaiting_continue(self) -> bool:
        """The client sent `Expect: 100-continue` and has not been told to send the body yet."""
        return self._before_first_read is not None

    def read(self, size: int, /) -> bytes:
        if self._before_first_read is not None:
            self._before_first_read()
            self._before_first_read = None
        chunk = self.rfile.read(min(size, self.remaining)) if self.remaining > 0 else b""
        self.consumed += len(chunk)
        return chunk

    def read_all(self) -> bytes:
        parts = []
        while self.remaining > 0:
            chunk = self.read(1 << 20)
            if not chunk:
                raise HubError(400, f"The request body was cut short: {self.consumed} of {self.length} bytes arrived")
            parts.append(chunk)
        return b"".join(parts)

    def spool_into(self, spool: Spool) -> None:
        """The whole body into a file instead of memory, a block at a time."""
        while self.remaining > 0:
            chunk = self.read(1 << 20)
            if not chunk:
                raise HubError(400, f"The request body was cut short: {self.consumed} of {self.length} bytes arrived")
            spool.append(chunk)

    def discard(self, budget: int) -> None:
        while self.remaining > 0 and budget > 0:
            chunk = self.read(min(1 << 16, budget))
            if not chunk:
                return
            budget -= len(chunk)


def parse_query(raw: str) -> dict[str, list[str]]:
    try:
        return parse_qs(raw, errors="strict", max_num_fields=100)
    except (ValueError, UnicodeDecodeError):
        raise HubError(400, "Invalid query string") from None


def parse_form(raw: bytes, what: str, max_fields: int) -> dict[str, list[str]]:
    """A form-encoded body (`a=1&b=2`), UTF-8 throughout; `what` names it in the 400."""
    try:
        return parse_qs(raw.decode("utf-8"), errors="strict", max_num_fields=max_fields)
    except ValueError:
        raise HubError(400, f"{what} is not a form of UTF-8 fields (at most {max_fields})") from None


def visibility(body: dict[str, Any]) -> bool | None:
    """True for private, False for public, None when the body says nothing (old clients send `private`)."""
    visibility = body.get("visibility")
    if visibility is not None:
        if visibility not in ("private", "public"):
            raise HubError(400, "visibility must be private or public")
        return bool(visibility == "private")
    private = body.get("private")
    if private is None:
        return None
    if not isinstance(private, bool):
        raise HubError(400, "private must be true or false")
    return bool(private)


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8") or "{}")
    except UnicodeDecodeError:
        raise HubError(400, f"The {what} is not UTF-8") from None
    except RecursionError:
        raise HubError(400, f"The {what} is nested too deeply") from None
    except ValueError as exc:
        raise HubError(400, f"The {what} is not JSON: {exc}") from None
    return validation.mapping(data, f"The {what}")


def decode_base64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise HubError(400, f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HubError(400, f"{what} is not valid base64") from None


def parse_commit(body: BinaryIO, limits: Limits, blobs: Spool | None = None) -> tuple[dict[str, Any], list[Operation]]:
    """The NDJSON commit body, read line by line: a header line first, then one line per operation; any doubt
    is a 400. With `blobs`, the files' contents go there instead of staying in memory."""
    header: dict[str, Any] | None = None
    operations: list[Operation] = []
    longest = commit_line_limit(limits)
    number = 0
    while raw := body.readline(longest + 1):
        number += 1
        if len(raw) > longest and not raw.endswith(b"\n"):
            raise HubError(400, f"commit line {number} is over {longest} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HubError(400, "The commit body is not UTF-8") from None
        if not line.strip():
            continue
        item = parse_json(raw, f"commit line {number}")
        del raw, line
        key, value = item.get("key"), validation.mapping(item.get("value"), f"commit line {number}'s value")
        if (key == "header") != (header is None):
            raise HubError(400, f"commit line {number}: the header comes first, and only once")
        if key == "header":
            header = _commit_header(value)
        elif key == "file":
            operations.append(_regular_file(value, limits, blobs))
        elif key == "lfsFile":
            path = validation.file_path(value.get("path"))
            if value.get("algo", "sha256") != "sha256":
                raise HubError(400, f"{validation.shown(path)}: LFS objects are addressed by sha256")
            size = None if value.get("size") is None else validation.size(value["size"], limits.lfs_object)
            operations.append(Operation("lfsFile", path, sha256=validation.lfs_oid(value.get("oid")), size=size))
        elif key == "deletedFile":
            operations.append(Operation("deletedFile", validation.file_path(value.get("path"))))
        elif key == "deletedFolder":
            operations.append(Operation("deletedFolder", validation.folder_path(value.get("path"))))
        else:
            raise HubError(400, f"commit line {number}: unknown key {validation.shown(key)}")
    if header is None:
        raise HubError(400, "The commit body has no header line")
    return header, operations


def commit_line_limit(limits: Limits) -> int:
    """The longest line a commit body may hold: a regular file's base64, even with every `/` escaped."""
    return limits.regular_file * 8 // 3 + (2 << 20)


def _commit_header(value: dict[str, Any]) -> dict[str, Any]:
    header: dict[str, Any] = {
        "summary": validation.text(value.get("summary", ""), "summary"),
        "description": validation.text(value.get("description") or "", "description", 1 << 20),
    }
    if value.get("parentCommit") is not None:
        header["parentCommit"] = validation.commit_id(value["parentCommit"], "parentCommit")
    return header


def _regular_file(value: dict[str, Any], limits: Limits, blobs: Spool | None) -> Operation:
    path = validation.file_path(value.get("path"))
    if value.get("encoding", "base64") != "base64":
        raise HubError(400, f"{validation.shown(path)}: file content must be base64")
    content = decode_base64(value.get("content"), f"the content of {validation.shown(path)}")
    if len(content) > limits.regular_file:
        raise HubError(400, f"{validation.shown(path)} is over {limits.regular_file} bytes: upload it through LFS")
    if blobs is None:
        return Operation("file", path, content)
    return Operation("file", path, blob=blobs.keep(content))
