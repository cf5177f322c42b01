"""The spec bundle: a release spec and the small files beside it, packed into one environment value of a job.

The format is JSON `{"version": 1, "spec": path, "files": {path: base64}, "links": {path: target}}`,
zlib-compressed, then base64. This module is its one home: hubpub's client packs with `encode_spec_bundle`,
the embedded Hub checks a submitted bundle with `decode_spec_bundle` before a job starts, and the job
decodes it again with the same function before unpacking. The limits hold after decompression, so a small
value cannot unpack to a large tree; every path is relative and inside, and a link names a relative target
that stays inside the bundle.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from hubpub.hub.errors import HubError

BUNDLE_MAX_ENCODED = 96 * 1024
"""One environment value: below Linux's limit of 128 KiB for a single environment string."""
BUNDLE_MAX_BYTES = 16 << 20
"""The decompressed JSON document, and the files' bytes together."""
BUNDLE_MAX_FILES = 512
"""Files and links together."""
BUNDLE_MAX_PATH_CHARS = 1024
BUNDLE_VERSION = 1


@dataclass(frozen=True)
class DecodedBundle:
    """A bundle's content, every path checked: relative, inside, no '.' or '..' parts."""

    spec: str
    files: dict[str, bytes]
    links: dict[str, str]
    """Relative link targets, each resolving inside the bundle."""


def encode_spec_bundle(spec: str, files: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    document = {
        "version": BUNDLE_VERSION,
        "spec": spec,
        "files": {path: base64.b64encode(content).decode() for path, content in sorted(files.items())},
        "links": dict(sorted((links or {}).items())),
    }
    return base64.b64encode(zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 9)).decode()


def decode_spec_bundle(encoded: str) -> DecodedBundle:
    """The bundle in `encoded`, checked against the limits; any doubt is a HubError 400 that says why."""
    if len(encoded) > BUNDLE_MAX_ENCODED:
        raise _refused(f"it takes {len(encoded):,} characters, over {BUNDLE_MAX_ENCODED:,}")
    try:
        packed = base64.b64decode(encoded, validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, BUNDLE_MAX_BYTES + 1)
        if len(raw) > BUNDLE_MAX_BYTES or inflater.unconsumed_tail:
            raise _refused(f"it unpacks to more than {BUNDLE_MAX_BYTES:,} bytes")
        if not inflater.eof:
            raise _refused("its compressed data is cut short")
        document = json.loads(raw)
    except (binascii.Error, ValueError, zlib.error):
        raise _refused("it is not base64 of zlib-compressed JSON") from None
    if not isinstance(document, dict) or set(document) - {"version", "spec", "files", "links"}:
        raise _refused("it is not a mapping of version, spec, files and links")
    files, links = document.get("files"), document.get("links", {})
    if not isinstance(files, dict) or not isinstance(links, dict):
        raise _refused("files and links must be mappings")
    if len(files) + len(links) > BUNDLE_MAX_FILES:
        raise _refused(f"it holds {len(files) + len(links):,} files and links, over {BUNDLE_MAX_FILES}")
    contents: dict[str, bytes] = {}
    total = 0
    for name, content in files.items():
        path = bundle_path(name)
        try:
            if not isinstance(content, str):
                raise binascii.Error
            contents[path] = base64.b64decode(content, validate=True)
        except binascii.Error:
            raise _refused(f"the content of {path} is not base64") from None
        total += len(contents[path])
        if total > BUNDLE_MAX_BYTES:
            raise _refused(f"its files hold more than {BUNDLE_MAX_BYTES:,} bytes")
    targets = {bundle_path(name): _link_target(name, target) for name, target in links.items()}
    _check_layout(contents, targets)
    spec = bundle_path(document.get("spec"))
    if spec not in contents:
        raise _refused(f"its spec {spec} is not one of its files")
    return DecodedBundle(spec, contents, targets)


def bundle_path(name: object) -> str:
    """A path inside a bundle: relative, '/'-separated, without '', '.' or '..' parts; anything else is a 400."""
    text = name if isinstance(name, str) else ""
    parts = text.split("/")
    if (
        not text
        or len(text) > BUNDLE_MAX_PATH_CHARS
        or text.startswith("/")
        or "\\" in text
        or any(part in ("", ".", "..") or "\0" in part for part in parts)
    ):
        shown = ascii(name)[:80] if isinstance(name, str) else f"<{type(name).__name__}>"
        raise _refused(f"{shown} is not a relative path inside the bundle")
    return text


def _link_target(name: str, target: object) -> str:
    # '..' only in front: the link's own folders hold no link (see _check_layout), so the climb is the one written
    parts = target.split("/") if isinstance(target, str) else [""]
    ups = len(parts) - len(list(itertools.dropwhile(lambda part: part == "..", parts)))
    if any(part in ("", ".", "..") or "\0" in part for part in parts[ups:]) or ups > name.count("/"):
        raise _refused(f"the link {ascii(name)[:80]} must name a relative target inside the bundle")
    assert isinstance(target, str)
    return target


def _check_layout(files: dict[str, bytes], links: dict[str, str]) -> None:
    """No path stands under a link or a file, and no link stands over a file or a folder."""
    leaves = {*files, *links}
    for path in sorted(leaves):
        for parent in PurePosixPath(path).parents:
            if str(parent) != "." and str(parent) in leaves:
                kind = "link" if str(parent) in links else "file"
                raise _refused(f"{path} would stand inside the {kind} {parent}")


def _refused(why: str) -> HubError:
    return HubError(400, f"The spec bundle is refused: {why}")
