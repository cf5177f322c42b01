"""Runs in a child interpreter: lm-evaluation-harness on each model folder of the request.

Usage: python -m hubpub.stages._evaluate_child REQUEST.json RESULT.json (see hubpub.stages._child)
"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import Any

from hubpub.device_map import placement_kwargs
from hubpub.errors import CudaUnavailableError, StageError
from hubpub.placement import Placement, cuda_problem
from hubpub.stages._child import serve

logger = logging.getLogger(__name__)

KEPT = ("results", "higher_is_better", "versions", "n-samples", "n-shot", "config", "task_hashes", "date")
SCORES_KEY = "per_example"
"""Where a model's results keep its per-example scores (see `per_example_scores`)."""


def cpu_model_args(model_dir: str) -> dict[str, Any]:
    """lm-eval's `hf` model arguments on the CPU: float32 kernels are several times faster there than bfloat16 ones,
    and more precise."""
    return {"pretrained": model_dir, "dtype": "float32"}


def gpu_load_kwargs(placement: Placement, model_dir: str, *, device_count: int) -> dict[str, Any]:
    """`from_pretrained` arguments for the model lm-eval evaluates on the planned GPUs, given the GPUs this process
    sees: an explicit device map from its size once loaded (hubpub.device_map), as verify loads it; lm-eval's own
    `parallelize` would size a compressed checkpoint by its packed tensors. A planned GPU never falls back to the
    CPU."""
    if device_count == 0:
        raise CudaUnavailableError.in_child("evaluate", "torch sees no CUDA device")
    missing = sorted(set(placement.gpu_budgets) - set(range(device_count)))
    if missing:
        raise CudaUnavailableError.in_child(
            "evaluate", f"the placement names GPUs {missing}; torch sees {device_count}"
        )
    return {"dtype": "auto", **placement_kwargs(Path(model_dir), placement)}


def sandbox_task_templates() -> None:
    """Render lm-eval's task templates (doc_to_text, doc_to_target…: text from task YAML files, user input)
    in Jinja2's immutable sandbox instead of lm-eval's plain Environment, which lets a template reach
    `cycler.__init__.__globals__` and run anything."""
    import lm_eval.utils
    from jinja2 import BaseLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    sandboxed = ImmutableSandboxedEnvironment(
        loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True
    )
    sandboxed.filters.update(lm_eval.utils.env.filters)
    lm_eval.utils.env = sandboxed


def gpu_model(placement: Placement, model_dir: str, device_count: int, batch_size: int | str) -> Any:
    """lm-eval's `hf` model over a model loaded on the planned GPUs (see `gpu_load_kwargs`)."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(
        model_dir, **gpu_load_kwargs(placement, model_dir, device_count=device_count)
    )
    return HFLM(pretrained=loaded, tokenizer=AutoTokenizer.from_pretrained(model_dir), batch_size=batch_size)


def per_example_scores(evaluated: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each task's per-example metric values from lm-eval's logged samples, without the documents and responses:
    task → `metric,filter` → {aggregation, doc_ids, values}, in doc_id order, so that two models' scores pair
    by doc_id. A value is a number, or a (value, weight) pair for weighted aggregations (perplexities)."""
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for task, samples in (evaluated.get("samples") or {}).items():
        by_key: dict[str, dict[int, Any]] = {}
        for sample in samples:
            for metric in sample["metrics"]:
                by_key.setdefault(f"{metric},{sample['filter']}", {})[int(sample["doc_id"])] = sample[metric]
        configured = {
            entry["metric"]: entry.get("aggregation")
            for entry in evaluated.get("configs", {}).get(task, {}).get("metric_list") or []
            if isinstance(entry, dict) and isinstance(entry.get("metric"), str)
        }
        scores[task] = {
            key: {
                "aggregation": _aggregation(key.partition(",")[0], configured),
                "doc_ids": sorted(values),
                "values": [values[doc_id] for doc_id in sorted(values)],
            }
            for key, values in by_key.items()
        }
    return scores


def _aggregation(metric: str, configured: dict[str, Any]) -> str | None:
    """The name of lm-eval's aggregation of `metric`: the task config's own when it names one, else lm-eval's
    default for the metric; None for a custom aggregation function."""
    import lm_eval.api.metrics  # noqa: F401  (registers the aggregations)
    from lm_eval.api.registry import AGGREGATION_REGISTRY, get_metric_aggregation

    registered = dict(AGGREGATION_REGISTRY.items())
    named = configured.get(metric)
    if named is not None:
        return named if isinstance(named, str) and named in registered else None
    default = get_metric_aggregation(metric)
    return next((name for name, function in registered.items() if function is default), None)


def main(request: dict[str, Any]) -> dict[str, Any]:
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    sandbox_task_templates()

    placement = Placement.from_request(request.get("placement"))
    device_count = 0
    if placement.on_gpu:
        problem = cuda_problem()
        if problem is not None:
            raise CudaUnavailableError.in_child("evaluate", problem)
        device_count = torch.cuda.device_count()
    results: dict[str, Any] = {}
    for name, model_dir in request["models"].items():
        model: dict[str, Any] = {"model": "hf", "model_args": cpu_model_args(model_dir), "device": "cpu"}
        if placement.on_gpu:
            model = {"model": gpu_model(placement, model_dir, device_count, request["batch_size"])}
        try:
            evaluated = lm_eval.simple_evaluate(
                **model,
                tasks=request["tasks"],
                num_fewshot=request["num_fewshot"],
                limit=request["limit"],
                batch_size=request["batch_size"],
                task_manager=TaskManager(include_path=request["include_path"] or None),
                random_seed=request["seed"],
                numpy_random_seed=request["seed"],
                torch_random_seed=request["seed"],
                fewshot_random_seed=request["seed"],
                bootstrap_iters=request["bootstrap_iters"],
                log_samples=True,
            )
        except Exception as exc:
            raise StageError(f"lm-eval failed on {model_dir}: {exc}") from exc
        if evaluated is None:
            raise StageError(f"lm-eval returned no results for {model_dir}")
        kept = {key: evaluated[key] for key in KEPT if key in evaluated}
        kept[SCORES_KEY] = per_example_scores(evaluated)
        results[name] = json.loads(json.dumps(kept, default=str))
        del model, evaluated
        gc.collect()
    return {"results": results}


if __name__ == "__main__":
    serve(main)
