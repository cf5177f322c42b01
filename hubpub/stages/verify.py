"""Verify stage: the saved checkpoint loads and generates in transformers, in a fresh process.

It fails on empty or degenerate generations and when quantized ÷ base perplexity on a fixed
held-out text exceeds `verify.max_perplexity_ratio`. It reports any tokenizer, chat-template or
generation file that differs from the base.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hubpub.checkpoint import BASE_ARTIFACTS
from hubpub.errors import GateError
from hubpub.hashing import fingerprint, sha256_file
from hubpub.quality import degeneracy, heldout_text
from hubpub.sharedcache import write_atomic
from hubpub.stages._child import run_child
from hubpub.stages.context import StageContext, StageOutput

logger = logging.getLogger(__name__)

PERPLEXITY_WINDOW = 512
CHILD_TIMEOUT_SECONDS = 3600
_CHILD = "hubpub.stages._verify_child"


def run(ctx: StageContext) -> StageOutput:
    """Load, generate and measure perplexity in a child interpreter; apply the spec's checks."""
    release = ctx.release
    checkpoint = ctx.output_of("quantize", "checkpoint")
    base_dir = ctx.output_of("resolve", "base_dir")
    text = heldout_text()
    text_sha256 = sha256_file(text)
    base_key = fingerprint(
        {
            "source": ctx.previous["resolve"].metrics["source_sha256"],
            "text": text_sha256,
            "window": PERPLEXITY_WINDOW,
            "dtype": "float32 on cpu, auto on cuda",
            "versions": {name: version(name) for name in ("torch", "transformers")},
        }
    )
    base_cache = ctx.cache_dir / "base-perplexity" / f"{base_key}.json"
    cached_base = json.loads(base_cache.read_text(encoding="utf-8"))["perplexity"] if base_cache.is_file() else None
    request = {
        "checkpoint": str(checkpoint),
        "base_dir": None if cached_base is not None else str(base_dir),
        "prompts": list(release.verify.prompts),
        "max_new_tokens": release.verify.max_new_tokens,
        "heldout": str(text),
        "window": PERPLEXITY_WINDOW,
        "placement": ctx.placement.as_request(),
    }
    child = run_child(
        _CHILD,
        request,
        ctx.output_dir,
        "verify",
        what="loading and generating in transformers",
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    base_perplexity = cached_base if cached_base is not None else child["base_perplexity"]
    if cached_base is None:
        write_atomic(base_cache, json.dumps({"perplexity": base_perplexity}))
    ratio = child["perplexity"] / base_perplexity
    metrics: dict[str, Any] = {
        "loader": "transformers",
        "device": child["device"],
        "dtype": child["dtype"],
        "weights_dtype": child["weights_dtype"],
        "versions": child["versions"],
        "load_seconds": child["load_seconds"],
        "child_peak_rss_mb": child["peak_rss_mb"],
        "generations": child["generations"],
        "perplexity": {
            "text_sha256": text_sha256,
            "tokens": child["perplexity_tokens"],
            "base": base_perplexity,
            "quantized": child["perplexity"],
            "ratio": ratio,
            "max_ratio": release.verify.max_perplexity_ratio,
        },
        "artifacts": _compare_artifacts(base_dir, checkpoint),
    }
    (ctx.output_dir / "verification.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    for generation in child["generations"]:
        problem = degeneracy(generation["output"])
        if problem:
            raise GateError(
                f"{release.variant}: the quantized model's answer to {generation['prompt']!r} is degenerate"
                f" ({problem}): {generation['output']!r}"
            )
    if ratio > release.verify.max_perplexity_ratio:
        raise GateError(
            f"{release.variant}: perplexity rose from {base_perplexity:.3f} (base) to {child['perplexity']:.3f}"
            f" (quantized), a ratio of {ratio:.3f} above verify.max_perplexity_ratio"
            f" {release.verify.max_perplexity_ratio}"
        )
    return StageOutput(metrics=metrics)


def _compare_artifacts(base_dir: Path, checkpoint: Path) -> dict[str, list[str]]:
    """Which of the base's tokenizer, chat-template and generation files are identical, missing or changed."""
    report: dict[str, list[str]] = {"identical": [], "missing": [], "different": []}
    for name in BASE_ARTIFACTS:
        base_file = base_dir / name
        if not base_file.is_file():
            continue
        staged = checkpoint / name
        if not staged.is_file():
            report["missing"].append(name)
        elif sha256_file(staged) != sha256_file(base_file):
            report["different"].append(name)
        else:
            report["identical"].append(name)
    return report
