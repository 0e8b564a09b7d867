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

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["healthy", "failing", "inconclusive"]


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one Traefik service at one moment.

    ``requests``: every request answered (all codes); ``errors``: those answered 5xx; ``duration_sum`` and
    ``duration_count``: the request-duration histogram's sum (seconds) and count.
    """

    requests: float = 0.0
    errors: float = 0.0
    duration_sum: float = 0.0
    duration_count: float = 0.0


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

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        """The figures as the status and the history show them."""
        text = f"error rate {self.error_rate:.1%} ({self.errors} of {self.requests} requests) over {self.seconds:.0f} s"
        if self.mean_latency is not None:
            text += f", mean latency {self.mean_latency * 1000:.0f} ms"
        return text + (" (counters reset)" if self.reset else "")


@dataclass(frozen=True)
class Thresholds:
    """When a canary fails: more than ``max_error_rate`` of its requests answered 5xx, or their mean duration over
    ``max_latency`` seconds, in a window with at least ``min_requests`` requests (fewer judge nothing)."""

    max_error_rate: float = 0.05
    max_latency: float = 1.0
    min_requests: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate = {self.max_error_rate!r}: a share between 0 and 1, such as 0.05")
        if self.max_latency <= 0:
            raise ValueError(f"max_latency = {self.max_latency!r}: seconds, more than 0, such as 0.5")
        if self.min_requests < 1:
            raise ValueError(f"min_requests = {self.min_requests!r}: at least 1")


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


def window_figures(before: Sample, after: Sample) -> WindowFigures | None:
    """The figures between two readings of one service; None when the later reading has no series."""
    if after.counters is None:
        return None
    old = before.counters or Counters()
    new = after.counters
    requests, reset_r = _increase(old.requests, new.requests)
    errors, reset_e = _increase(old.errors, new.errors)
    duration, reset_s = _increase(old.duration_sum, new.duration_sum)
    measured, reset_c = _increase(old.duration_count, new.duration_count)
    reset = reset_r or reset_e or reset_s or reset_c
    if reset:
        # After a reset the counters restarted together: take every one from zero, never mix the two.
        requests, errors, duration, measured = new.requests, new.errors, new.duration_sum, new.duration_count
    return WindowFigures(
        requests=round(requests),
        errors=min(round(errors), round(requests)),
        seconds=max(after.at - before.at, 0.0),
        mean_latency=duration / measured if measured > 0 else None,
        reset=reset,
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
    return Verdict("healthy", figures.describe(), figures)
