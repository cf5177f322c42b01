"""vLLM stage: predict from the checkpoint's files whether vLLM loads it, then load it in vLLM when one is at hand.

The static preflight needs no GPU and no vLLM: it applies the rules of `hubpub.vllm` to `config.json` and
the safetensors headers, for each GPU generation and class of CPU. The real smoke test runs in the Python
environment that has vLLM (never this one), in its own process group. What it did is compared with the
prediction for the platform it ran on, and its first tokens with the transformers verification; both
comparisons are recorded, not gated.
"""

from __future__ import annotations

import logging
from typing import Any

from hubpub.errors import GateError, StageError
from hubpub.stages.context import StageContext, StageOutput
from hubpub.vllm import VLLM_PYTHON_ENV, VllmPrediction, compare_first_tokens, predict_folder, run_smoke
from hubpub.vllm.agreement import check_prediction

logger = logging.getLogger(__name__)

NO_ENVIRONMENT = (
    f"no vLLM environment was configured: run `hubpub vllm-env`, or set {VLLM_PYTHON_ENV}, verify.vllm_python or"
    " --vllm-python"
)


def run(ctx: StageContext) -> StageOutput:
    """Static preflight always; the real load when `ctx.vllm_python` names an interpreter with vLLM."""
    release = ctx.release
    required = release.verify.vllm == "required"
    checkpoint = ctx.output_of("quantize", "checkpoint")
    # The resource plan's tensor-parallel size (1 on a CPU): the preflight checks the splits the load will make.
    tensor_parallel_size = ctx.placement.tensor_parallel_size
    prediction = predict_folder(checkpoint, tp_sizes=(tensor_parallel_size,))
    metrics: dict[str, Any] = {
        "preflight": prediction.as_dict(),
        "summary": prediction.summary(),
        "tensor_parallel_size": tensor_parallel_size,
    }
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
        tensor_parallel_size=tensor_parallel_size,
    )
    metrics["smoke"] = smoke.as_dict()
    transformers_generations = ctx.previous["verify"].metrics.get("generations", [])
    metrics["disagreements"] = compare_first_tokens(transformers_generations, smoke.outputs)
    check = check_prediction(
        prediction,
        platform=smoke.platform,
        observed_on=smoke.platform_text,
        loaded=smoke.ok or bool(smoke.outputs),
        schemes=smoke.schemes,
        kernels=smoke.kernels,
        failure=smoke.reason,
    )
    metrics["prediction_check"] = check.as_dict()
    for difference in check.differences:
        logger.warning("%s: the vLLM prediction was wrong: %s", release.variant, difference)
    version = f" {smoke.vllm_version}" if smoke.vllm_version else ""
    where = f" on {smoke.platform_text}" if smoke.platform_text else ""
    if smoke.ok:
        metrics["summary"] = f"loaded and generated in vLLM{version}{where}"
    else:
        metrics["summary"] = f"failed in vLLM{version}{where}: {smoke.reason}"
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
