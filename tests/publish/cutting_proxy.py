"""A TCP proxy on 127.0.0.1 that forwards HTTP/1.1 to a Hub, but cuts commit request bodies short.

It relays one request and its answer at a time per connection (huggingface_hub's httpx client never
pipelines). A commit request it breaks is forwarded with only the first `keep(body)` bytes of its
body, after which its side of the upstream connection is shut, so the server reads a body shorter
than its Content-Length, as behind a proxy that died mid-request. The server's answer is then read
and, unless `forward_reply`, thrown away with the client's connection: the client never learns what
happened. Every loop is bounded by socket timeouts and the proxy's lifetime, so it stops by itself.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

IO_TIMEOUT_SECONDS = 30.0
COMMIT_REQUEST = re.compile(rb"^POST /api/models/\S+/commit/\S+ HTTP/1\.1\r\n")
MAX_HEAD_LINES = 200


@dataclass(frozen=True)
class CutCommit:
    """What the proxy did to one commit request: bytes forwarded of those declared, and the answer."""

    sent: int
    declared: int
    status: int | None


def after_lines(count: int) -> Callable[[bytes], int]:
    """Keep the first `count` ndjson lines (the header is the first): the cut falls between two lines."""

    def keep(body: bytes) -> int:
        end = 0
        for _ in range(count):
            end = body.index(b"\n", end) + 1
        return end

    return keep


def into_line(count: int, extra: int) -> Callable[[bytes], int]:
    """Keep `count` whole lines and `extra` bytes of the next one: the cut falls inside a JSON line."""
    return lambda body: after_lines(count)(body) + extra


def before_last_line(body: bytes) -> int:
    return body.rstrip(b"\n").rindex(b"\n") + 1


def whole(body: bytes) -> int:
    return len(body)


class CuttingProxy:
    def __init__(
        self,
        upstream_url: str,
        *,
        keep: Callable[[bytes], int],
        forward_reply: bool = False,
        cuts: int = 1,
        lifetime_seconds: float = 300.0,
    ) -> None:
        split = urlsplit(upstream_url)
        assert split.hostname is not None and split.port is not None
        self.upstream = (split.hostname, split.port)
        self.keep = keep
        self.forward_reply = forward_reply
        self.cut: list[CutCommit] = []
        self._cuts_left = cuts
        self._deadline = time.monotonic() + lifetime_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> CuttingProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=IO_TIMEOUT_SECONDS)
        assert not any(thread.is_alive() for thread in self._threads), "the proxy did not stop"

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _running(self) -> bool:
        return not self._stopping.is_set() and time.monotonic() < self._deadline

    def _accept(self) -> None:
        with self._listener:
            while self._running():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                self._spawn(self._relay, client)

    def _take_cut(self) -> bool:
        with self._lock:
            if self._cuts_left <= 0:
                return False
            self._cuts_left -= 1
            return True

    def _relay(self, client: socket.socket) -> None:
        # A connection that times out or is shut by __exit__ just ends.
        with (
            contextlib.suppress(OSError),
            client,
            socket.create_connection(self.upstream, IO_TIMEOUT_SECONDS) as upstream,
        ):
            client.settimeout(IO_TIMEOUT_SECONDS)
            with self._lock:
                self._sockets += [client, upstream]
            from_client, from_upstream = client.makefile("rb"), upstream.makefile("rb")
            while self._running():
                head = _read_head(from_client)
                if head is None:
                    return
                body = from_client.read(_content_length(head))
                method = head.split(b" ", 1)[0]
                if COMMIT_REQUEST.match(head) and self._take_cut():
                    kept = self.keep(body)
                    upstream.sendall(head + body[:kept])
                    upstream.shutdown(socket.SHUT_WR)
                    answer = _read_answer(from_upstream, method)
                    self.cut.append(CutCommit(kept, len(body), _status(answer)))
                    if self.forward_reply:
                        client.sendall(answer)
                    return
                upstream.sendall(head + body)
                answer = _read_answer(from_upstream, method)
                if not answer:
                    return
                client.sendall(answer)


def _read_head(stream: BinaryIO) -> bytes | None:
    """The request or status line and headers, through the blank line; None at the end of the stream."""
    lines = []
    for _ in range(MAX_HEAD_LINES):
        line = stream.readline()
        if not line:
            return None
        lines.append(line)
        if line == b"\r\n":
            return b"".join(lines)
    raise AssertionError("an HTTP head longer than the proxy reads")


def _content_length(head: bytes) -> int:
    assert b"transfer-encoding: chunked" not in head.lower(), "the proxy relays Content-Length bodies only"
    found = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    return int(found.group(1)) if found else 0


def _read_answer(stream: BinaryIO, method: bytes) -> bytes:
    """A whole answer (b"" when the server closed without one); HEAD answers and 204/304 carry no body."""
    head = _read_head(stream)
    if head is None:
        return b""
    bodiless = method == b"HEAD" or _status(head) in (204, 304)
    return head + (b"" if bodiless else stream.read(_content_length(head)))


def _status(answer: bytes) -> int | None:
    found = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(found.group(1)) if found else None
