"""The embedded Hub's own errors; it imports nothing from the rest of hubpub, and cli.py maps them."""

from __future__ import annotations


class HubError(Exception):
    """A request the embedded Hub refuses: an HTTP status, a message, and the Hub's X-Error-Code if any."""

    def __init__(self, status: int, message: str, code: str | None = None, *, extra: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}
        """More keys for the JSON answer (create_repo's 409 carries the repo's `url`)."""


class HubConfigError(Exception):
    """The embedded Hub cannot start as configured: a bad tokens file, a store it cannot open."""
