"""Canary analysis, pure part (``core.canary``, ``core.canary_steps``): figures, verdicts, steps, overrides."""

from __future__ import annotations

import pytest

from reconciler.core.canary import Counters, Sample, Thresholds, Verdict, WindowFigures, judge, window_figures
from reconciler.core.canary_steps import advance, begin, check_steps, override_of

LIMITS = Thresholds(max_error_rate=0.05, max_latency=0.5, min_requests=20)


def sample(at: float, requests: float, errors: float = 0, seconds: float | None = None) -> Sample:
    total = seconds if seconds is not None else requests * 0.01
    return Sample(at, Counters(requests=requests, errors=errors, duration_sum=total, duration_count=requests))


def test_window_figures_are_the_increase_between_two_readings() -> None:
    figures = window_figures(sample(100, 1000, 10, 10.0), sample(130, 1100, 60, 15.0))
    assert figures == WindowFigures(requests=100, errors=50, seconds=30, mean_latency=0.05, reset=False)
    assert figures.error_rate == 0.5


def test_a_service_without_series_at_first_counts_from_zero() -> None:
    figures = window_figures(Sample(0, None), sample(10, 40, 4))
    assert figures is not None and (figures.requests, figures.errors) == (40, 4)


def test_missing_metrics_give_no_figures_and_an_inconclusive_verdict() -> None:
    assert window_figures(sample(0, 10), Sample(10, None)) is None
    verdict = judge(None, LIMITS, service="erp-acme.a.b")
    assert verdict.outcome == "inconclusive"
    assert "no metrics for erp-acme.a.b" in verdict.reason


def test_a_counter_reset_counts_from_zero_never_negative() -> None:
    # Traefik restarted: every counter fell; the window is what the new counters say.
    figures = window_figures(sample(0, 5000, 100), sample(30, 60, 30))
    assert figures is not None
    assert (figures.requests, figures.errors, figures.reset) == (60, 30, True)
    assert judge(figures, LIMITS).outcome == "failing"
    assert "(counters reset)" in figures.describe()


def test_too_few_requests_judge_nothing_even_if_all_failed() -> None:
    figures = window_figures(sample(0, 0), sample(30, 19, 19))
    verdict = judge(figures, LIMITS)
    assert verdict.outcome == "inconclusive"
    assert "too few requests to judge: 19 < 20" in verdict.reason


@pytest.mark.parametrize(
    ("errors", "outcome"),
    [(0, "healthy"), (5, "healthy"), (6, "failing"), (50, "failing")],
)
def test_error_rate_threshold(errors: int, outcome: str) -> None:
    verdict = judge(window_figures(sample(0, 0), sample(30, 100, errors)), LIMITS)
    assert verdict.outcome == outcome
    if outcome == "failing":
        assert f"error rate {errors / 100:.1%} ({errors} of 100 requests) over 30 s" in verdict.reason


def test_latency_threshold_on_the_mean_duration() -> None:
    slow = judge(window_figures(sample(0, 0), sample(30, 100, 0, seconds=60.0)), LIMITS)
    assert slow.outcome == "failing"
    assert "mean latency 600 ms" in slow.reason and "500 ms allowed" in slow.reason
    fast = judge(window_figures(sample(0, 0), sample(30, 100, 0, seconds=40.0)), LIMITS)
    assert fast.outcome == "healthy"


def test_thresholds_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_error_rate"):
        Thresholds(max_error_rate=5)
    with pytest.raises(ValueError, match="min_requests"):
        Thresholds(min_requests=0)


def test_steps_must_rise_to_100() -> None:
    assert check_steps([10, 25, 50, 100]) == (10, 25, 50, 100)
    assert check_steps([]) == ()
    for bad in ([10, 50], [50, 25, 100], [0, 100], [10, 10, 100]):
        with pytest.raises(ValueError, match="rising percentages"):
            check_steps(bad)


HEALTHY = Verdict("healthy", "fine")
FAILING = Verdict("failing", "error rate 50.0% (50 of 100 requests) over 30 s: more than the 5.0% allowed")
UNSURE = Verdict("inconclusive", "too few requests")


def test_stepped_promotion_goes_step_by_step_on_healthy_windows_only() -> None:
    steps = (10, 25, 50, 100)
    canary = begin("acme", "a", "img:1", "img:2", steps)
    assert (canary.state, canary.weight) == ("promoting", 10)
    canary, event = advance(canary, UNSURE, steps)
    assert (canary.weight, event) == (10, None)
    seen = []
    for _ in range(3):
        canary, event = advance(canary, HEALTHY, steps)
        seen.append((canary.weight, event))
    assert seen == [(25, "promoted-step"), (50, "promoted-step"), (100, "promoted")]
    assert canary.final
    assert advance(canary, FAILING, steps) == (canary, None)  # a promoted canary stays promoted


def test_a_failing_window_backs_out_at_any_step() -> None:
    canary, _ = advance(begin("acme", "a", "img:1", "img:2", (10, 100)), FAILING, (10, 100))
    assert (canary.state, canary.weight, canary.reason) == ("backed-out", 0, FAILING.reason)
    override = override_of(canary)
    assert override is not None and (override.stable_weight, override.canary_weight) == (100, 0)
    assert "backed out: error rate 50.0%" in override.reason
    assert advance(canary, HEALTHY, (10, 100)) == (canary, None)


def test_without_steps_the_database_weights_hold_until_a_back_out() -> None:
    canary = begin("acme", "a", "img:1", "img:2", ())
    canary, event = advance(canary, HEALTHY, ())
    assert (canary.state, event, override_of(canary)) == ("analysing", None, None)
    canary, event = advance(canary, FAILING, ())
    assert event == "backed-out"
    assert override_of(canary) is not None


def test_overrides_of_promotion_steps_split_a_hundred() -> None:
    canary = begin("acme", "a", "img:1", "img:2", (25, 100))
    override = override_of(canary)
    assert override is not None
    assert (override.stable_weight, override.canary_weight) == (75, 25)
    assert "at 25% (promotion step 1)" in override.reason
