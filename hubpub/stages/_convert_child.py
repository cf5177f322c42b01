"""Runs in a child interpreter: dequantize a GGUF file into a plain safetensors checkpoint with transformers.

Usage: python -m hubpub.stages._convert_child REQUEST.json RESULT.json (see hubpub.stages._child)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubpub.errors import StageError
from hubpub.stages._child import serve


def _parse_each_file_once() -> None:
    """transformers parses the whole GGUF file four times to load a tokenizer and a model (configs, tokenizer,
    tensors), about 3.5 s each for the demo's 49k-token vocabulary, and builds gguf's tensor-name table once
    per submodule (397 times for the demo). Both are pure functions of their arguments, so this child keeps
    one of each."""
    import functools

    import gguf

    gguf.GGUFReader = functools.lru_cache(maxsize=2)(gguf.GGUFReader)  # type: ignore[misc,assignment]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(gguf.get_tensor_name_map)


def main(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _parse_each_file_once()
    gguf = Path(request["gguf"])
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    except Exception as exc:
        raise StageError(f"transformers could not load {gguf}: {exc}") from exc
    # The weights are dequantized on load; without these the checkpoint would claim to still be GGUF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(request["target"])
    tokenizer.save_pretrained(request["target"])
    return {"chat_template": bool(tokenizer.chat_template)}


if __name__ == "__main__":
    serve(main)
