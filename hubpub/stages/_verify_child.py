"""Runs in a fresh interpreter, as a user would: load the saved checkpoint, generate, measure perplexity.

Usage: python -m hubpub.stages._verify_child REQUEST.json RESULT.json (see hubpub.stages._child)
"""

from __future__ import annotations

import gc
import math
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hubpub.device_map import placement_kwargs
from hubpub.errors import CudaUnavailableError
from hubpub.placement import Placement, cuda_problem
from hubpub.stages._child import serve
from hubpub.stages._float32 import compute_in_float32


def perplexity(model: Any, token_ids: list[int], window: int) -> float:
    import torch

    total_nll = 0.0
    counted = 0
    with torch.no_grad():
        for start in range(0, len(token_ids) - 1, window):
            chunk = token_ids[start : start + window]
            if len(chunk) < 2:
                break
            ids = torch.tensor([chunk], device=model.device)
            loss = model(input_ids=ids, labels=ids).loss.float().item()
            total_nll += loss * (len(chunk) - 1)
            counted += len(chunk) - 1
    return math.exp(total_nll / counted)


def generate(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    import torch

    if tokenizer.chat_template:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        inputs = tokenizer(prompt, return_tensors="pt")
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[0][inputs["input_ids"].shape[1] :]
    return {
        "prompt": prompt,
        "output": tokenizer.decode(new_tokens, skip_special_tokens=True),
        "new_tokens": int(new_tokens.shape[0]),
        "token_ids": [int(token) for token in new_tokens.tolist()],
    }


def load_device(placement: Placement, cuda_problem: str | None) -> str:
    """Where the models load: "cpu" with no placement, else "cuda". `cuda_problem` says why CUDA is unusable here
    (None: it is usable); a planned GPU never falls back to the CPU."""
    if not placement.on_gpu:
        return "cpu"
    if cuda_problem is not None:
        raise CudaUnavailableError.in_child("verify", cuda_problem)
    return "cuda"


def load(auto_class: Any, folder: str, placement: Placement) -> Any:
    """The model as a user loads it (`dtype="auto"`). On GPUs, each module goes where an explicit device map from
    its size once loaded puts it (a compressed checkpoint decompressed: hubpub.device_map), never through cuda:0
    whole. On the CPU its arithmetic is float32, which is several times faster there than bfloat16 and more
    precise, while its weights stay at the checkpoint's dtype."""
    if placement.on_gpu:
        return auto_class.from_pretrained(folder, dtype="auto", **placement_kwargs(Path(folder), placement))
    return compute_in_float32(auto_class.from_pretrained(folder, dtype="auto"))


def main(request: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    placement = Placement.from_request(request.get("placement"))
    device = load_device(placement, cuda_problem() if placement.on_gpu else None)
    text = Path(request["heldout"]).read_text(encoding="utf-8")
    result: dict[str, Any] = {"device": device, "dtype": "auto" if device == "cuda" else "float32"}
    if request.get("base_dir"):
        base_tokenizer = AutoTokenizer.from_pretrained(request["base_dir"])
        base = load(AutoModelForCausalLM, request["base_dir"], placement)
        result["base_perplexity"] = perplexity(base, base_tokenizer(text)["input_ids"], request["window"])
        del base
        gc.collect()
    load_started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(request["checkpoint"])
    model = load(AutoModelForCausalLM, request["checkpoint"], placement)
    result["load_seconds"] = time.perf_counter() - load_started
    result["weights_dtype"] = str(model.dtype).removeprefix("torch.")
    token_ids = tokenizer(text)["input_ids"]
    result["perplexity"] = perplexity(model, token_ids, request["window"])
    result["perplexity_tokens"] = len(token_ids)
    result["generations"] = [
        generate(model, tokenizer, prompt, request["max_new_tokens"]) for prompt in request["prompts"]
    ]
    result["seconds"] = time.perf_counter() - started
    result["versions"] = {name: version(name) for name in ("torch", "transformers", "compressed-tensors")}
    return result


if __name__ == "__main__":
    serve(main)
