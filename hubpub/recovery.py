"""Recovery of a quantized model's task score and its 95% interval, by a paired bootstrap over the same examples.

Base and quantized answered the same examples, so each resample draws example indices with replacement and
scores both models on the same draw: what varies between the two is the model, not the examples. The
interval is the percentile interval of quantized ÷ base over the resamples, from a fixed seed, so the same
per-example scores always give the same interval.

Per-example scores are lm-eval's: a number per example for `mean`-aggregated metrics (accuracy), a
(log-likelihood, weight) pair for the weighted ones (word and byte perplexity, bits per byte). The
statistic is recomputed from the resampled examples with lm-eval's own aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

RESAMPLES = 2000
SEED = 20260
CONFIDENCE = 0.95
_CHUNK = 200
Values = NDArray[np.float64]


def _mean(values: Values) -> Values:
    return np.asarray(values.mean(axis=-1), dtype=np.float64)


def _weighted(values: Values) -> Values:
    return np.asarray(values[..., 0].sum(axis=-1) / values[..., 1].sum(axis=-1), dtype=np.float64)


AGGREGATIONS: dict[str, Callable[[Values], Values]] = {
    "mean": _mean,
    "perplexity": lambda values: np.exp(-_mean(values)),
    "weighted_perplexity": lambda values: np.exp(-_weighted(values)),
    "bits_per_byte": lambda values: -_weighted(values) / math.log(2),
}
"""lm-eval's aggregations (lm_eval/api/metrics.py) that a resample can recompute, over the last axis."""


@dataclass(frozen=True)
class PairedRatio:
    """quantized ÷ base of one metric on the same examples, with the bootstrap's percentile interval."""

    ratio: float
    low: float
    high: float
    examples: int

    def inverted(self) -> PairedRatio:
        """base ÷ quantized: the recovery of a metric where lower is better."""
        return PairedRatio(_inverse(self.ratio), _inverse(self.high), _inverse(self.low), self.examples)

    def includes(self, value: float) -> bool:
        return self.low <= value <= self.high


def _inverse(value: float) -> float:
    return 1 / value if value else math.inf


def paired_ratio(
    base: Sequence[Any],
    quantized: Sequence[Any],
    aggregation: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> PairedRatio | None:
    """quantized ÷ base of `aggregation` over paired per-example scores, with its `confidence` interval.

    `base[i]` and `quantized[i]` are the two models' scores on the same example. A resample whose base
    statistic is 0 counts as a ratio of 1 when the quantized one is 0 too, else as infinite. None when the
    ratio is undefined: no examples, or a base statistic of 0 on all of them (recovery of nothing).
    Raises ValueError for an aggregation it cannot recompute or unpaired inputs.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"cannot resample lm-eval's {aggregation!r} aggregation")
    if len(base) != len(quantized):
        raise ValueError(f"{len(base)} base scores but {len(quantized)} quantized ones: they must be paired")
    if not base:
        return None
    statistic = AGGREGATIONS[aggregation]
    base_values = np.asarray(base, dtype=np.float64)
    quantized_values = np.asarray(quantized, dtype=np.float64)
    base_whole = float(statistic(base_values))
    if base_whole == 0:
        return None
    rng = np.random.default_rng(seed)
    count = len(base_values)
    ratios = []
    for start in range(0, resamples, _CHUNK):
        indices = rng.integers(0, count, size=(min(_CHUNK, resamples - start), count))
        ratios.append(_ratios(statistic(base_values[indices]), statistic(quantized_values[indices])))
    drawn = np.concatenate(ratios)
    tail = (1 - confidence) / 2
    low, high = np.quantile(drawn, [tail, 1 - tail], method="inverted_cdf")
    return PairedRatio(float(statistic(quantized_values)) / base_whole, float(low), float(high), count)


def _ratios(base: Values, quantized: Values) -> Values:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = quantized / base
    return np.where(base == 0, np.where(quantized == 0, 1.0, np.inf), ratios)
