"""hubpub: publish verified, measured, reproducible quantized LLMs to the Hugging Face Hub."""

from hubpub.api import load_spec, plan
from hubpub.errors import HubpubError, SpecError
from hubpub.version import __version__

__all__ = ["HubpubError", "SpecError", "__version__", "load_spec", "plan"]
