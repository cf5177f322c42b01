"""The pipeline's stages, in the order they run. Each stage module has one public entry.

Only names live here: importing this package must stay cheap, because `hubpub plan` reads it.
"""

from __future__ import annotations

STAGE_ORDER: tuple[str, ...] = ("resolve", "preflight", "quantize", "verify", "vllm", "evaluate", "card", "publish")
