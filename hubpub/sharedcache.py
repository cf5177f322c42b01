"""The cache every release on a machine shares: GGUF conversions, file hashes, base perplexity and evaluation.

It lives in `<workdir>/cache` unless `--cache-dir` or $HUBPUB_CACHE_DIR points elsewhere, such as a
runner's persistent folder, so the jobs of a release matrix evaluate a family's base once. Several
processes may use it at once: files are written whole (a temporary file renamed over the target),
and work done once per key runs under a lock.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_DIR_ENV = "HUBPUB_CACHE_DIR"


def cache_dir(workdir: Path, explicit: Path | None = None) -> Path:
    """`explicit`, else $HUBPUB_CACHE_DIR, else `<workdir>/cache`."""
    if explicit is not None:
        return explicit
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured).expanduser() if configured else workdir / "cache"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an flock on `lock_file` (created if missing): one process at a time, the others wait."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
