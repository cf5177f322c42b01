"""Runs inside the separate vLLM environment: load a checkpoint in vLLM, generate greedily, write one JSON result.

Usage: python /abs/path/child.py REQUEST.json RESULT.json

hubpub is not installed in that environment, so this script uses the standard library and vLLM only.
The request holds checkpoint, prompts, max_new_tokens, max_model_len, seed and gpu_memory_utilization.
A failure raises: the traceback goes to stderr and the exit code is non-zero; the parent reads the log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, Python puts this file's folder first on sys.path; that folder holds hubpub's own
# `config.py`, `kernels.py` and others, which would shadow top-level modules vLLM or its dependencies import
# (`kernels` is also a Hugging Face package). The standard library imports above are safe: no module here is
# named like one (tests/vllm_smoke checks it).
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != _HERE]

_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def has_chat_template(llm: Any, checkpoint: Path) -> bool:
    """Whether prompts go through the chat template, as the transformers verification does."""
    try:
        template = getattr(llm.get_tokenizer(), "chat_template", None)
    except Exception:
        template = None
    if template:
        return True
    if any((checkpoint / name).is_file() for name in _CHAT_TEMPLATE_FILES):
        return True
    tokenizer_config = checkpoint / "tokenizer_config.json"
    if tokenizer_config.is_file():
        return bool(json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template"))
    return False


def gpu_description() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "capability": [major, minor]}


def main(request_path: str, result_path: str) -> None:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    checkpoint = Path(request["checkpoint"])
    prompts: list[str] = list(request["prompts"])

    import torch
    import vllm

    load_started = time.perf_counter()
    llm = vllm.LLM(
        model=str(checkpoint),
        enforce_eager=True,
        max_model_len=request["max_model_len"],
        max_num_seqs=max(len(prompts), 1),
        seed=request["seed"],
        gpu_memory_utilization=request["gpu_memory_utilization"],
    )
    load_seconds = time.perf_counter() - load_started

    sampling = vllm.SamplingParams(temperature=0.0, max_tokens=request["max_new_tokens"])
    chat = has_chat_template(llm, checkpoint)
    generate_started = time.perf_counter()
    if chat:
        conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]
        responses = llm.chat(conversations, sampling, add_generation_prompt=True, use_tqdm=False)
    else:
        responses = llm.generate(prompts, sampling, use_tqdm=False)
    generate_seconds = time.perf_counter() - generate_started

    outputs = []
    for prompt, response in zip(prompts, responses, strict=False):
        completion = response.outputs[0]
        outputs.append(
            {"prompt": prompt, "text": completion.text, "token_ids": [int(token) for token in completion.token_ids]}
        )
    result = {
        "vllm_version": vllm.__version__,
        "torch_version": torch.__version__,
        "gpu": gpu_description(),
        "chat_template": chat,
        "outputs": outputs,
        "load_seconds": load_seconds,
        "generate_seconds": generate_seconds,
    }
    Path(result_path).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
    sys.stdout.flush()
    sys.stderr.flush()
    # vLLM has no public shutdown, and its background threads can stall interpreter exit once the
    # result is written; leaving at once frees the GPU as reliably.
    os._exit(0)
