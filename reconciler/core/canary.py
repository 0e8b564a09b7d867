"""Canary analysis, the pure part: counters read at two moments → the window's figures → a verdict.

A *canary* is the second version of a two-version tenant service (docs/routing.md "Two versions with weights").
The runtime's analysis job (``runtime.operations.canary``) reads Traefik's cumulative per-service counters
(``drivers.traefik_metrics``) once per window for each version's Traefik service, and asks this module what the
window says about the canary; ``core.canary_steps`` turns the verdict into the canary's next state. No I/O here.

Counters are Prometheus counters: they only grow, except when Traefik restarts (or reloads a service under the
same name after it vanished), when they start again from zero. A fall is read as a reset, as Prometheus's
``increase()`` does: the new value is what happened since. A service that had no series at the first reading
(Traefik creates one with the first request) counts from zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from reconciler.core.canary_latency import Buckets, bucket_increase, quantile, quantile_name

Outcome = Literal["healthy", "failing", "inconclusive"]
# The quantile a latency limit applies to when the policy names none (p99, as Flagger's request-duration check),
# and the quantiles a policy may name (p50 to p99.9: beyond, a window's few requests say nothing).
DEFAULT_QUANTILE = 0.99
MIN_QUANTILE, MAX_QUANTILE = 0.5, 0.999


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one Traefik service at one moment.

    ``requests``: every request answered (all codes); ``errors``: those answered 5xx; ``duration_sum`` and
    ``duration_count``: the request-duration histogram's sum (seconds) and count; ``buckets``: its cumulative
    buckets (``core.canary_latency``; empty when the reader has none).
    """

    requests: float = 0.0
    errors: float = 0.0
    duration_sum: float = 0.0
    duration_count: float = 0.0
    buckets: Buckets = ()


@dataclass(frozen=True)
class Sample:
    """What one reading saw of one service: at ``at`` seconds (any clock the caller keeps), its counters, or None
    when the service had no series at all (no request yet, or Traefik's metrics are not enabled)."""

    at: float
    counters: Counters | None


@dataclass(frozen=True)
class WindowFigures:
    """What one service did within one window."""

    requests: int
    errors: int
    seconds: float
    # Mean request duration over the window (None: no request measured).
    mean_latency: float | None = None
    # Some counter fell between the two readings: Traefik restarted, so the window counts from zero.
    reset: bool = False
    # The quantile the policy limits (0.95: p95) and the window's duration at it, from the histogram's buckets
    # (None: no limit asked for it, or the histogram had no bucket to say).
    quantile: float | None = None
    quantile_latency: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        """The figures as the status and the history show them."""
        text = f"error rate {self.error_rate:.1%} ({self.errors} of {self.requests} requests) over {self.seconds:.0f} s"
        if self.mean_latency is not None:
            text += f", mean latency {self.mean_latency * 1000:.0f} ms"
        if self.quantile is not None and self.quantile_latency is not None:
            text += f", {quantile_name(self.quantile)} latency {self.quantile_latency * 1000:.0f} ms"
        return text + (" (counters reset)" if self.reset else "")


@dataclass(frozen=True)
class Thresholds:
    """When a canary fails: more than ``max_error_rate`` of its requests answered 5xx, or their mean duration over
    ``max_latency`` seconds, or (when ``max_quantile_latency`` is set) their ``latency_quantile`` duration over
    ``max_quantile_latency`` seconds, in a window with at least ``min_requests`` requests (fewer judge nothing).
    Every limit is absolute: the canary's own figures, whatever the stable version does."""

    max_error_rate: float = 0.05
    max_latency: float = 1.0
    min_requests: int = 20
    # None: no limit on a quantile (the mean alone, as before the limit existed).
    max_quantile_latency: float | None = None
    latency_quantile: float = DEFAULT_QUANTILE

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate = {self.max_error_rate!r}: a share between 0 and 1, such as 0.05")
        if not 0 < self.max_latency < math.inf:
            raise ValueError(f"max_latency = {self.max_latency!r}: seconds, more than 0, such as 0.5")
        if self.min_requests < 1:
            raise ValueError(f"min_requests = {self.min_requests!r}: at least 1")
        if self.max_quantile_latency is not None and not 0 < self.max_quantile_latency < math.inf:
            raise ValueError(f"max_quantile_latency = {self.max_quantile_latency!r}: seconds, more than 0, such as 0.3")
        if not MIN_QUANTILE <= self.latency_quantile <= MAX_QUANTILE:
            raise ValueError(
                f"latency_quantile = {self.latency_quantile!r}: from {MIN_QUANTILE} to {MAX_QUANTILE}, such as 0.95"
            )


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    figures: WindowFigures | None = None


