"""The check runner: sends a tenant's checks, judges, records, counts, keeps the condition, alerts once.

Called by the executor's check step (``passes.check_step``) after a pass routed new containers of a service
(trigger ``rollout``, ``upgrade``, or ``rollback`` once a failed upgrade went back), by the scheduled job
(``checks.schedule``, trigger ``schedule``) and by ``reconciler checks --run`` (``manual``). Every run is one
``tenant_checks`` row per check. The latest verdict of each (tenant, service, check) is kept in memory, read from
the table when the runner first needs it, so a restarted process neither forgets a failing check nor alerts for it
again: a check alerts once when it starts failing (through the operations' alert relay) and logs when it recovers.
A failure handed to the upgrade gate (which rolls the upgrade back and sends its own alert) does not alert here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine

from desired_state.check_results import latest_results, prune_results, record_results
from desired_state.model import Condition
from desired_state.specs import ServiceSpec, TenantSpec
from reconciler.core.checks import Check, CheckResult, Response, evaluate, newly_failing, summary
from reconciler.core.upgrades import Upgrade
from reconciler.runtime.checks.probe import send
from reconciler.runtime.operations.common import Alert, log_alert

log = logging.getLogger("reconciler.checks")

Send = Callable[[str, str, Check], Response]
Key = tuple[str, str]  # (service, check)

# Rows kept per check, and the age past which rows go (each check's latest row always stays): a week of
# checks every five minutes is ~2000 rows per check, so the count is the bound that usually applies.
DEFAULT_KEEP = 200
DEFAULT_MAX_AGE = timedelta(days=14)


class CheckMetrics:
    """Check runs, their latency and the checks failing now, on the runtime's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "reconciler_checks",
            "Check runs by trigger and outcome (passed, failed).",
            ["trigger", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "reconciler_check_latency_seconds",
            "Time from a check's request to its judged answer (or to giving up).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.failing = Gauge(
            "reconciler_checks_failing", "Checks of the tenant whose latest run failed.", ["tenant"], registry=registry
        )
        self.rollbacks = Counter(
            "reconciler_check_rollbacks", "Upgrades rolled back because a check failed after them.", registry=registry
        )


@dataclass
class CheckRunner:
    engine: Engine
    # Traefik's web entrypoint as clients reach it (``RECONCILER_CHECK_URL``), e.g. http://127.0.0.1:80.
    base_url: str
    # Whether a failing check after an upgrade rolls it back, where the catalog entry does not say (setting).
    rollback: bool = True
    alert: Alert = log_alert
    metrics: CheckMetrics | None = None
    keep: int = DEFAULT_KEEP
    max_age: timedelta = DEFAULT_MAX_AGE
    send: Send = send
    _latest: dict[str, dict[Key, CheckResult]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- running ---------------------------------------------------------------------------------------------

    def rolls_back(self, service: ServiceSpec) -> bool:
        return self.rollback if service.checks_rollback is None else service.checks_rollback

    def run(
        self, spec: TenantSpec, images: Mapping[str, str], trigger: Mapping[str, str]
    ) -> dict[str, list[CheckResult]]:
        """Run the checks of each service in ``images`` (service → image serving it), record and count them."""
        # The verdicts before this run are read first (once per process): ``settle`` compares with them.
        self._known()
        results: dict[str, list[CheckResult]] = {}
        for name, image in sorted(images.items()):
            service = spec.service(name)
            if service is None or service.route is None or not service.checks:
                continue
            results[name] = [
                self._one(spec.name, service, check, image, trigger.get(name, "rollout")) for check in service.checks
            ]
        flat = [r for found in results.values() for r in found]
        record_results(self.engine, flat, datetime.now(UTC))
        if self.metrics is not None:
            for result in flat:
                self.metrics.runs.labels(trigger=result.trigger, outcome=result.outcome).inc()
                self.metrics.latency.observe(result.latency)
        return results

    def _one(self, tenant: str, service: ServiceSpec, check: Check, image: str, trigger: str) -> CheckResult:
        assert service.route is not None
        response = self.send(self.base_url, service.route.host, check)
        outcome, detail = evaluate(check, response)
        result = CheckResult(tenant, service.name, check.name, image, outcome, response.latency, detail, trigger)
        # Quiet while checks pass (a scheduled run every few minutes); a failure is worth a line each time.
        level = logging.DEBUG if outcome == "passed" else logging.WARNING
        log.log(
            level, "tenant=%s check %s", tenant, result.describe(), extra={"tenant": tenant, "service": service.name}
        )
        return result

    # --- verdicts --------------------------------------------------------------------------------------------

    def _known(self) -> dict[str, dict[Key, CheckResult]]:
        with self._lock:
            if self._latest is None:
                latest: dict[str, dict[Key, CheckResult]] = {}
                for stored in latest_results(self.engine):
                    r = stored.result
                    latest.setdefault(r.tenant, {})[(r.service, r.check)] = r
                self._latest = latest
            return self._latest

    def settle(self, tenant: str, results: Mapping[str, Iterable[CheckResult]], handed: Iterable[str] = ()) -> bool:
        """Take in a run's results: alert once for each check that started failing (except in the services in
        ``handed``, whose failure the upgrade gate reports), log recoveries. Whether the tenant's verdict changed."""
        flat = [r for found in results.values() for r in found]
        known = self._known()
        with self._lock:
            before = dict(known.get(tenant, {}))
            known.setdefault(tenant, {}).update({(r.service, r.check): r for r in flat})
            after = dict(known[tenant])
        was_failing = [key for key, r in before.items() if r.failed]
        skip = set(handed)
        fresh = [r for r in newly_failing(was_failing, flat) if r.service not in skip]
        for result in fresh:
            self.alert(tenant, f"check {result.describe()}")
        for key, result in before.items():
            now = after.get(key)
            if result.failed and now is not None and not now.failed:
                log.info("tenant=%s check %s/%s passes again on %s", tenant, key[0], key[1], now.image)
        if self.metrics is not None:
            self.metrics.failing.labels(tenant=tenant).set(sum(1 for r in after.values() if r.failed))
        return {k: r.failed for k, r in before.items()} != {k: r.failed for k, r in after.items()}

    def latest(self, tenant: str, spec: TenantSpec | None = None) -> list[CheckResult]:
        """The latest result of each check of the tenant (only the checks ``spec`` still declares, when given)."""
        found = self._known().get(tenant, {})
        if spec is not None:
            declared = {(s.name, c.name) for s in spec.services for c in s.checks}
            found = {k: r for k, r in found.items() if k in declared}
        return [found[k] for k in sorted(found)]

    def condition(self, tenant: str, spec: TenantSpec) -> Condition | None:
        """``ChecksPassing`` from the latest result of each declared check; None while none has run."""
        results = self.latest(tenant, spec)
        if not results:
            return None
        if any(r.failed for r in results):
            return Condition("ChecksPassing", "False", "CheckFailed", summary(results))
        return Condition("ChecksPassing", "True", "AllChecksPassed", summary(results))

    def rolled_back(self, upgrade: Upgrade) -> None:
        """A failing check took ``upgrade`` back (the gate pinned the service and alerted): counted."""
        log.warning("tenant=%s upgrade %s rolled back: a check failed", upgrade.tenant, upgrade.describe())
        if self.metrics is not None:
            self.metrics.rollbacks.inc()

    def prune(self) -> int:
        gone = prune_results(self.engine, self.keep, datetime.now(UTC) - self.max_age)
        if gone:
            log.info("pruned %d check results (keeping %d per check, %s at most)", gone, self.keep, self.max_age)
        return gone
