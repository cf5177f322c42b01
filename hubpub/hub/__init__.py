"""An embedded, Hub-compatible HTTP server that the unmodified huggingface_hub client talks to.

It imports nothing else from hubpub, so it runs on its own as `hubpub hub serve`.
"""

from hubpub.hub.server import HubServer, Identity
from hubpub.hub.store import HubStore

__all__ = ["HubServer", "HubStore", "Identity"]
