"""Latency at a quantile (p95, p99) from a request-duration histogram's buckets: the canary analysis's latency limit.

Pure. Traefik exports ``traefik_service_request_duration_seconds`` as a Prometheus histogram: cumulative counters
per upper bound ``le`` (default bounds 0.1, 0.3, 1.2, 5 s, then ``+Inf``). ``drivers.traefik_metrics`` sums them
by bound into ``core.canary.Counters.buckets``; ``core.canary.window_figures`` takes the window's increase with
``bucket_increase`` and the quantile a policy asks for with ``quantile``; ``core.canary.judge`` compares it to the
policy's absolute limit (``canary_policies.max_quantile_latency_ms``).

``quantile`` estimates the way PromQL's ``histogram_quantile`` does for a classic histogram, so the figure in the
status is the one an operator's dashboard shows: the bucket holding the rank ``q * count`` is found and the value
interpolated linearly between its lower and upper bound (the first bucket starts at 0); a rank in the ``+Inf``
bucket answers the highest finite bound (the histogram cannot say more); counts that fall between bounds (samples
of one scrape taken at slightly different moments) are raised to keep the series cumulative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# (upper bound in seconds, cumulative count), sorted by bound; a complete histogram ends with +Inf.
Buckets = tuple[tuple[float, float], ...]


def merge_buckets(pairs: Iterable[tuple[float, float]]) -> Buckets:
    """Buckets summed by bound (several series of one service: status codes, methods, Traefik instances)."""
    totals: dict[float, float] = {}
    for bound, count in pairs:
        totals[bound] = totals.get(bound, 0.0) + count
    return tuple(sorted(totals.items()))


def bucket_increase(before: Buckets, after: Buckets) -> tuple[Buckets, bool]:
    """What each bucket counted between two readings, and whether a counter fell (Traefik restarted: then the
    window is the later reading, from zero). A bound absent before counts from zero."""
    old = dict(before)
    if any(count < old.get(bound, 0.0) for bound, count in after):
        return after, True
    return tuple((bound, count - old.get(bound, 0.0)) for bound, count in after), False


def quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile (0..1) of the durations in ``buckets``, in seconds; None when the histogram cannot say
    (no ``+Inf`` bucket, fewer than two buckets, no observation)."""
    if not 0 <= q <= 1 or math.isnan(q):
        raise ValueError(f"quantile = {q!r}: a share between 0 and 1, such as 0.95")
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    bounds = [bound for bound, _ in buckets]
    counts: list[float] = []
    for _, count in buckets:
        counts.append(max(count, counts[-1]) if counts else max(count, 0.0))
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if math.isinf(bounds[index]):
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    lower = bounds[index - 1] if index > 0 else 0.0
    below = counts[index - 1] if index > 0 else 0.0
    inside = counts[index] - below
    if inside <= 0:
        return lower
    return lower + (bounds[index] - lower) * (rank - below) / inside


def quantile_name(q: float) -> str:
    """``0.95`` → ``p95``, ``0.999`` → ``p99.9``: how the status and the docs name a quantile."""
    return f"p{q * 100:.10g}"
