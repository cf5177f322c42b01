"""hubpub: publish verified, measured, reproducible quantized LLMs to the Hugging Face Hub."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubpub.version import __version__

if TYPE_CHECKING:
    from hubpub.api import load_spec, plan
    from hubpub.errors import HubpubError, SpecError

__all__ = ["HubpubError", "SpecError", "__version__", "load_spec", "plan"]
_LAZY = {"load_spec": "hubpub.api", "plan": "hubpub.api", "HubpubError": "hubpub.errors", "SpecError": "hubpub.errors"}


def __getattr__(name: str) -> Any:
    # Imported on first use: hubpub's helper processes (the fork servers) import this package and must stay light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hubpub' has no attribute {name!r}")
