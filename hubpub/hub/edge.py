"""The server's edge under slow or many clients: deadlines on whole requests, a bounded number of
connections, and a bounded number of body bytes held in memory.

A connection waits for its next request at most `Limits.keep_alive_seconds`; once the first byte
of a request arrives, its request line and headers have `Limits.header_seconds`, and its body a
time that grows with its declared size. Each read still has its own timeout. At most
`Limits.max_connections` connections are served at once: a new one past that closes the
connection that has waited longest for its next request (an idle or a stalled one), and when every
connection is busy inside a request it gets a quick 503.
"""

from __future__ import annotations

import contextlib
import errno
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hubpub.hub.errors import HubError
from hubpub.hub.wire import Limits

IDLE, HEADERS, BUSY = "idle", "headers", "busy"
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BUSY_REPLY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"X-Error-Message: Too many connections\r\nConnection: close\r\nContent-Length: 33\r\n\r\n"
    b'{"error": "Too many connections"}'
)


class DeadlinePassed(OSError):
    """The request (its headers, or its body) did not arrive within its deadline."""


@dataclass
class Slot:
    """One open connection: what it is waiting for, and until when."""

    sock: socket.socket
    phase: str = IDLE
    since: float = field(default_factory=time.monotonic)
    deadline: float = float("inf")
    evicted: bool = False


class Connections:
    """The open connections, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._slots: dict[socket.socket, Slot] = {}
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._slots)

    def admit(self, sock: socket.socket) -> Slot | None:
        """A slot for a new connection; None when every slot is busy inside a request."""
        with self._lock:
            if len(self._slots) >= self.limit:
                waiting = [slot for slot in self._slots.values() if slot.phase != BUSY]
                if not waiting:
                    self.refused += 1
                    return None
                victim = min(waiting, key=lambda slot: slot.since)
                victim.evicted = True
                del self._slots[victim.sock]
                self.evicted += 1
                with contextlib.suppress(OSError):
                    victim.sock.shutdown(socket.SHUT_RDWR)
            slot = Slot(sock)
            self._slots[sock] = slot
            return slot

    def slot(self, sock: socket.socket) -> Slot:
        with self._lock:
            return self._slots.get(sock) or Slot(sock)

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._slots.pop(sock, None)

    def wait_for_request(self, slot: Slot, limits: Limits) -> None:
        with self._lock:
            slot.phase, slot.since = IDLE, time.monotonic()
            slot.deadline = slot.since + limits.keep_alive_seconds

    def first_bytes(self, slot: Slot, limits: Limits) -> None:
        with self._lock:
            if slot.phase == IDLE:
                slot.phase, slot.deadline = HEADERS, time.monotonic() + limits.header_seconds

    def busy(self, slot: Slot, limits: Limits, body_bytes: int) -> bool:
        """The headers are in: the slot can no longer be taken, and the body has its own deadline.
        False when the connection was closed to make room for another."""
        with self._lock:
            if slot.evicted:
                return False
            slot.phase = BUSY
            slot.deadline = time.monotonic() + limits.body_seconds + body_bytes / limits.body_min_rate
            return True


class DeadlineReader(io.RawIOBase):
    """The socket's read side, each read bounded by the per-read timeout and by the slot's deadline."""

    def __init__(self, connections: Connections, slot: Slot, limits: Limits, per_read: float | None) -> None:
        self._connections = connections
        self._slot = slot
        self._limits = limits
        self._per_read = per_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        slot = self._slot
        left = slot.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed(f"the request did not arrive in time ({slot.phase})")
        timeout = left if self._per_read is None else min(self._per_read, left)
        slot.sock.settimeout(timeout)
        try:
            received = slot.sock.recv_into(buffer)
        except TimeoutError:
            if time.monotonic() >= slot.deadline:
                raise DeadlinePassed(f"the request did not arrive in time ({slot.phase})") from None
            raise
        finally:
            with contextlib.suppress(OSError):
                slot.sock.settimeout(self._per_read)
        if slot.evicted:
            raise ConnectionAbortedError("closed to make room for another connection")
        if received and slot.phase == IDLE:
            self._connections.first_bytes(slot, self._limits)
        return received


def reader(connections: Connections, slot: Slot, limits: Limits, per_read: float | None) -> io.BufferedReader:
    return io.BufferedReader(DeadlineReader(connections, slot, limits, per_read))


class AcceptBackoff:
    """accept() out of file descriptors: pause briefly instead of spinning on a socket that stays readable,
    and say so once until an accept succeeds again."""

    def __init__(self, log: Callable[[str], None], pause: float = 0.05) -> None:
        self._log = log
        self._pause = pause
        self._said = False

    def failed(self, error: OSError) -> None:
        if error.errno not in _OUT_OF_DESCRIPTORS:
            return
        if not self._said:
            self._said = True
            self._log(f"hub: cannot accept connections ({error.strerror}); pausing accepts until descriptors free up")
        time.sleep(self._pause)

    def succeeded(self) -> None:
        self._said = False


def refuse_busy(sock: socket.socket) -> None:
    """A quick 503 to a connection past the limit, without ever blocking the accept loop."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(BUSY_REPLY)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.recv(1 << 16)  # what already came: closing over unread bytes would reset the answer away
    sock.close()


class MemoryBudget:
    """The body bytes held in memory at once, across all requests."""

    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.held = 0
        self.peak = 0
        self._condition = threading.Condition()

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Hold `size` bytes for a while; a 503 (Retry-After) when they are not free within the wait."""
        size = min(size, self.limit)
        deadline = time.monotonic() + self.wait_seconds
        with self._condition:
            while self.held + size > self.limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HubError(503, "The server holds too many request bodies right now; retry shortly")
                self._condition.wait(left)
            self.held += size
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            with self._condition:
                self.held -= size
                self._condition.notify_all()
