"""Quality checks on what a model produced."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
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

    @property
    def delta(self) -> float:
        return self.quantized - self.base

    @property
    def recovery(self) -> float:
        """quantized ÷ base, inverted for lower-is-better metrics such as perplexity; 1.0 is no loss."""
        if self.higher_is_better:
            return self.quantized / self.base if self.base else float("inf") if self.quantized else 1.0
        return self.base / self.quantized if self.quantized else float("inf") if self.base else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "recovery": self.recovery}


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
