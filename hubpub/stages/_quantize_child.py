"""Runs in a child interpreter: quantize the base with llm-compressor's `oneshot` and save the checkpoint.

The model and llm-compressor's session (which keeps a reference to it) live only in this process, so the
hubpub process holds neither host RAM nor GPU memory for them once the stage ends.

Usage: python -m hubpub.stages._quantize_child REQUEST.json RESULT.json (see hubpub.stages._child)
"""

from __future__ import annotations

import os
from typing import Any

from hubpub.errors import CudaUnavailableError, StageError
from hubpub.placement import Placement, cuda_problem
from hubpub.stages._child import serve


def main(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("cpu_run"):
        # llm-compressor takes any GPU CUDA shows it; a declared CPU run shows it none (CUDA reads this at its
        # first use, in this process).
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif Placement.from_request(request.get("placement")).on_gpu:
        problem = cuda_problem()
        if problem is not None:
            raise CudaUnavailableError.in_child("quantize", problem)
    if request["quiet"]:
        # llm-compressor logs through loguru to stdout; its LLM_COMPRESSOR_LOG_DISABLED switch would
        # also skip registering the METRIC level that GPTQ logs with, and GPTQ would fail.
        from loguru import logger as compressor_log

        compressor_log.disable("llmcompressor")
        compressor_log.disable("compressed_tensors")
    import torch
    import yaml
    from llmcompressor import oneshot
    from llmcompressor.core import active_session
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not torch.accelerator.is_available():
        _skip_pinning()
    tokenizer = AutoTokenizer.from_pretrained(request["base_dir"])
    # Loaded on the CPU: with CUDA present, llm-compressor onloads one layer at a time to the GPU,
    # so models larger than GPU memory still quantize.
    model = AutoModelForCausalLM.from_pretrained(request["base_dir"], dtype="auto")
    arguments: dict[str, Any] = {}
    calibration_facts: dict[str, Any] | None = None
    if request["calibration"] is not None:
        from hubpub.calibration import build_dataset
        from hubpub.spec import Calibration

        calibration = Calibration.model_validate(request["calibration"])
        dataset, calibration_facts = build_dataset(calibration, tokenizer)
        arguments = {
            "dataset": dataset,
            "num_calibration_samples": calibration_facts["samples"],
            "max_seq_length": calibration.max_seq_length,
            "shuffle_calibration_samples": False,
        }
    try:
        oneshot(model=model, recipe=yaml.safe_dump(request["recipe"], sort_keys=False), **arguments)
    except Exception as exc:
        raise StageError(f"llm-compressor failed to quantize {request['what']}: {exc}") from exc
    model.save_pretrained(request["checkpoint"], save_compressed=True)
    # The session holds the model and its hooks; nothing here needs them once the checkpoint is saved.
    active_session().reset()
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return {"device": device, "calibration": calibration_facts}


def _skip_pinning() -> None:
    """llm-compressor 0.14's AWQ pins its cached activations in host memory before each grid search, to copy them
    to the GPU faster; pinning needs an accelerator (torch raises "Cannot access accelerator device when none is
    available"), so on a machine without one the cache stays in ordinary memory, where the CPU reads it anyway."""
    from llmcompressor.pipelines.cache import IntermediatesCache

    def unpinned(self: IntermediatesCache, batch_index: int, input_names: list[str] | None = None) -> None:
        return None

    IntermediatesCache.pin_memory = unpinned


if __name__ == "__main__":
    serve(main)
