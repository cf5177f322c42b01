"""The names this Hub answers to: the loopback names and the address it listens on, at its port, and the URL
that `hub serve --public-url` gives (a reverse proxy's, say).

The login takes a form only when its `Host` and `Origin` are among them: a page that rebinds its own DNS name
to this machine sends that name in both, so comparing one with the other proves nothing. Links in answers are
built from the `Host` header only when it is one of them; any other name gets the server's own URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hubpub.hub.errors import HubConfigError

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD = ("", "0.0.0.0", "::", "[::]")
_DEFAULT_PORT = {"http": 80, "https": 443}
_HOSTNAME = re.compile(r"[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\]")


@dataclass(frozen=True)
class PublicURL:
    """Where clients reach the Hub from elsewhere: its origin (`https://hub.example.com`) and the Host headers
    that name it."""

    origin: str
    hosts: frozenset[str]

    @classmethod
    def parse(cls, value: str) -> PublicURL:
        """`http(s)://host[:port]`, with nothing after it; anything else is a HubConfigError."""
        problem = f"--public-url {value!r}: give http(s)://HOST[:PORT], the URL browsers and clients use"
        try:
            split = urlsplit(value.strip())
            port = split.port
        except ValueError:
            raise HubConfigError(problem) from None
        host = _bracketed(split.hostname or "")
        if (
            split.scheme not in _DEFAULT_PORT
            or not _HOSTNAME.fullmatch(host)
            or "@" in split.netloc
            or split.path not in ("", "/")
            or split.query
            or split.fragment
        ):
            raise HubConfigError(problem)
        default = _DEFAULT_PORT[split.scheme]
        hosts = {f"{host}:{port or default}"}
        if port in (None, default):
            hosts.add(host)
        origin = f"{split.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")
        return cls(origin, frozenset(hosts))


@dataclass(frozen=True)
class AllowedHosts:
    own_url: str
    """The URL the server listens at, for links when the request named no allowed host."""
    hosts: frozenset[str]
    """Host headers (lowercase) that reach the server directly, over plain HTTP."""
    origins: frozenset[str]
    public: PublicURL | None = None

    @classmethod
    def of(cls, listening: str, port: int, public: PublicURL | None = None) -> AllowedHosts:
        names = list(LOOPBACK)
        listening = _bracketed(listening.lower())
        if listening not in _WILDCARD and listening not in names:
            names.append(listening)
        hosts = {f"{name}:{port}" for name in names}
        if port == 80:
            hosts.update(names)
        origins = {f"http://{name}:{port}" if port != 80 else f"http://{name}" for name in names}
        if public is not None:
            origins.add(public.origin)
        return cls(f"http://{listening}:{port}", frozenset(hosts), frozenset(origins), public)

    def host_allowed(self, host: str | None) -> bool:
        value = (host or "").strip().lower()
        return value in self.hosts or (self.public is not None and value in self.public.hosts)

    def origin_allowed(self, origin: str) -> bool:
        return origin.strip().lower() in self.origins

    def base_url(self, host: str | None) -> str:
        """The URL to build links from: the one the client used when it is this Hub's, else the public or own URL."""
        value = (host or "").strip().lower()
        if self.public is not None and value in self.public.hosts:
            return self.public.origin
        if value in self.hosts:
            return f"http://{value}"
        return self.public.origin if self.public is not None else self.own_url


def _bracketed(host: str) -> str:
    """An IPv6 address as it stands in a Host header or URL (urlsplit's hostname drops the brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
