"""An embedded, Hub-compatible HTTP server that the unmodified huggingface_hub client talks to.

It imports nothing else from hubpub, so it runs on its own as `hubpub hub serve`.
"""

from hubpub.hub.errors import HubConfigError, HubError
from hubpub.hub.server import HubServer
from hubpub.hub.store import HubStore
from hubpub.hub.tokens import Identity, TokenTable, load_tokens_file, new_token_entry
from hubpub.hub.wire import Limits

__all__ = [
    "HubConfigError",
    "HubError",
    "HubServer",
    "HubStore",
    "Identity",
    "Limits",
    "TokenTable",
    "load_tokens_file",
    "new_token_entry",
]
