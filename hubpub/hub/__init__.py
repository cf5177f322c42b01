"""An embedded, Hub-compatible HTTP server that the unmodified huggingface_hub client talks to.

It imports nothing else from hubpub, so it runs on its own as `hubpub hub serve`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubpub.hub.errors import HubConfigError, HubError

if TYPE_CHECKING:
    from hubpub.hub.jobs import JobLimits
    from hubpub.hub.server import HubServer
    from hubpub.hub.specbundle import (
        BUNDLE_MAX_BYTES,
        BUNDLE_MAX_ENCODED,
        BUNDLE_MAX_FILES,
        DecodedBundle,
        decode_spec_bundle,
        encode_spec_bundle,
    )
    from hubpub.hub.store import HubStore
    from hubpub.hub.tokens import Identity, TokenTable, load_tokens_file, new_token_entry
    from hubpub.hub.wire import Limits

__all__ = [
    "BUNDLE_MAX_BYTES",
    "BUNDLE_MAX_ENCODED",
    "BUNDLE_MAX_FILES",
    "DecodedBundle",
    "HubConfigError",
    "HubError",
    "HubServer",
    "HubStore",
    "Identity",
    "JobLimits",
    "Limits",
    "TokenTable",
    "decode_spec_bundle",
    "encode_spec_bundle",
    "load_tokens_file",
    "new_token_entry",
]
_LAZY = {
    "HubServer": "hubpub.hub.server",
    "HubStore": "hubpub.hub.store",
    "Identity": "hubpub.hub.tokens",
    "TokenTable": "hubpub.hub.tokens",
    "load_tokens_file": "hubpub.hub.tokens",
    "new_token_entry": "hubpub.hub.tokens",
    "Limits": "hubpub.hub.wire",
    "JobLimits": "hubpub.hub.jobs",
    **dict.fromkeys(
        (
            "BUNDLE_MAX_BYTES",
            "BUNDLE_MAX_ENCODED",
            "BUNDLE_MAX_FILES",
            "DecodedBundle",
            "decode_spec_bundle",
            "encode_spec_bundle",
        ),
        "hubpub.hub.specbundle",
    ),
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI imports this package for its errors, and `hubpub --help` must not pay for the
    # server, its pages and their template and markdown engines.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hubpub.hub' has no attribute {name!r}")
