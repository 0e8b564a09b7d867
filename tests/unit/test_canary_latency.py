"""The canary analysis's latency at a quantile: the histogram math (``core.canary_latency``), the window's figure
and the verdict on an absolute limit (``core.canary``), the policy columns (``desired_state.canaries``) and the
buckets read from Traefik's metrics text (``drivers.traefik_metrics``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desired_state.canaries import (
    CanaryPolicyError,
    CanaryPolicyResolved,
    CanaryPolicyRow,
    read_canaries,
    resolve_policy,
    write_canary,
)
from desired_state.database import make_engine, upgrade
from reconciler.core.canary import Counters, Sample, Thresholds, WindowFigures, judge, window_figures
from reconciler.core.canary_latency import bucket_increase, merge_buckets, quantile, quantile_name
from reconciler.core.canary_steps import Canary
from reconciler.drivers.traefik_metrics import parse_counters

INF = math.inf
# Traefik's default bounds (0.1, 0.3, 1.2, 5 s): 90 requests under 100 ms, 10 between 300 ms and 1.2 s.
TAIL = ((0.1, 90.0), (0.3, 90.0), (1.2, 100.0), (5.0, 100.0), (INF, 100.0))


def test_interpolates_linearly_inside_the_bucket_holding_the_rank() -> None:
    # The example PromQL's documentation and ClickHouse's quantilePrometheusHistogram give: the median is 0.35.
    assert quantile(0.5, ((0.0, 6.0), (0.5, 11.0), (1.0, 14.0), (INF, 19.0))) == pytest.approx(0.35)
    # Rank 95 of 100 lies in (0.3, 1.2], half-way through its 10 requests.
    assert quantile(0.95, TAIL) == pytest.approx(0.75)
    assert quantile(0.99, TAIL) == pytest.approx(0.3 + 0.9 * 9 / 10)
    # The first bucket starts at 0.
    assert quantile(0.45, TAIL) == pytest.approx(0.05)


def test_the_edges_answer_what_histogram_quantile_answers() -> None:
    # A rank in the +Inf bucket: the highest finite bound, the histogram cannot say more.
    assert quantile(0.99, ((0.1, 10.0), (0.3, 50.0), (INF, 100.0))) == 0.3
    # No observation, no +Inf bucket, a single bucket: nothing to say.
    assert quantile(0.95, ((0.1, 0.0), (INF, 0.0))) is None
    assert quantile(0.95, ((0.1, 5.0), (0.3, 9.0))) is None
    assert quantile(0.95, ((INF, 9.0),)) is None
    assert quantile(0.95, ()) is None
    # A count that falls between bounds (samples of one scrape taken a moment apart) is raised, never negative.
    assert quantile(0.5, ((0.1, 10.0), (0.3, 8.0), (INF, 10.0))) == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"quantile = 1\.5"):
        quantile(1.5, TAIL)
    with pytest.raises(ValueError, match="quantile = nan"):
        quantile(math.nan, TAIL)


def test_quantile_names() -> None:
    assert [quantile_name(q) for q in (0.5, 0.95, 0.99, 0.999)] == ["p50", "p95", "p99", "p99.9"]


BOUNDS = st.lists(st.floats(min_value=0.001, max_value=60.0), min_size=1, max_size=8, unique=True).map(sorted)


@st.composite
def histograms(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    bounds = [*draw(BOUNDS), INF]
    per_bucket = draw(st.lists(st.integers(0, 1000), min_size=len(bounds), max_size=len(bounds)))
    running = 0
    cumulative = []
    for bound, count in zip(bounds, per_bucket, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    return tuple(cumulative)


@given(histograms(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_a_quantile_rises_with_q_and_stays_within_the_finite_bounds(
    buckets: tuple[tuple[float, float], ...], a: float, b: float
) -> None:
    low, high = sorted((a, b))
    at_low, at_high = quantile(low, buckets), quantile(high, buckets)
    if buckets[-1][1] == 0:
        assert at_low is None and at_high is None
        return
    assert at_low is not None and at_high is not None
    assert 0.0 <= at_low <= at_high + 1e-9
    assert at_high <= buckets[-2][0] + 1e-9


@given(histograms(), st.floats(0.01, 0.99))
def test_the_quantile_holds_at_least_its_share_below_the_bucket_bound_it_reaches(
    buckets: tuple[tuple[float, float], ...], q: float
) -> None:
    found = quantile(q, buckets)
    total = buckets[-1][1]
    if found is None:
        assert total == 0
        return
    # Every finite bound at or above the answer has at least q of the observations below it.
    for bound, count in buckets[:-1]:
        if bound >= found + 1e-9:
            assert count >= q * total - 1e-6


@given(histograms(), histograms())
def test_the_window_increase_is_the_later_histogram_minus_the_earlier_or_the_later_after_a_reset(
    first: tuple[tuple[float, float], ...], extra: tuple[tuple[float, float], ...]
) -> None:
    later = merge_buckets([*first, *extra])
    increase, reset = bucket_increase(first, later)
    assert not reset
    assert increase == merge_buckets([*((b, 0.0) for b, _ in first), *extra])


def test_a_bucket_that_fell_is_a_reset_and_the_window_counts_from_zero() -> None:
    restarted = ((0.1, 3.0), (INF, 4.0))
    assert bucket_increase(TAIL, restarted) == (restarted, True)
    figures = window_figures(Sample(0, counters(TAIL)), Sample(30, counters(restarted, requests=4)), 0.95)
    assert figures is not None and figures.reset and figures.requests == 4
    assert figures.quantile_latency == 0.1  # rank 3.8 of 4 is in +Inf: the highest finite bound


def counters(buckets: tuple[tuple[float, float], ...], requests: float = 100) -> Counters:
    return Counters(requests=requests, duration_sum=requests * 0.05, duration_count=requests, buckets=buckets)


P95_300MS = Thresholds(max_error_rate=0.05, max_latency=1.0, min_requests=20, max_quantile_latency=0.3,
                       latency_quantile=0.95)  # fmt: skip


def test_a_slow_tail_fails_the_p95_limit_while_the_mean_passes() -> None:
    figures = window_figures(Sample(0, None), Sample(30, counters(TAIL)), 0.95)
    assert figures is not None and figures.mean_latency == pytest.approx(0.05)
    assert figures.quantile_latency == pytest.approx(0.75)
    verdict = judge(figures, P95_300MS)
    assert verdict.outcome == "failing"
    assert verdict.reason.endswith("mean latency 50 ms, p95 latency 750 ms: p95 latency over the 300 ms allowed")
    # The same window under today's rules (no quantile limit) is healthy, and says nothing of a quantile.
    plain = window_figures(Sample(0, None), Sample(30, counters(TAIL)))
    assert plain is not None and plain.quantile_latency is None
    assert judge(plain, Thresholds(0.05, 1.0, 20)).outcome == "healthy"
    assert "p95" not in judge(plain, Thresholds(0.05, 1.0, 20)).reason


def test_a_fast_window_passes_and_the_figure_is_of_this_window_only() -> None:
    fast_then_slow = Sample(0, counters(TAIL))
    # 100 more requests, all under 100 ms: this window's p95 is 95 ms although the counters' total is slow.
    later = tuple((bound, count + 100) for bound, count in TAIL)
    figures = window_figures(fast_then_slow, Sample(30, counters(later, requests=200)), 0.95)
    assert figures is not None and figures.quantile_latency == pytest.approx(0.095)
    verdict = judge(figures, P95_300MS)
    assert verdict.outcome == "healthy" and "p95 latency 95 ms" in verdict.reason


def test_a_limit_without_buckets_is_inconclusive_never_a_promotion() -> None:
    figures = window_figures(Sample(0, None), Sample(30, counters(())), 0.95)
    verdict = judge(figures, P95_300MS, service="erp-acme.a.b")
    assert verdict.outcome == "inconclusive"
    assert "no request-duration buckets for erp-acme.a.b" in verdict.reason
    # The error rate still backs a canary out when the latency cannot be judged.
    failing = window_figures(Sample(0, None), Sample(30, Counters(requests=100, errors=50)), 0.95)
    assert judge(failing, P95_300MS).outcome == "failing"


@pytest.mark.parametrize(
    "values",
    [
        {"max_quantile_latency": 0.0},
        {"max_quantile_latency": -1.0},
        {"max_quantile_latency": math.nan},
        {"max_quantile_latency": math.inf},
        {"latency_quantile": 1.0},
        {"latency_quantile": 0.1},
        {"latency_quantile": math.nan},
        {"max_latency": math.nan},
        {"max_error_rate": math.nan},
    ],
)
def test_thresholds_refuse_nonsense_limits(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        Thresholds(**values)  # type: ignore[arg-type]


DEFAULTS = CanaryPolicyResolved(Thresholds(0.05, 1.0, 20), (), enabled=True)


def row(tenant: str | None = None, **values: object) -> CanaryPolicyRow:
    fields: dict[str, object] = {"max_error_rate": None, "max_latency_ms": None, "min_requests": None, "steps": None}
    fields.update(values)
    return CanaryPolicyRow(service="a", tenant=tenant, enabled=True, **fields)


def test_the_quantile_columns_inherit_like_the_others_and_empty_keeps_the_mean_alone() -> None:
    rows = [row(None, max_quantile_latency_ms=400), row("acme", latency_quantile=0.95)]
    acme = resolve_policy(rows, "acme", "a", DEFAULTS).thresholds
    assert (acme.max_quantile_latency, acme.latency_quantile) == (0.4, 0.95)
    other = resolve_policy(rows, "globex", "a", DEFAULTS).thresholds
    assert (other.max_quantile_latency, other.latency_quantile) == (0.4, 0.99)  # the default quantile: p99
    assert resolve_policy([row("acme", max_error_rate=0.02)], "acme", "a", DEFAULTS).thresholds == Thresholds(
        0.02, 1.0, 20
    )
    assert resolve_policy([], "acme", "a", DEFAULTS).thresholds.max_quantile_latency is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_quantile_latency_ms", -5),
        ("max_quantile_latency_ms", 0),
        ("max_quantile_latency_ms", 10**12),
        ("max_quantile_latency_ms", math.nan),
        ("max_quantile_latency_ms", "300"),
        ("latency_quantile", 95),
        ("latency_quantile", -0.5),
        ("latency_quantile", math.nan),
        ("latency_quantile", math.inf),
        ("latency_quantile", True),
        ("latency_quantile", "0.95" + "9" * 400),
    ],
)
def test_a_hostile_quantile_column_is_refused_naming_the_tenant_the_field_and_a_short_value(
    field: str, value: object
) -> None:
    with pytest.raises(CanaryPolicyError) as caught:
        resolve_policy([row("acme", **{field: value})], "acme", "a", DEFAULTS)
    message = str(caught.value)
    assert "canary_policies service='a' tenant='acme'" in message and f"{field} = " in message
    assert "must be a number from" in message and len(message) < 400
    # Local to that tenant: another tenant of the same service is analysed as usual.
    assert resolve_policy([row("acme", **{field: value})], "globex", "a", DEFAULTS) == DEFAULTS


SCRAPE = """\
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="erp-acme.a.b@file"} 95
traefik_service_requests_total{code="500",method="GET",protocol="http",service="erp-acme.a.b@file"} 5
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="erp-acme.a.b@file",le="0.1"} 85
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="erp-acme.a.b@file",le="0.3"} 85
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="erp-acme.a.b@file",le="1.2"} 95
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="erp-acme.a.b@file",le="5"} 95
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="erp-acme.a.b@file",le="+Inf"} 95
traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="erp-acme.a.b@file"} 5
traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="http",service="erp-acme.a.b@file"} 95
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="erp-acme.a.b@file",le="0.1"} 5
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="erp-acme.a.b@file",le="0.3"} 5
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="erp-acme.a.b@file",le="1.2"} 5
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="erp-acme.a.b@file",le="5"} 5
traefik_service_request_duration_seconds_bucket{code="500",method="GET",protocol="http",service="erp-acme.a.b@file",le="+Inf"} 5
traefik_service_request_duration_seconds_sum{code="500",method="GET",protocol="http",service="erp-acme.a.b@file"} 0
traefik_service_request_duration_seconds_count{code="500",method="GET",protocol="http",service="erp-acme.a.b@file"} 5
"""  # noqa: E501


def test_buckets_are_read_from_traefik_and_summed_over_status_codes() -> None:
    counted = parse_counters(SCRAPE)["erp-acme.a.b"]
    assert counted.buckets == TAIL
    assert (counted.requests, counted.errors, counted.duration_count) == (100, 5, 100)


def test_the_quantile_figure_round_trips_through_the_state_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'canaries.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    canary = Canary("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2", "backed-out", 0, 0, "slow")
    figures = WindowFigures(100, 0, 30.0, 0.05, quantile=0.95, quantile_latency=0.75)
    write_canary(engine, canary, figures)
    [record] = read_canaries(engine)
    assert record.figures == figures
    assert record.figures is not None and "p95 latency 750 ms" in record.figures.describe()
