"""The prediction checked against reality: what the static preflight said for the platform a real load ran on.

A real vLLM load reports its platform (a GPU and its capability, or a CPU and its features). That platform is
matched to one verdict of the prediction, and the two are compared: whether it loaded, and then which schemes
and kernels vLLM logged, or why it refused. A difference means a rule table is wrong (or vLLM changed); it is
recorded in the manifest and shown on the card, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubpub.vllm import cpu_rules, rules
from hubpub.vllm.predict import GenerationVerdict, VllmPrediction

# The failures a reason can be recognised by, on either side (the engine wrapper says nothing of the cause).
FAILURE_SIGNATURES: tuple[str, ...] = tuple(
    pattern
    for pattern in (*rules.VLLM_ERROR_PATTERNS, *cpu_rules.CPU_ERROR_PATTERNS)
    if pattern != r"Engine core initialization failed"
)


@dataclass(frozen=True)
class PredictionCheck:
    """How one real load compares with the prediction for its platform.

    `platform` is the predicted platform the load was matched to (None when no rules cover the machine, and
    then `agrees` is None too); `differences` say what disagreed, in words.
    """

    platform: str | None
    observed_on: str | None
    agrees: bool | None
    differences: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "observed_on": self.observed_on,
            "agrees": self.agrees,
            "differences": list(self.differences),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionCheck:
        agrees = data.get("agrees")
        return cls(
            platform=data.get("platform"),
            observed_on=data.get("observed_on"),
            agrees=None if agrees is None else bool(agrees),
            differences=tuple(data.get("differences", ())),
        )


def verdict_for(prediction: VllmPrediction, platform: Mapping[str, Any] | None) -> GenerationVerdict | None:
    """The verdict of the predicted platform a real machine belongs to, or None when none covers it.

    A GPU takes the generation of its capability, or the newest one below it (an A10's 8.6 is judged by
    Ampere's rules); a CPU takes the richest modelled x86 class whose features it has.
    """
    if not platform:
        return None
    if platform.get("kind") == "gpu":
        capability = platform.get("capability")
        if not isinstance(capability, Sequence) or len(capability) != 2:
            return None
        value = int(capability[0]) * 10 + int(capability[1])
        candidates = [
            item
            for item in prediction.verdicts
            if item.kind == "gpu" and item.capability is not None and item.capability <= value
        ]
        return max(candidates, key=lambda item: item.capability or 0) if candidates else None
    if platform.get("kind") == "cpu":
        if platform.get("zen") or platform.get("arch") not in ("x86_64", "AMD64"):
            return None
        cpu = cpu_rules.platform_for_features(frozenset(platform.get("features") or ()))
        if cpu is None:
            return None
        return next((item for item in prediction.verdicts if item.generation == cpu.name), None)
    return None


def check_prediction(
    prediction: VllmPrediction,
    *,
    platform: Mapping[str, Any] | None,
    observed_on: str | None,
    loaded: bool,
    schemes: Sequence[str],
    kernels: Sequence[str],
    failure: str | None,
) -> PredictionCheck:
    """Compare what vLLM did on `platform` with the prediction for it.

    `loaded` is whether vLLM built the engine and generated (bad text is a quality problem, not a refusal);
    `schemes` and `kernels` are what its log named; `failure` is its error when it did not load.
    """
    verdict = verdict_for(prediction, platform)
    if verdict is None:
        return PredictionCheck(None, observed_on, None)
    differences: list[str] = []
    if verdict.loads and not loaded:
        differences.append(f"predicted to load on {verdict.generation}, but vLLM failed: {failure or 'no reason'}")
    elif loaded and not verdict.loads:
        differences.append(
            f"predicted to be refused on {verdict.generation} ({_first(verdict.reasons)}), but vLLM loaded it"
        )
    elif loaded:
        differences.extend(_usage_differences(verdict, schemes, kernels))
    else:
        difference = _failure_difference(verdict, failure)
        if difference is not None:
            differences.append(difference)
    return PredictionCheck(verdict.generation, observed_on, not differences, tuple(differences))


def _usage_differences(verdict: GenerationVerdict, schemes: Sequence[str], kernels: Sequence[str]) -> list[str]:
    differences = []
    if set(schemes) != set(verdict.schemes):
        differences.append(
            f"schemes: predicted {_names(verdict.schemes)} on {verdict.generation}, vLLM used {_names(schemes)}"
        )
    # GPU verdicts name kernels for the mixed-precision schemes only: nothing to compare when none was predicted.
    if verdict.kernels and set(kernels) != set(verdict.kernels):
        differences.append(
            f"kernels: predicted {_names(verdict.kernels)} on {verdict.generation}, vLLM used {_names(kernels)}"
        )
    return differences


def _failure_difference(verdict: GenerationVerdict, failure: str | None) -> str | None:
    observed = [pattern for pattern in FAILURE_SIGNATURES if failure and re.search(pattern, failure)]
    predicted = [pattern for pattern in FAILURE_SIGNATURES if any(re.search(pattern, r) for r in verdict.reasons)]
    if set(observed) & set(predicted):
        return None
    if not observed:
        return (
            f"vLLM refused it on {verdict.generation} for a reason the rules do not know: {failure or 'no reason'}"
            f" (predicted: {_first(verdict.reasons)})"
        )
    return (
        f"vLLM refused it on {verdict.generation} as predicted, but for another reason: {failure}"
        f" (predicted: {_first(verdict.reasons)})"
    )


def _names(items: Sequence[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def _first(reasons: Sequence[str]) -> str:
    return reasons[0] if reasons else "no reason recorded"
