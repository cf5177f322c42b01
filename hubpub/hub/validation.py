"""The Hub's own rules for names, paths, refs and ids, checked at the edge before anything touches the store.

Repo ids follow huggingface.co's rule (the client's `validate_repo_id` says the same): ASCII letters,
digits, `-`, `_` and `.`; no `--` or `..`; `-` and `.` neither start nor end a part; at most 96
characters; a name never ends in `.git`. File paths follow what huggingface_hub can download on any
system. Branch and tag names follow `git check-ref-format`, and may not pass for a commit id.
Every refusal is a 400 that names the value and the rule it breaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from hubpub.hub.errors import HubError

REPO_TYPES = ("model", "dataset", "space")
REPO_PART_MAX = 96
PATH_MAX_BYTES = 4096
SEGMENT_MAX_BYTES = 255
REF_MAX_BYTES = 255
FORBIDDEN_FOLDERS = (".git", ".cache")
"""What huggingface_hub itself refuses to upload into: git's folder and the client's local_dir metadata."""

_REPO_PART = re.compile(r"[A-Za-z0-9._-]+")
_LFS_OID = re.compile(r"[0-9a-f]{64}")
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{40}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def shown(value: object, limit: int = 80) -> str:
    """A value as it may appear in a message: ASCII-escaped and cut short."""
    text = ascii(value) if isinstance(value, str) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refused(what: str, value: object, why: str) -> HubError:
    return HubError(400, f"Invalid {what} {shown(value)}: {why}")


def _utf8(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _refused(what, value, "must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _refused(what, value, "not valid UTF-8") from None
    return value


def url_segment(raw: str, what: str) -> str:
    """One percent-decoded URL path segment; bytes that are not UTF-8 are refused, not replaced."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _refused(what, raw, "not valid UTF-8 once percent-decoded") from None


def repo_part(value: object, what: str = "repo name") -> str:
    """A namespace or a repo name."""
    text = _utf8(value, what)
    if not 1 <= len(text) <= REPO_PART_MAX:
        raise _refused(what, text, f"must be 1 to {REPO_PART_MAX} characters")
    if not _REPO_PART.fullmatch(text):
        raise _refused(what, text, "use only ASCII letters, digits, '-', '_' and '.'")
    if "--" in text or ".." in text:
        raise _refused(what, text, "'--' and '..' are forbidden")
    if text[0] in "-." or text[-1] in "-.":
        raise _refused(what, text, "'-' and '.' cannot start or end it")
    if text.endswith(".git"):
        raise _refused(what, text, "cannot end with '.git'")
    return text


def repo_type(value: object) -> str:
    if value not in REPO_TYPES:
        raise _refused("repo type", value, f"must be one of {', '.join(REPO_TYPES)}")
    return str(value)


def file_path(value: object, what: str = "path") -> str:
    """A file's path inside a repo, as a commit names it."""
    text = _utf8(value, what)
    if not text:
        raise _refused(what, text, "empty")
    if len(text.encode("utf-8")) > PATH_MAX_BYTES:
        raise _refused(what, text, f"longer than {PATH_MAX_BYTES} bytes")
    if text.startswith("/"):
        raise _refused(what, text, "absolute paths are not allowed")
    if "\\" in text:
        raise _refused(what, text, "'\\' is a folder separator on Windows clients")
    if _CONTROL.search(text):
        raise _refused(what, text, "control characters are not allowed")
    for segment in text.split("/"):
        if not segment:
            raise _refused(what, text, "empty segment ('a//b' or a trailing '/')")
        if segment in (".", ".."):
            raise _refused(what, text, f"'{segment}' segments are not allowed")
        if segment in FORBIDDEN_FOLDERS:
            raise _refused(what, text, f"nothing may be written under a '{segment}' folder")
        if len(segment.encode("utf-8")) > SEGMENT_MAX_BYTES:
            raise _refused(what, text, f"a segment is longer than {SEGMENT_MAX_BYTES} bytes")
    return text


def folder_path(value: object) -> str:
    """A folder to delete: a file path, with or without one trailing '/'."""
    text = _utf8(value, "folder")
    return file_path(text.removesuffix("/"), "folder")


def ref_name(value: object, kind: str) -> str:
    """A new branch or tag name (`kind` says which), by git's rules for ref names."""
    text = _utf8(value, f"{kind} name")
    what = f"{kind} name"
    if not text or len(text.encode("utf-8")) > REF_MAX_BYTES:
        raise _refused(what, text, f"must be 1 to {REF_MAX_BYTES} bytes")
    if _REF_FORBIDDEN.search(text):
        raise _refused(what, text, "spaces, control characters and ~ ^ : ? * [ \\ are not allowed")
    if ".." in text or "@{" in text or text == "@":
        raise _refused(what, text, "'..', '@{' and '@' are not allowed")
    if text.startswith("/") or text.endswith("/") or "//" in text:
        raise _refused(what, text, "empty components are not allowed")
    if text.endswith("."):
        raise _refused(what, text, "cannot end with '.'")
    for component in text.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            raise _refused(what, text, "a component cannot start with '.' or end with '.lock'")
    if _COMMIT_ID.fullmatch(text):
        raise _refused(what, text, "40 hex digits would shadow a commit id")
    if text == "HEAD" or text.startswith("refs/"):
        raise _refused(what, text, "'HEAD' and names under 'refs/' are reserved")
    return text


def lfs_oid(value: object) -> str:
    """An LFS object id: a sha256 in 64 lowercase hex digits, never anything a path could be made of."""
    if not isinstance(value, str) or not _LFS_OID.fullmatch(value):
        raise _refused("LFS oid", value, "must be a sha256 in 64 lowercase hex digits")
    return value


def commit_id(value: object, what: str = "commit id") -> str:
    """A full commit id (40 hex digits), lowercased; prefixes are refused."""
    if not isinstance(value, str) or not _COMMIT_ID.fullmatch(value):
        raise _refused(what, value, "must be a full commit id of 40 hex digits")
    return value.lower()


def size(value: object, maximum: int, what: str = "size") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise HubError(400, f"Invalid {what} {value!r:.40}: must be a whole number from 0 to {maximum}")
    return value


def text(value: object, what: str, max_length: int = 65_536) -> str:
    checked = _utf8(value, what)
    if len(checked) > max_length:
        raise _refused(what, checked, f"longer than {max_length} characters")
    return checked


def mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HubError(400, f"{what} must be a JSON object")
    return value


def listing(value: object, what: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise HubError(400, f"{what} must be a JSON array")
    if len(value) > max_items:
        raise HubError(400, f"{what} holds more than {max_items} items")
    return value


def tree_shape(paths: Iterable[str]) -> None:
    """No file may sit beside a folder of the same name (`a` and `a/b`): no client could download both."""
    files = set(paths)
    folders = {path[:index] for path in files for index, char in enumerate(path) if char == "/"}
    clashes = sorted(files & folders)
    if clashes:
        raise HubError(400, f"Invalid tree: {shown(clashes[0])} would be both a file and a folder")
