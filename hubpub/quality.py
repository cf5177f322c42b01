"""Quality checks on what a model produced."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

_REPEAT_SHARE = 0.6
_MIN_WORDS_FOR_REPEAT_CHECK = 8


def degeneracy(text: str) -> str | None:
    """Why an output is unusable (empty, or one phrase filling most of it), or None when it is fine."""
    words = text.split()
    if not words:
        return "empty output"
    if len(words) < _MIN_WORDS_FOR_REPEAT_CHECK:
        return None
    for size in (1, 2, 3, 4):
        grams = Counter(tuple(words[index : index + size]) for index in range(len(words) - size + 1))
        phrase, count = grams.most_common(1)[0]
        if count >= 3 and count * size >= _REPEAT_SHARE * len(words):
            return f"'{' '.join(phrase)}' repeats {count} times in {len(words)} words"
    return None


def heldout_text() -> Path:
    """The fixed held-out text on which base and quantized perplexity are compared."""
    return Path(str(files("hubpub") / "data" / "heldout.txt"))


@dataclass(frozen=True)
class MetricComparison:
    """One task metric of base and quantized, with the quantized model's recovery of the base score."""

    task: str
    metric: str
    base: float
    quantized: float
    higher_is_better: bool
    base_stderr: float | None = None
    quantized_stderr: float | None = None
    filter: str = "none"
    """lm-eval's filter of the metric (`strict-match` for gsm8k's exact match, `none` for most)."""
    ratio_interval: tuple[float, float] | None = None
    """The 95% interval of quantized ÷ base by the paired bootstrap (hubpub.recovery), when there is one."""
    examples: int | None = None
    """How many examples both models scored, the ones the bootstrap resampled."""
    interval_note: str | None = None
    """Why there is no interval, when there is none."""

    @property
    def delta(self) -> float:
        return self.quantized - self.base

    @property
    def ratio(self) -> float:
        """quantized ÷ base, whichever way is better: the perplexity ratio of a perplexity."""
        return self.quantized / self.base if self.base else math.inf if self.quantized else 1.0

    @property
    def recovery_interval(self) -> tuple[float, float] | None:
        """The interval of `recovery`: the ratio's, inverted for lower-is-better metrics."""
        if self.ratio_interval is None or self.higher_is_better:
            return self.ratio_interval
        low, high = self.ratio_interval
        return (1 / high if high else math.inf, 1 / low if low else math.inf)

    @property
    def recovery(self) -> float:
        """quantized ÷ base, inverted for lower-is-better metrics such as perplexity; 1.0 is no loss."""
        if self.higher_is_better:
            return self.quantized / self.base if self.base else float("inf") if self.quantized else 1.0
        return self.base / self.quantized if self.quantized else float("inf") if self.base else 1.0

    def as_dict(self) -> dict[str, Any]:
        interval = self.recovery_interval
        return {
            **asdict(self),
            "ratio_interval": list(self.ratio_interval) if self.ratio_interval else None,
            "delta": self.delta,
            "ratio": self.ratio,
            "recovery": self.recovery,
            "recovery_interval": list(interval) if interval else None,
        }


def compare_results(base: dict[str, Any], quantized: dict[str, Any]) -> list[MetricComparison]:
    """Pair lm-eval results: every metric both runs report, per task, with stderr where lm-eval gives one."""
    rows = []
    for task, base_metrics in sorted(base["results"].items()):
        quantized_metrics = quantized["results"].get(task, {})
        directions = base.get("higher_is_better", {}).get(task, {})
        for key, value in base_metrics.items():
            name, _, filter_name = key.partition(",")
            if name.endswith("_stderr") or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if key not in quantized_metrics or name not in directions:
                continue
            stderr_key = f"{name}_stderr,{filter_name}"
            rows.append(
                MetricComparison(
                    task=task,
                    metric=name,
                    base=float(value),
                    quantized=float(quantized_metrics[key]),
                    higher_is_better=bool(directions[name]),
                    base_stderr=_number(base_metrics.get(stderr_key)),
                    quantized_stderr=_number(quantized_metrics.get(stderr_key)),
                    filter=filter_name or "none",
                )
            )
    return rows


