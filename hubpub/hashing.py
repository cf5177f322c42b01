"""Content hashes and input fingerprints, the keys of every cached stage output."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from hubpub.sharedcache import exclusive, write_atomic

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(inputs: Any) -> str:
    """A stable hash of JSON-able inputs (keys sorted), used to key a cached output."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_text(canonical)


class HashCache:
    """sha256 of files, remembered by (path, size, mtime) so unchanged files are not read again.

    A re-run of a finished release must be cheap, and hashing a multi-GB checkpoint is not.
    """

    def __init__(self, store: Path) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._known = _read_store(store)

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        digest = sha256_file(path)
        with self._lock:
            self._known[key] = digest
            self._save()
        return digest

    def tree(self, folder: Path) -> dict[str, str]:
        """sha256 of every file below `folder`, by relative POSIX path."""
        return {
            path.relative_to(folder).as_posix(): self.sha256(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }

    def _save(self) -> None:
        # Other processes may share the store (a shared cache folder): keep what they added meanwhile.
        with exclusive(self.store.with_name(f"{self.store.name}.lock")):
            self._known = {**_read_store(self.store), **self._known}
            write_atomic(self.store, json.dumps(self._known, indent=0, sort_keys=True))


def _read_store(store: Path) -> dict[str, str]:
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return known if isinstance(known, dict) else {}
