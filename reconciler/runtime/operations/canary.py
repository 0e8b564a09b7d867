"""The canary analysis job of ``reconciler run``: once per window, judge every canary and act on the verdict.

Registered by ``runtime.wiring`` on the scheduler (``RECONCILER_CANARY_WINDOW`` seconds; runs only while this
instance leads). For each running tenant service with two versions it reads the canary version's Traefik service
(``drivers.traefik_metrics``), takes the window's figures since the last reading (``core.canary``; the duration at
a quantile from the histogram's buckets when the policy limits one, ``core.canary_latency``), judges them
against the thresholds (``canary_policies`` over the settings' defaults), runs the service's checks against the
canary version alone (``operations.canary_checks``, when ``RECONCILER_CHECK_URL`` is set: a failing one backs the
canary out, ``core.canary_checks``) and moves the canary's state
(``core.canary_steps``), stored in ``tenant_canaries``. The weights a canary imposes reach Traefik through an
ordinary pass of that tenant (the route is planned from them, ``planning.canary``; the routing stage waits until
Traefik's API confirms), run at once from here. A back-out then pins the canary's image like a failed upgrade
(``tenant_pins``), writes one history row and sends one alert; each promotion step writes one history row
(``operations``, kind ``canary``). The previous readings live in memory: after a restart the first window only
takes a reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.engine import Engine

from desired_state.canaries import (
    CanaryPolicyError,
    CanaryPolicyResolved,
    CanaryRecord,
    read_canaries,
    read_policies,
    resolve_policy,
    write_canary,
)
from desired_state.load import load_desired_state
from desired_state.operations import record_operation
from desired_state.pins import write_pin
from desired_state.specs import ServiceSpec, TenantSpec
from reconciler.core.canary import Counters, Sample, WindowFigures, judge, window_figures
from reconciler.core.canary_checks import with_checks
from reconciler.core.canary_steps import Canary, Event, advance, begin
from reconciler.core.errors import ReconcileError
from reconciler.runtime.operations.canary_checks import CanaryChecker
from reconciler.runtime.operations.common import Alert
from reconciler.runtime.passes.reconcile import Reconciler
from renderers.traefik import RouteNaming

log = logging.getLogger("reconciler.canary")

# The history's trigger for what the analysis did (docs/schema.md "operations").
TRIGGER = "analysis"


class MetricsReader(Protocol):
    def read(self) -> Mapping[str, Counters]: ...


class CanaryMetrics:
    """What the analysis exports on the runtime's registry (docs/observability.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.windows = Counter(
            "reconciler_canary_windows",
            "Canary analysis windows judged, by verdict (healthy, failing, inconclusive).",
            ["outcome"],
            registry=registry,
        )
        self.weight = Gauge(
            "reconciler_canary_weight_percent",
            "The canary's share of its service's traffic after the last window (the database's, or the analysis's).",
            ["tenant", "service"],
            registry=registry,
        )
        for outcome in ("healthy", "failing", "inconclusive"):
            self.windows.labels(outcome=outcome)


