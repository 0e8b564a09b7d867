"""A pass's figures into the Prometheus metrics: drift and heals by kind, refusals by policy, the outcome, the
duration, Docker calls by kind, and (after a full pass) tenants by phase."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from desired_state.status import read_statuses
from reconciler.core.plan import Plan
from reconciler.runtime.telemetry.metrics import PHASES, Metrics

if TYPE_CHECKING:
    from reconciler.runtime.passes.reconcile import PassResult


def record_pass(
    m: Metrics,
    engine: Engine,
    calls: Mapping[str, int],
    plan: Plan,
    result: PassResult,
    scope: frozenset[str] | None,
    calls_before: Mapping[str, int],
) -> None:
    for change in plan.changes:
        m.drift.labels(kind=change.kind).inc()
    for change in result.heals:
        m.heals.labels(kind=change.kind).inc()
    for refusal in plan.refused:
        m.refused.labels(policy=refusal.policy).inc()
    outcome = "refused" if plan.errors else ("error" if result.errors else "ok")
    m.passes.labels(result=outcome).inc()
    m.pass_duration.labels(scope="all" if scope is None else "tenant").observe(result.duration)
    if outcome == "ok":
        m.last_success.set(time.time())
    for kind, count in calls.items():
        delta = count - calls_before.get(kind, 0)
        if delta:
            m.docker_calls.labels(kind=kind).inc(delta)
    if scope is None:
        phases: dict[str, int] = {}
        for status in read_statuses(engine):
            phases[status.phase] = phases.get(status.phase, 0) + 1
        for phase in {*PHASES, *phases}:
            m.tenants.labels(phase=phase).set(phases.get(phase, 0))