def recovery_text(row: dict[str, Any]) -> str:
    """A row's recovery as the card and the summary print it: `98.6% (95.1–102.0%)` with its 95% interval, or
    for a lower-is-better metric (perplexity) the ratio quantized ÷ base, `×1.460 (×1.421–×1.500)`; an
    interval that includes no change is worded as no measurable loss. An unbounded end (a resample where the
    base scored 0 and the quantized model did not; JSON keeps it as null) prints as ∞."""
    interval = row.get("ratio_interval")
    low, high = (math.inf if bound is None else bound for bound in interval) if interval else (None, None)
    if row["higher_is_better"]:
        value, unit, scale, sign = row["recovery"], "%", 100, ""
    else:
        value = row.get("ratio", row["quantized"] / row["base"] if row["base"] else math.inf)
        unit, scale, sign = "", 1, "×"
    digits = 1 if unit else 3

    def shown(number: float) -> str:
        return f"{sign}{scale * number:.{digits}f}" if math.isfinite(number) else f"{sign}∞"

    if low is None or high is None:
        return shown(value) + unit
    text = f"{shown(value)}{unit} ({shown(low)}–{shown(high)}{unit})"
    if low <= 1 <= high:
        return f"{text}, no measurable loss"
    worse = high < 1 if row["higher_is_better"] else low > 1
    return f"{text}, {'a measurable loss' if worse else 'measurably better than the base'}"


def with_intervals(
    rows: list[MetricComparison],
    base_scores: dict[str, Any],
    quantized_scores: dict[str, Any],
    *,
    seed: int,
    resamples: int,
) -> list[MetricComparison]:
    """`rows` with each metric's 95% interval by a paired bootstrap over the examples both models scored.

    The scores are `hubpub.stages._evaluate_child.per_example_scores` of each run. A row keeps no interval,
    and says why in `interval_note`, when lm-eval logged no per-example scores for it (a group of tasks), the
    two runs scored different examples, its aggregation cannot be recomputed, the recomputed value is not the
    one lm-eval reported, or the base scored 0.
    """
    return [_with_interval(row, base_scores, quantized_scores, seed=seed, resamples=resamples) for row in rows]


def _with_interval(
    row: MetricComparison, base_scores: dict[str, Any], quantized_scores: dict[str, Any], *, seed: int, resamples: int
) -> MetricComparison:
    from hubpub.recovery import AGGREGATIONS, paired_ratio  # numpy: not for the commands that only print

    key = f"{row.metric},{row.filter}"
    base = base_scores.get(row.task, {}).get(key)
    quantized = quantized_scores.get(row.task, {}).get(key)
    if base is None or quantized is None:
        return replace(row, interval_note="lm-eval logged no per-example scores for it")
    if base["doc_ids"] != quantized["doc_ids"]:
        return replace(row, interval_note="base and quantized scored different examples")
    aggregation = base["aggregation"]
    if aggregation not in AGGREGATIONS:
        return replace(row, interval_note=f"lm-eval's {aggregation or 'custom'} aggregation is not resampled")
    ratio = paired_ratio(base["values"], quantized["values"], aggregation, seed=seed, resamples=resamples)
    if ratio is None:
        return replace(row, examples=len(base["doc_ids"]), interval_note="the base scored 0")
    if not math.isclose(ratio.ratio, row.quantized / row.base, rel_tol=1e-6):
        return replace(row, interval_note="the per-example scores do not give lm-eval's reported values")
    return replace(row, ratio_interval=(ratio.low, ratio.high), examples=ratio.examples)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def recovery_failures(rows: list[MetricComparison], min_recovery: float | dict[str, float] | None) -> list[str]:
    """The metrics whose recovery falls short of the gate (global, or per task), as messages."""
    if min_recovery is None:
        return []
    failures = []
    for row in rows:
        threshold = min_recovery.get(row.task) if isinstance(min_recovery, dict) else min_recovery
        if threshold is not None and row.recovery < threshold:
            failures.append(
                f"{row.task} {row.metric}: base {row.base:.4f}, quantized {row.quantized:.4f},"
                f" recovery {row.recovery:.3f} < min_recovery {threshold}"
            )
    return failures


def lower_bound_failures(rows: list[MetricComparison], min_lower: float | dict[str, float] | None) -> list[str]:
    """The metrics whose recovery interval's lower bound falls short of the gate (global, or per task), or that
    have no interval to gate, as messages."""
    if min_lower is None:
        return []
    failures = []
    for row in rows:
        threshold = min_lower.get(row.task) if isinstance(min_lower, dict) else min_lower
        if threshold is None:
            continue
        interval = row.recovery_interval
        if interval is None:
            failures.append(f"{row.task} {row.metric}: no interval to hold to min_recovery_lower ({row.interval_note})")
        elif interval[0] < threshold:
            failures.append(
                f"{row.task} {row.metric}: recovery {row.recovery:.3f}, 95% interval"
                f" {interval[0]:.3f}–{interval[1]:.3f}, lower bound < min_recovery_lower {threshold}"
            )
    return failures