@dataclass
class CanaryAnalysis:
    engine: Engine
    reader: MetricsReader
    reconciler: Reconciler
    defaults: CanaryPolicyResolved
    alert: Alert
    metrics: CanaryMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    # The service's checks against the canary version alone, each window (None: the metrics alone).
    checks: CanaryChecker | None = None
    # The last reading of each canary's Traefik service, by name: the start of the next window.
    _readings: dict[str, Sample] = field(default_factory=dict)

    def run_once(self) -> list[str]:
        """One window for every canary; returns the tenants whose canary changed state (each got a pass)."""
        try:
            counters = self.reader.read()
        except ReconcileError as exc:
            log.warning("canary analysis skipped this window: %s", exc)
            return []
        now = self.clock()
        desired = load_desired_state(self.engine, self.reconciler.base_domain, self.reconciler.input_limits)
        records = {(r.canary.tenant, r.canary.service): r for r in read_canaries(self.engine)}
        policies = read_policies(self.engine)
        acted: list[tuple[Canary, Event, WindowFigures | None]] = []
        for tenant, spec in sorted(desired.tenants.items()):
            if spec.state != "running":
                continue
            for service in spec.services:
                if len(service.versions) != 2:
                    continue
                try:
                    policy = resolve_policy(policies, tenant, service.name, self.defaults)
                except CanaryPolicyError as exc:
                    log.error("tenant=%s canary of %s not analysed: %s", tenant, service.name, exc)
                    continue
                if policy.enabled:
                    step = self._judge(spec, service, policy, counters, now, records.get((tenant, service.name)))
                    if step is not None:
                        acted.append(step)
        for tenant in sorted({canary.tenant for canary, _, _ in acted}):
            self._route(tenant)
        for canary, event, figures in acted:
            self._record(canary, event, figures)
        return sorted({canary.tenant for canary, _, _ in acted})

    def _judge(
        self,
        spec: TenantSpec,
        service: ServiceSpec,
        policy: CanaryPolicyResolved,
        counters: Mapping[str, Counters],
        now: float,
        record: CanaryRecord | None,
    ) -> tuple[Canary, Event, WindowFigures | None] | None:
        stable, second = service.versions
        name = RouteNaming(self.reconciler.naming.prefix).version(spec.name, service.name, second.track)
        reading = Sample(now, counters.get(name))
        previous = self._readings.get(name)
        self._readings[name] = reading
        if record is None or not record.canary.same_pair(stable.image, second.image):
            canary = begin(spec.name, service.name, stable.image, second.image, policy.steps)
            write_canary(self.engine, canary, None)
            log.info("tenant=%s canary %s of %s: %s", spec.name, second.image, service.name, canary.state)
            return (canary, "promoted-step", None) if canary.weight is not None else None
        if record.canary.final or previous is None:
            return None
        limits = policy.thresholds
        tail = limits.latency_quantile if limits.max_quantile_latency is not None else None
        figures = window_figures(previous, reading, tail)
        verdict = judge(figures, policy.thresholds, service=name)
        in_split = (record.canary.weight if record.canary.weight is not None else second.weight) > 0
        if self.checks is not None and in_split and verdict.outcome != "failing":
            verdict = with_checks(verdict, self.checks.run(spec.name, service, second.track, second.image))
        canary, event = advance(record.canary, verdict, policy.steps)
        write_canary(self.engine, canary, figures)
        if self.metrics is not None:
            self.metrics.windows.labels(outcome=verdict.outcome).inc()
            share = (
                canary.weight if canary.weight is not None else 100 * second.weight // (stable.weight + second.weight)
            )
            self.metrics.weight.labels(tenant=spec.name, service=service.name).set(share)
        log.info(
            "tenant=%s canary %s of %s: %s: %s", spec.name, second.image, service.name, verdict.outcome, verdict.reason
        )
        return (canary, event, figures) if event is not None else None

    def _route(self, tenant: str) -> None:
        """A pass of the tenant now: its route takes the canary's weights, confirmed through Traefik's API."""
        try:
            result = self.reconciler.run_pass([tenant], trigger="canary")
        except ReconcileError as exc:
            log.error("tenant=%s pass after a canary verdict failed: %s (the resync retries it)", tenant, exc)
            return
        if tenant in result.errors:
            log.error("tenant=%s pass after a canary verdict failed: %s", tenant, result.errors[tenant])

    def _record(self, canary: Canary, event: Event, figures: WindowFigures | None) -> None:
        fields = {
            "service": canary.service,
            "from_image": canary.stable_image,
            "to_image": canary.canary_image,
            "trigger": TRIGGER,
        }
        if event == "backed-out":
            operation = record_operation(self.engine, canary.tenant, "canary", "failed", error=canary.reason, **fields)
            write_pin(
                self.engine,
                canary.tenant,
                canary.service,
                pinned_image=canary.stable_image,
                failed_image=canary.canary_image,
                reason=f"canary backed out: {canary.reason}",
                backup_id=None,
                operation_id=operation,
            )
            self.alert(
                canary.tenant,
                f"canary {canary.canary_image} of {canary.service} backed out to weight 0 "
                f"(traffic back on {canary.stable_image}): {canary.reason}",
            )
            return
        # The window's verdict in words: its figures, and the canary's own checks when it has some.
        window = f" after a healthy window: {canary.reason}" if figures is not None else ""
        what = "promoted to 100%" if event == "promoted" else f"at {canary.weight}% (step {canary.step + 1})"
        record_operation(self.engine, canary.tenant, "canary", "succeeded", output=f"canary {what}{window}", **fields)
