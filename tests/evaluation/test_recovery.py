from __future__ import annotations

import pytest

from hubpub.quality import MetricComparison, compare_results, recovery_failures


def test_recovery_for_higher_is_better() -> None:
    row = MetricComparison("arc_easy", "acc", base=0.80, quantized=0.76, higher_is_better=True)
    assert row.recovery == pytest.approx(0.95)
    assert row.delta == pytest.approx(-0.04)


def test_recovery_for_lower_is_better_is_inverted() -> None:
    row = MetricComparison("wikitext", "word_perplexity", base=20.0, quantized=25.0, higher_is_better=False)
    assert row.recovery == pytest.approx(0.8)
    assert row.delta == pytest.approx(5.0)
    better = MetricComparison("wikitext", "word_perplexity", base=20.0, quantized=19.0, higher_is_better=False)
    assert better.recovery > 1


def test_compare_pairs_metrics_and_stderr_from_lm_eval_results() -> None:
    base = {
        "results": {"demo": {"alias": "demo", "acc,none": 0.5, "acc_stderr,none": 0.05, "word_perplexity,none": 30.0}},
        "higher_is_better": {"demo": {"acc": True, "word_perplexity": False}},
    }
    quantized = {"results": {"demo": {"acc,none": 0.45, "acc_stderr,none": 0.04, "word_perplexity,none": 33.0}}}
    accuracy, perplexity = compare_results(base, quantized)
    assert (accuracy.metric, accuracy.base_stderr, accuracy.quantized_stderr) == ("acc", 0.05, 0.04)
    assert accuracy.recovery == pytest.approx(0.9)
    assert (perplexity.metric, perplexity.higher_is_better, perplexity.base_stderr) == ("word_perplexity", False, None)
    assert perplexity.recovery == pytest.approx(30 / 33)


def test_gate_global_and_per_task() -> None:
    rows = [
        MetricComparison("a", "acc", 0.8, 0.76, True),
        MetricComparison("b", "word_perplexity", 20.0, 25.0, False),
    ]
    assert recovery_failures(rows, None) == []
    assert recovery_failures(rows, 0.75) == []
    (failure,) = recovery_failures(rows, 0.9)
    assert failure == "b word_perplexity: base 20.0000, quantized 25.0000, recovery 0.800 < min_recovery 0.9"
    (only_a,) = recovery_failures(rows, {"a": 0.99})
    assert only_a.startswith("a acc: base 0.8000, quantized 0.7600, recovery 0.950")
