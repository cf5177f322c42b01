"""Evaluate stage: lm-evaluation-harness on the base and the quantized checkpoint, and the recovery gate.

Both runs use the same tasks, few-shot count, limit, batch size and seeds. The base's results, with its
per-example scores, are cached by the base's files and the task configuration, so a family evaluates its
base once. Each metric's recovery gets its 95% interval by a paired bootstrap over the examples both
models scored (hubpub.recovery).
"""

from __future__ import annotations

import json
import logging
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hubpub.errors import GateError, StageError
from hubpub.hashing import fingerprint
from hubpub.quality import compare_results, lower_bound_failures, recovery_failures, with_intervals
from hubpub.recovery import CONFIDENCE, RESAMPLES, SEED
from hubpub.sharedcache import write_atomic
from hubpub.stages._child import run_child
from hubpub.stages._evaluate_child import SCORES_KEY
from hubpub.stages.context import StageContext, StageOutput

logger = logging.getLogger(__name__)

BOOTSTRAP_ITERS = 1000
CHILD_TIMEOUT_SECONDS = 24 * 3600
_CHILD = "hubpub.stages._evaluate_child"
# Bumped when what the child keeps of a run changes, so that older cached base results are not reused.
_RESULTS_FORMAT = 2


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
    base_key = fingerprint(
        {"source": ctx.previous["resolve"].metrics["source_sha256"], "format": _RESULTS_FORMAT, **settings}
    )
    base_cache = ctx.cache_dir / "base-evaluation" / f"{base_key}.json"
    base_cached = base_cache.is_file()
    models = {"quantized": ctx.output_of("quantize", "checkpoint")}
    if not base_cached:
        models = {"base": ctx.output_of("resolve", "base_dir"), **models}
    evaluated = _evaluate(models, ctx)
    if base_cached:
        base = json.loads(base_cache.read_text(encoding="utf-8"))
    else:
        base = evaluated["base"]
        write_atomic(base_cache, json.dumps(base, indent=1, default=str))
    quantized = evaluated["quantized"]
    (ctx.output_dir / "base-results.json").write_text(json.dumps(base, indent=1, default=str), encoding="utf-8")
    (ctx.output_dir / "quantized-results.json").write_text(
        json.dumps(quantized, indent=1, default=str), encoding="utf-8"
    )
    rows = compare_results(base, quantized)
    if not rows:
        raise StageError(f"lm-eval reported no comparable metrics for {', '.join(evaluation.tasks)}")
    rows = with_intervals(rows, base.get(SCORES_KEY, {}), quantized.get(SCORES_KEY, {}), seed=SEED, resamples=RESAMPLES)
    failures = recovery_failures(rows, evaluation.min_recovery)
    if failures:
        raise GateError(
            f"{ctx.release.variant}: accuracy recovery below evaluation.min_recovery: " + "; ".join(failures)
        )
    failures = lower_bound_failures(rows, evaluation.min_recovery_lower)
    if failures:
        raise GateError(
            f"{ctx.release.variant}: recovery's 95% interval reaches below evaluation.min_recovery_lower: "
            + "; ".join(failures)
        )
    primary_task = evaluation.primary or evaluation.tasks[0]
    primary = next((row for row in rows if row.task == primary_task), None)
    return StageOutput(
        metrics={
            "rows": [row.as_dict() for row in rows],
            "base_cached": base_cached,
            "settings": {key: value for key, value in settings.items() if key != "task_files"},
            "task_versions": quantized.get("versions", {}),
            "n_samples": quantized.get("n-samples", {}),
            "task_hashes": quantized.get("task_hashes", {}),
            "min_recovery": evaluation.min_recovery,
            "min_recovery_lower": evaluation.min_recovery_lower,
            "primary": {"task": primary.task, "metric": primary.metric} if primary else None,
            "bootstrap": {
                "method": "paired percentile",
                "resamples": RESAMPLES,
                "seed": SEED,
                "confidence": CONFIDENCE,
            },
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )


def _evaluate(models: dict[str, Path], ctx: StageContext) -> dict[str, dict[str, Any]]:
    """lm-eval's kept results for each named model folder, from one child process."""
    evaluation = ctx.release.evaluation
    assert evaluation is not None
    logger.info("evaluating %s on %s", " and ".join(models), ", ".join(evaluation.tasks))
    request = {
        "models": {name: str(path) for name, path in models.items()},
        "tasks": list(evaluation.tasks),
        "num_fewshot": evaluation.num_fewshot,
        "limit": evaluation.limit,
        "batch_size": evaluation.batch_size,
        "seed": evaluation.seed,
        "include_path": [str(folder) for folder in evaluation.include_path],
        "bootstrap_iters": BOOTSTRAP_ITERS,
        "placement": ctx.placement.as_request(),
    }
    child = run_child(
        _CHILD,
        request,
        ctx.output_dir,
        "evaluate",
        what="evaluating with lm-eval",
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    results: dict[str, dict[str, Any]] = child["results"]
    return results
