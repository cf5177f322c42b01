"""Evaluate stage: lm-evaluation-harness on the base and the quantized checkpoint, and the recovery gate.

Both runs use the same tasks, few-shot count, limit, batch size and seeds. The base's results are
cached by the base's files and the task configuration, so a family evaluates its base once.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hubpub.errors import GateError, StageError
from hubpub.hashing import fingerprint
from hubpub.quality import compare_results, recovery_failures
from hubpub.sharedcache import write_atomic
from hubpub.stages.context import StageContext, StageOutput

logger = logging.getLogger(__name__)

BOOTSTRAP_ITERS = 1000
_KEPT = ("results", "higher_is_better", "versions", "n-samples", "n-shot", "config", "task_hashes", "date")


def run(ctx: StageContext) -> StageOutput:
    """Evaluate base (or reuse its cached results) and quantized; fail when recovery is below the gate."""
    evaluation = ctx.release.evaluation
    if evaluation is None:
        raise StageError("the evaluate stage needs `evaluation` in the spec")
    settings = {
        "tasks": list(evaluation.tasks),
        "num_fewshot": evaluation.num_fewshot,
        "limit": evaluation.limit,
        "batch_size": evaluation.batch_size,
        "seed": evaluation.seed,
        "task_files": {str(folder): ctx.hashes.tree(folder) for folder in evaluation.include_path},
        "versions": {name: version(name) for name in ("lm-eval", "torch", "transformers")},
    }
    base_key = fingerprint({"source": ctx.previous["resolve"].metrics["source_sha256"], **settings})
    base_cache = ctx.cache_dir / "base-evaluation" / f"{base_key}.json"
    if base_cache.is_file():
        base = json.loads(base_cache.read_text(encoding="utf-8"))
        base_cached = True
    else:
        base = _evaluate(ctx.output_of("resolve", "base_dir"), ctx)
        write_atomic(base_cache, json.dumps(base, indent=1, default=str))
        base_cached = False
    quantized = _evaluate(ctx.output_of("quantize", "checkpoint"), ctx)
    (ctx.output_dir / "base-results.json").write_text(json.dumps(base, indent=1, default=str), encoding="utf-8")
    (ctx.output_dir / "quantized-results.json").write_text(
        json.dumps(quantized, indent=1, default=str), encoding="utf-8"
    )
    rows = compare_results(base, quantized)
    if not rows:
        raise StageError(f"lm-eval reported no comparable metrics for {', '.join(evaluation.tasks)}")
    failures = recovery_failures(rows, evaluation.min_recovery)
    if failures:
        raise GateError(
            f"{ctx.release.variant}: accuracy recovery below evaluation.min_recovery: " + "; ".join(failures)
        )
    return StageOutput(
        metrics={
            "rows": [row.as_dict() for row in rows],
            "base_cached": base_cached,
            "settings": {key: value for key, value in settings.items() if key != "task_files"},
            "task_versions": quantized.get("versions", {}),
            "n_samples": quantized.get("n-samples", {}),
            "task_hashes": quantized.get("task_hashes", {}),
            "min_recovery": evaluation.min_recovery,
        }
    )


def _evaluate(model_dir: Path, ctx: StageContext) -> dict[str, Any]:
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    evaluation = ctx.release.evaluation
    assert evaluation is not None
    device, dtype = ("cuda", "auto") if torch.cuda.is_available() else ("cpu", "float32")
    logger.info("evaluating %s on %s", model_dir.name, ", ".join(evaluation.tasks))
    try:
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": str(model_dir), "dtype": dtype},
            device=device,
            tasks=list(evaluation.tasks),
            num_fewshot=evaluation.num_fewshot,
            limit=evaluation.limit,
            batch_size=evaluation.batch_size,
            task_manager=TaskManager(include_path=[str(folder) for folder in evaluation.include_path] or None),
            random_seed=evaluation.seed,
            numpy_random_seed=evaluation.seed,
            torch_random_seed=evaluation.seed,
            fewshot_random_seed=evaluation.seed,
            bootstrap_iters=BOOTSTRAP_ITERS,
            log_samples=False,
        )
    except Exception as exc:
        raise StageError(f"lm-eval failed on {model_dir}: {exc}") from exc
    if results is None:
        raise StageError(f"lm-eval returned no results for {model_dir}")
    kept: dict[str, Any] = json.loads(json.dumps({key: results[key] for key in _KEPT if key in results}, default=str))
    return kept