def _increase(before: float, after: float) -> tuple[float, bool]:
    """How much a counter grew, and whether it was reset meanwhile (then it grew by its new value)."""
    if after < before:
        return after, True
    return after - before, False


def window_figures(before: Sample, after: Sample, latency_quantile: float | None = None) -> WindowFigures | None:
    """The figures between two readings of one service; None when the later reading has no series. With
    ``latency_quantile``, also the window's duration at that quantile (from the histogram's buckets)."""
    if after.counters is None:
        return None
    old = before.counters or Counters()
    new = after.counters
    requests, reset_r = _increase(old.requests, new.requests)
    errors, reset_e = _increase(old.errors, new.errors)
    duration, reset_s = _increase(old.duration_sum, new.duration_sum)
    measured, reset_c = _increase(old.duration_count, new.duration_count)
    buckets, reset_b = bucket_increase(old.buckets, new.buckets)
    reset = reset_r or reset_e or reset_s or reset_c or reset_b
    if reset:
        # After a reset the counters restarted together: take every one from zero, never mix the two.
        requests, errors, duration, measured = new.requests, new.errors, new.duration_sum, new.duration_count
        buckets = new.buckets
    return WindowFigures(
        requests=round(requests),
        errors=min(round(errors), round(requests)),
        seconds=max(after.at - before.at, 0.0),
        mean_latency=duration / measured if measured > 0 else None,
        reset=reset,
        quantile=latency_quantile,
        quantile_latency=quantile(latency_quantile, buckets) if latency_quantile is not None else None,
    )


def judge(figures: WindowFigures | None, thresholds: Thresholds, *, service: str = "canary") -> Verdict:
    """What one window says about the canary: failing (over a threshold), healthy, or inconclusive (no metrics,
    too few requests)."""
    if figures is None:
        return Verdict(
            "inconclusive",
            f"no metrics for {service} in Traefik (no request reached it yet, or Traefik's Prometheus metrics "
            "with service labels are not enabled)",
        )
    if figures.requests < thresholds.min_requests:
        why = f"too few requests to judge: {figures.requests} < {thresholds.min_requests} over {figures.seconds:.0f} s"
        return Verdict("inconclusive", why, figures)
    if figures.error_rate > thresholds.max_error_rate:
        return Verdict(
            "failing", f"{figures.describe()}: more than the {thresholds.max_error_rate:.1%} allowed", figures
        )
    if figures.mean_latency is not None and figures.mean_latency > thresholds.max_latency:
        limit = f"{thresholds.max_latency * 1000:.0f} ms"
        return Verdict("failing", f"{figures.describe()}: mean latency over the {limit} allowed", figures)
    if thresholds.max_quantile_latency is not None:
        return _judge_quantile(figures, thresholds.max_quantile_latency, thresholds.latency_quantile, service)
    return Verdict("healthy", figures.describe(), figures)


def _judge_quantile(figures: WindowFigures, limit: float, q: float, service: str) -> Verdict:
    name = quantile_name(q)
    if figures.quantile != q or figures.quantile_latency is None:
        # A limit the window cannot be held to is no reason to promote (nor to back out).
        why = (
            f"{figures.describe()}; no request-duration buckets for {service} in Traefik's metrics: "
            f"the {name} limit cannot be judged"
        )
        return Verdict("inconclusive", why, figures)
    if figures.quantile_latency > limit:
        return Verdict(
            "failing", f"{figures.describe()}: {name} latency over the {limit * 1000:.0f} ms allowed", figures
        )
    return Verdict("healthy", figures.describe(), figures)
