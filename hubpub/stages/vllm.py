"""vLLM stage: predict from the checkpoint's files whether vLLM loads it, then load it in vLLM when one is at hand.

The static preflight needs no GPU and no vLLM: it applies the rules of `hubpub.vllm.rules` to
`config.json` and the safetensors headers, for each GPU generation. The real smoke test runs
in the Python environment that has vLLM (never this one), in its own process group, and its
first tokens are compared with the transformers verification; disagreements are recorded only.
"""

from __future__ import annotations

import logging
from typing import Any

from hubpub.errors import GateError, StageError
from hubpub.stages.context import StageContext, StageOutput
from hubpub.vllm import VLLM_PYTHON_ENV, VllmPrediction, compare_first_tokens, predict_folder, run_smoke

logger = logging.getLogger(__name__)

NO_ENVIRONMENT = f"no vLLM environment was configured: set {VLLM_PYTHON_ENV}, verify.vllm_python or --vllm-python"


def run(ctx: StageContext) -> StageOutput:
    """Static preflight always; the real load when `ctx.vllm_python` names an interpreter with vLLM."""
    release = ctx.release
    required = release.verify.vllm == "required"
    checkpoint = ctx.output_of("quantize", "checkpoint")
    prediction = predict_folder(checkpoint)
    metrics: dict[str, Any] = {"preflight": prediction.as_dict(), "summary": prediction.summary()}
    if not prediction.loads_somewhere:
        message = (
            f"{release.variant}: vLLM {prediction.vllm_version} would refuse this checkpoint: {_reasons(prediction)}"
        )
        if required:
            raise GateError(message)
        logger.warning("%s", message)
    if ctx.vllm_python is None:
        if required:
            raise StageError(f"{release.variant}: verify.vllm is 'required', but {NO_ENVIRONMENT}")
        return StageOutput(metrics=metrics, skipped=NO_ENVIRONMENT)
    smoke = run_smoke(
        ctx.vllm_python,
        checkpoint,
        list(release.verify.prompts),
        max_new_tokens=release.verify.max_new_tokens,
        workdir=ctx.output_dir,
    )
    metrics["smoke"] = smoke.as_dict()
    transformers_generations = ctx.previous["verify"].metrics.get("generations", [])
    metrics["disagreements"] = compare_first_tokens(transformers_generations, smoke.outputs)
    if smoke.ok:
        metrics["summary"] = f"loaded and generated in vLLM {smoke.vllm_version} on {smoke.gpu}"
    else:
        version = f" {smoke.vllm_version}" if smoke.vllm_version else ""
        metrics["summary"] = f"failed in vLLM{version}: {smoke.reason}"
        if required:
            raise GateError(f"{release.variant}: the checkpoint {metrics['summary']}")
        logger.warning("%s: %s", release.variant, metrics["summary"])
    for disagreement in metrics["disagreements"]:
        logger.info(
            "%s: vLLM and transformers disagree on the first tokens for %r", release.variant, disagreement["prompt"]
        )
    return StageOutput(metrics=metrics)


def _reasons(prediction: VllmPrediction) -> str:
    reasons = list(prediction.problems)
    for verdict in prediction.verdicts:
        reasons.extend(reason for reason in verdict.reasons if reason not in reasons)
    return "; ".join(reasons) or "no GPU generation can load it"
