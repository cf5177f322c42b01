"""How the predictor words what it finds: messages that name the layers they apply to.

Every check returns messages with a `{layer}` placeholder; `Findings` collects them in first-seen order and
fills the placeholder with the layers that share the message, so a rule broken by 60 layers reads as one line.
"""

from __future__ import annotations

from hubpub.vllm import rules

VLLM = f"vLLM {rules.VLLM_VERSION}"


class Findings:
    """Messages in first-seen order; a `{layer}` placeholder collects the layers that share the message."""

    def __init__(self) -> None:
        self._layers: dict[str, list[str]] = {}

    def add(self, message: str, layer: str | None = None) -> None:
        layers = self._layers.setdefault(message, [])
        if layer is not None and layer not in layers:
            layers.append(layer)

    def extend(self, other: Findings) -> None:
        for message, layers in other._layers.items():
            self.add(message)
            for layer in layers:
                self.add(message, layer)

    def render(self) -> list[str]:
        return [message.replace("{layer}", layer_phrase(layers)) for message, layers in self._layers.items()]


def layer_phrase(layers: list[str]) -> str:
    if not layers:
        return "a layer"
    more = len(layers) - 1
    return layers[0] if not more else f"{layers[0]} (and {more} more layer{'s' if more > 1 else ''})"
