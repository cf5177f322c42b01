"""The web pages' login: a session per login, kept in this process's memory, and a limit on failed logins.

The cookie holds a random session id, never the token. The server keeps, by the id's sha256, the digest of
the token that logged in and when the session ends: logging out deletes it, a token taken out of the table
ends its sessions at their next use, and a restart ends them all. Both tables have a fixed capacity (the
oldest entry goes first), so neither many logins nor many addresses can grow the server's memory.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from hubpub.hub.tokens import Identity, TokenTable, token_digest

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
CAPACITY = 10_000


@dataclass(frozen=True)
class _Session:
    token_digest: str
    expires: float


class Sessions:
    """Logged-in browsers: a session id stands for a token of the table until it expires or is closed."""

    def __init__(
        self,
        tokens: TokenTable,
        lifetime: float,
        *,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.lifetime = lifetime
        self._capacity = capacity
        self._clock = clock
        self._by_id: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, token: str) -> str:
        """A new session for a token the caller has checked; the id to put in the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            # Every session lives as long as the others, so the oldest are first and expire first.
            while self._by_id and next(iter(self._by_id.values())).expires <= now:
                self._by_id.popitem(last=False)
            while len(self._by_id) >= self._capacity:
                self._by_id.popitem(last=False)
            self._by_id[_key(session_id)] = _Session(token_digest(token), now + self.lifetime)
        return session_id

    def identity(self, session_id: str) -> Identity | None:
        """Who a session is, or None when it is unknown, expired, closed, or its token left the table."""
        if not SESSION_ID.fullmatch(session_id):
            return None
        key = _key(session_id)
        with self._lock:
            session = self._by_id.get(key)
            if session is None:
                return None
            identity = self.tokens.by_digest.get(session.token_digest)
            if identity is None or session.expires <= self._clock():
                del self._by_id[key]
                return None
            return identity

    def close(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(_key(session_id), None)


class LoginLimiter:
    """Failed logins per client address: after `failures` within `window` seconds, the address waits.

    An IPv6 client counts by its /64 network, which one machine usually has whole.
    """

    def __init__(
        self,
        failures: int,
        window: float,
        *,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window = window
        self._capacity = capacity
        self._clock = clock
        self._by_client: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds the client must wait before its next try; 0 when it may try now."""
        with self._lock:
            recent = self._by_client.get(_client_key(client))
            if recent is None or len(recent) < self.failures:
                return 0
            wait = recent[0] + self.window - self._clock()
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, client: str) -> None:
        key, now = _client_key(client), self._clock()
        with self._lock:
            # Kept in order of the last failure: the front is the stalest, dropped once its window has passed.
            while self._by_client and next(iter(self._by_client.values()))[-1] + self.window <= now:
                self._by_client.popitem(last=False)
            recent = self._by_client.pop(key, None)
            if recent is None:
                while len(self._by_client) >= self._capacity:
                    self._by_client.popitem(last=False)
                recent = deque(maxlen=self.failures)
            recent.append(now)
            self._by_client[key] = recent


def _key(session_id: str) -> str:
    # Looked up by digest: a dict lookup by the id itself would compare secrets in variable time.
    return hashlib.sha256(session_id.encode("ascii", errors="replace")).hexdigest()


def _client_key(client: str) -> str:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped or address) if isinstance(address, ipaddress.IPv6Address) else str(address)
