"""The test harness for the embedded Hub: who is who, a raw HTTP/1.1 client for the requests no library would
send, and commit bodies built by hand."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import HfApi

from hubpub.hub import HubServer, Identity

ALICE = "hf_alice_token_0123456789"
BOB = "hf_bob_token_0123456789abc"
TOKENS = {ALICE: Identity(name="alice", writable=frozenset()), BOB: Identity(name="bob", writable=frozenset())}


@dataclass
class Hub:
    """A running server, its store folder, and the lines it logged (one per refused request)."""

    server: HubServer
    root: Path
    log: list[str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, token: str | bool = ALICE) -> HfApi:
        return HfApi(endpoint=self.url, token=token)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw_headers: bytes
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class Connection:
    """One keep-alive TCP connection that sends raw bytes and reads one HTTP reply at a time."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        split = urlsplit(url)
        assert split.hostname == "127.0.0.1"
        self.sock = socket.create_connection((split.hostname, split.port or 80), timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def reply(self, *, head: bool = False) -> Reply:
        """The next reply; a connection closed before a whole reply fails the test (a dropped connection)."""
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection dropped without a reply (got {self.buffer[:200]!r})"
        raw_headers, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = raw_headers.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection dropped in the middle of a reply"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Reply(int(status_line.split()[1]), headers, raw_headers, body)

    def closed_by_server(self) -> bool:
        try:
            return not self._fill() and not self.buffer
        except (ConnectionResetError, TimeoutError):
            return True


def request(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    content_length: bool = True,
) -> bytes:
    """The bytes of one HTTP/1.1 request, as given: nothing is checked or escaped."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(url: str, raw: bytes, *, head: bool = False) -> Reply:
    with Connection(url) as connection:
        connection.send(raw)
        return connection.reply(head=head)


def json_request(method: str, target: str, data: object, *, token: str | None = ALICE) -> bytes:
    return request(method, target, json.dumps(data).encode(), token=token)


def commit_body(*operations: dict[str, object], summary: str = "test", parent: str | None = None) -> bytes:
    """An NDJSON commit body: the header, then one line per operation ({"key": ..., "value": ...})."""
    header: dict[str, object] = {"summary": summary, "description": ""}
    if parent is not None:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}, *operations]
    return b"\n".join(json.dumps(line).encode() for line in lines)


def add_file(path: str, content: bytes) -> dict[str, object]:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"}}


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")} if folder.exists() else set()
