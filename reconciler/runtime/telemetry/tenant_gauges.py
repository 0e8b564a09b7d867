"""Per-tenant status as gauges, for alert rules: phase, conditions, time of the last reconcile.

Read from the ``tenant_statuses`` rows the passes write (the same truth the web UI shows), every
``STATUS_REFRESH`` seconds on a thread of its own, so a scrape never waits for the database and the reconcile
path is untouched. Every phase and condition status is exported with 0 or 1 (the kube-state-metrics shape),
so an alert's ``for:`` keeps counting while a tenant moves between two bad phases. Started by
``runtime.service.observers``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import get_args

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from desired_state.model import ConditionStatus, Phase, TenantStatus
from desired_state.status import read_statuses

log = logging.getLogger("reconciler.metrics")

# Alert rules wait minutes before firing; a one-row-per-tenant SELECT every 10 s costs nothing next to that.
STATUS_REFRESH = 10.0
PHASES: tuple[str, ...] = get_args(Phase)
CONDITION_STATUSES: tuple[str, ...] = get_args(ConditionStatus)


class TenantStatusMetrics(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._statuses: list[TenantStatus] = []

    def refresh(self) -> None:
        statuses = read_statuses(self.engine)
        with self._lock:
            self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            statuses = self._statuses
        phase = GaugeMetricFamily(
            "reconciler_tenant_phase", "1 for the tenant's current phase, 0 for the others.", labels=["tenant", "phase"]
        )
        condition = GaugeMetricFamily(
            "reconciler_tenant_condition",
            "1 for the current status (True, False, Unknown) of each condition of the tenant.",
            labels=["tenant", "condition", "status"],
        )
        reconciled = GaugeMetricFamily(
            "reconciler_tenant_last_reconcile_timestamp_seconds",
            "Unix time the tenant's status was last written by a pass.",
            labels=["tenant"],
        )
        for status in statuses:
            for name in PHASES:
                phase.add_metric([status.tenant, name], 1.0 if status.phase == name else 0.0)
            for c in status.conditions:
                for value in CONDITION_STATUSES:
                    condition.add_metric([status.tenant, c.type, value], 1.0 if c.status == value else 0.0)
            if status.last_reconciled_at is not None:
                reconciled.add_metric([status.tenant], status.last_reconciled_at.timestamp())
        yield from (phase, condition, reconciled)

    def run(self, stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                self.refresh()
                failing = False
            except Exception as exc:  # the database may be down for a while; the gauges keep their last values
                if not failing:
                    log.warning("tenant status gauges not refreshed: %s", exc)
                failing = True
            if stop.wait(STATUS_REFRESH):
                return

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="status-gauges", daemon=True)
        thread.start()
        return thread
