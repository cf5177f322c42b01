"""The paired bootstrap of recovery (hubpub.recovery) and its use on lm-eval rows (hubpub.quality)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubpub.quality import MetricComparison, lower_bound_failures, recovery_text, with_intervals
from hubpub.recovery import paired_ratio


def test_identical_scores_recover_exactly_100_percent_with_a_zero_width_interval() -> None:
    scores = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    ratio = paired_ratio(scores, scores, "mean")
    assert ratio is not None
    assert (ratio.ratio, ratio.low, ratio.high, ratio.examples) == (1.0, 1.0, 1.0, 10)
    pairs = [[-120.5, 40], [-98.25, 31], [-300.0, 77]]
    perplexity = paired_ratio(pairs, pairs, "weighted_perplexity")
    assert perplexity is not None and (perplexity.ratio, perplexity.low, perplexity.high) == (1.0, 1.0, 1.0)


def test_a_known_shift_gives_its_ratio_and_the_interval_covers_it_95_times_in_100() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.4, 0.8, size=400)
    # Every example loses exactly 10%: each resample's ratio is exactly 0.9.
    exact = paired_ratio(list(base), list(0.9 * base), "mean")
    assert exact is not None
    assert (exact.ratio, exact.low, exact.high) == pytest.approx((0.9, 0.9, 0.9))
    # With noise on top of the shift, the interval holds the true 0.9 in about 95% of repeated experiments.
    covered = 0
    for trial in range(200):
        base = rng.uniform(0.4, 0.8, size=100)
        noisy = 0.9 * base + rng.normal(0, 0.05, size=100)
        ratio = paired_ratio(list(base), list(noisy), "mean", seed=trial, resamples=1000)
        assert ratio is not None and ratio.low < ratio.ratio < ratio.high
        covered += ratio.low <= 0.9 <= ratio.high
    assert 0.89 <= covered / 200 <= 0.99


def test_pairing_narrows_the_interval_against_independent_noise() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2, size=200).astype(float)
    flipped = base.copy()
    flipped[:6] = 1 - flipped[:6]
    ratio = paired_ratio(list(base), list(flipped), "mean")
    assert ratio is not None
    # The two models disagree on 6 of 200 examples: the paired interval is a few points wide, far narrower than
    # that of the same two score lists resampled independently of each other.
    draws = np.random.default_rng(0).integers(0, 200, size=(2, 2000, 200))
    independent = flipped[draws[1]].mean(axis=1) / base[draws[0]].mean(axis=1)
    low, high = np.quantile(independent, [0.025, 0.975])
    assert ratio.high - ratio.low < 0.1 < (high - low) / 3


def test_the_seed_makes_the_interval_reproducible() -> None:
    rng = np.random.default_rng(11)
    base = list(rng.integers(0, 2, size=50).astype(float))
    quantized = list(rng.integers(0, 2, size=50).astype(float))
    first = paired_ratio(base, quantized, "mean", seed=5)
    assert first == paired_ratio(base, quantized, "mean", seed=5)
    assert first != paired_ratio(base, quantized, "mean", seed=6)


def test_perplexity_is_recomputed_from_log_likelihood_and_word_counts() -> None:
    base = [[-100.0, 30], [-200.0, 50]]
    quantized = [[-110.0, 30], [-230.0, 50]]
    ratio = paired_ratio(base, quantized, "weighted_perplexity")
    assert ratio is not None
    assert ratio.ratio == pytest.approx(math.exp(340 / 80) / math.exp(300 / 80))
    inverted = ratio.inverted()
    assert (inverted.ratio, inverted.low, inverted.high) == pytest.approx(
        (1 / ratio.ratio, 1 / ratio.high, 1 / ratio.low)
    )


def test_a_zero_base_has_no_ratio_and_zero_resamples_are_handled() -> None:
    assert paired_ratio([0, 0, 0], [1, 0, 1], "mean") is None
    assert paired_ratio([], [], "mean") is None
    # One correct base answer in 20, which the quantized model misses: a third of the resamples miss it too
    # ((19/20)^20), both score 0 there, and 0 ÷ 0 counts as no loss, so the interval reaches 1.
    ratio = paired_ratio([1] + [0] * 19, [0] * 20, "mean")
    assert ratio is not None and (ratio.ratio, ratio.low, ratio.high) == (0.0, 0.0, 1.0)
    gained = paired_ratio([1] + [0] * 19, [1, 1] + [0] * 18, "mean")
    assert gained is not None and gained.high == math.inf
    both = paired_ratio([1] + [0] * 19, [1] + [0] * 19, "mean")
    assert both is not None and (both.low, both.high) == (1.0, 1.0)


def test_unpaired_or_unknown_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="paired"):
        paired_ratio([1, 0], [1], "mean")
    with pytest.raises(ValueError, match="'bleu'"):
        paired_ratio([1], [1], "bleu")


def scores(values: list[object], aggregation: str = "mean") -> dict[str, object]:
    return {"aggregation": aggregation, "doc_ids": list(range(len(values))), "values": values}


def test_rows_get_intervals_from_per_example_scores_and_say_why_when_none() -> None:
    rows = [
        MetricComparison("capitals", "acc", 0.75, 0.5, True),
        MetricComparison("wiki", "word_perplexity", math.exp(1.5), math.exp(2.0), False),
        MetricComparison("group", "acc", 0.5, 0.5, True),
        MetricComparison("odd", "acc", 0.5, 0.5, True),
        MetricComparison("custom", "bleu", 0.5, 0.5, True),
    ]
    base = {
        "capitals": {"acc,none": scores([1, 1, 1, 0])},
        "wiki": {"word_perplexity,none": scores([[-10.0, 10], [-20.0, 10]], "weighted_perplexity")},
        "odd": {"acc,none": scores([1, 0])},
        "custom": {"bleu,none": scores([0.5], "bleu")},
    }
    quantized = {
        "capitals": {"acc,none": scores([1, 0, 1, 0])},
        "wiki": {"word_perplexity,none": scores([[-15.0, 10], [-25.0, 10]], "weighted_perplexity")},
        "odd": {"acc,none": {"aggregation": "mean", "doc_ids": [0, 2], "values": [1, 0]}},
        "custom": {"bleu,none": scores([0.5], "bleu")},
    }
    accuracy, perplexity, group, odd, custom = with_intervals(rows, base, quantized, seed=1, resamples=500)
    assert accuracy.examples == 4 and accuracy.ratio_interval is not None
    assert accuracy.ratio_interval[0] <= 2 / 3 <= accuracy.ratio_interval[1]
    assert accuracy.as_dict()["recovery_interval"] == list(accuracy.ratio_interval)
    assert perplexity.ratio == pytest.approx(math.exp(0.5))
    assert perplexity.ratio_interval is not None and perplexity.recovery_interval is not None
    assert perplexity.recovery_interval == pytest.approx(
        (1 / perplexity.ratio_interval[1], 1 / perplexity.ratio_interval[0])
    )
    assert (group.ratio_interval, group.interval_note) == (None, "lm-eval logged no per-example scores for it")
    assert odd.interval_note == "base and quantized scored different examples"
    assert custom.interval_note == "lm-eval's bleu aggregation is not resampled"


def test_scores_that_do_not_give_the_reported_values_give_no_interval() -> None:
    row = MetricComparison("capitals", "acc", 0.75, 0.5, True)
    (checked,) = with_intervals(
        [row],
        {"capitals": {"acc,none": scores([1, 1, 1, 1])}},
        {"capitals": {"acc,none": scores([1, 0, 1, 0])}},
        seed=1,
        resamples=100,
    )
    assert checked.ratio_interval is None
    assert checked.interval_note == "the per-example scores do not give lm-eval's reported values"


def row(higher: bool, base: float, quantized: float, interval: tuple[float, float] | None) -> dict[str, object]:
    return MetricComparison("t", "m", base, quantized, higher, ratio_interval=interval).as_dict()


def test_the_card_wording() -> None:
    assert recovery_text(row(True, 0.9, 0.8874, (0.951, 1.02))) == "98.6% (95.1–102.0%), no measurable loss"
    assert recovery_text(row(True, 0.85, 0.95, (1.0, 1.25))) == "111.8% (100.0–125.0%), no measurable loss"
    assert recovery_text(row(True, 0.9, 0.81, (0.85, 0.95))) == "90.0% (85.0–95.0%), a measurable loss"
    assert recovery_text(row(True, 0.5, 0.6, (1.1, 1.3))) == "120.0% (110.0–130.0%), measurably better than the base"
    assert recovery_text(row(True, 0.5, 0.6, None)) == "120.0%"
    assert recovery_text(row(False, 42.9, 62.66, (1.38, 1.55))) == "×1.461 (×1.380–×1.550), a measurable loss"
    assert recovery_text(row(False, 20.0, 19.0, (0.9, 1.01))) == "×0.950 (×0.900–×1.010), no measurable loss"
    assert recovery_text(row(False, 20.0, 25.0, None)) == "×1.250"
    unbounded = {**row(True, 0.05, 0.1, (0.0, 2.0)), "ratio_interval": [0.0, None]}
    assert recovery_text(unbounded) == "200.0% (0.0–∞%), no measurable loss"


def test_the_lower_bound_gate() -> None:
    rows = [
        MetricComparison("a", "acc", 0.8, 0.78, True, ratio_interval=(0.93, 1.02)),
        MetricComparison("b", "word_perplexity", 20.0, 25.0, False, ratio_interval=(1.1, 1.4)),
        MetricComparison("c", "acc", 0.8, 0.8, True, interval_note="the base scored 0"),
    ]
    assert lower_bound_failures(rows, None) == []
    assert lower_bound_failures(rows, {"a": 0.9}) == []
    (failure,) = lower_bound_failures(rows, {"a": 0.95})
    assert failure == "a acc: recovery 0.975, 95% interval 0.930–1.020, lower bound < min_recovery_lower 0.95"
    (perplexity,) = lower_bound_failures(rows, {"b": 0.75})
    assert perplexity.startswith("b word_perplexity: recovery 0.800, 95% interval 0.714–0.909")
    assert lower_bound_failures(rows, {"c": 0.5}) == [
        "c acc: no interval to hold to min_recovery_lower (the base scored 0)"
    ]
