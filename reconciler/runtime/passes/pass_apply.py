"""The applying half of a pass: every tenant's share of the plan carried out, then DNS, then the statuses written.

Stages apply → status of the pipeline, for ``passes.reconcile.Reconciler`` (``run_pass`` and ``sweep`` call
``_apply`` with the pass's inputs). DNS removals go first (``passes.dns_step``); the tenants run side by side on up
to ``apply_workers`` threads (``passes.parallel``), each through the executor (``passes.executor``), and are
recorded in tenant order; DNS publications follow for tenants whose route is ready. One tenant's failure, of any
kind, is recorded in its status (``passes.status``) and never stops the others; a new spec rolled out (or
failing to) is one row of deploy history (the operations hook).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from desired_state.model import TenantStatus
from desired_state.specs import TenantSpec
from desired_state.status import read_statuses, write_statuses
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Change
from reconciler.core.sites import SITE_KEY
from reconciler.runtime.passes.dns_step import DnsStep
from reconciler.runtime.passes.executor import Interrupted, TenantOutcome
from reconciler.runtime.passes.parallel import run_all
from reconciler.runtime.passes.pass_setup import PassSetup
from reconciler.runtime.passes.pass_values import PassInputs, PassResult
from reconciler.runtime.passes.status import StatusBuilder, spec_digest

log = logging.getLogger("reconciler")


class PassApply(PassSetup):
    """``_apply``: a pass's plan carried out for the tenants in scope, and their statuses written."""

    def _present(self, inputs: PassInputs) -> set[str]:
        observed = inputs.observed
        present = set(inputs.snapshot.tenants())
        if observed is not None:
            present |= {t for t, f in (observed.routes or {}).items() if f.owner == self.naming.owner}
            for zone in (observed.zones or {}).values():
                present |= {r.owner.tenant for r in zone.rrsets if r.owner and r.owner.owner == self.naming.owner}
        return {t for t in present if not t.startswith(SITE_KEY)}  # a site's records are not a tenant's

    def _tenants_in_pass(self, inputs: PassInputs, scope: frozenset[str] | None) -> list[str]:
        names = {t for t in inputs.plan.tenants() if not t.startswith(SITE_KEY)}
        names |= set(inputs.desired.known) | self._present(inputs)
        if scope is not None:
            names &= scope
        return sorted(names)

    def _apply(self, inputs: PassInputs, scope: frozenset[str] | None) -> PassResult:
        result = PassResult(plan=inputs.plan)
        desired, plan = inputs.desired, inputs.plan
        tenants = self._tenants_in_pass(inputs, scope)
        previous = {s.tenant: s for s in read_statuses(self.engine)}
        if self.router is not None:
            try:
                self.router.begin_pass(inputs.observed.routes or {} if inputs.observed else {})
            except ReconcileError as exc:
                log.warning("routing state not readable: %s", exc)
        dns = DnsStep(self.dns, plan, inputs.dns_failure, self.stop)
        dns.remove_first()

        finished: list[tuple[str, TenantOutcome | None, ReconcileError | str | None]] = []
        statuses: list[TenantStatus] = []
        builder = StatusBuilder(self.router, self.dns, self.extra_conditions, inputs.canaries, self.checks)
        # Tenants side by side (at most ``apply_workers``); what each did is taken in tenant order below.
        applying = [t for t in tenants if t not in desired.errors and t not in inputs.held and t not in inputs.failed]
        steps = [partial(self._apply_one, t, inputs, dns.hold(t, desired.tenants.get(t))) for t in applying]
        results = dict(zip(applying, run_all(steps, self.stop, limit=self.apply_workers), strict=True))
        for tenant in tenants:
            spec = desired.tenants.get(tenant)
            if tenant in desired.errors:
                statuses.append(builder.invalid(tenant, desired, previous.get(tenant)))
                continue
            if tenant in inputs.held:
                log.info("tenant=%s left alone: %s", tenant, inputs.held[tenant], extra={"tenant": tenant})
                continue
            if tenant in inputs.failed:
                result.errors[tenant] = inputs.failed[tenant]
                log.error("tenant=%s %s", tenant, inputs.failed[tenant], extra={"tenant": tenant})
                finished.append((tenant, None, inputs.failed[tenant]))
                continue
            step = results[tenant]
            if isinstance(step.error, Interrupted):
                log.info("stopping: pass interrupted in tenant %s", tenant)
                continue
            if step.error is not None:
                finished.append((tenant, None, self._failed(result, tenant, spec, previous.get(tenant), step.error)))
                continue
            outcome = step.value
            if outcome is None:
                continue  # not started: the pass was told to stop first
            self.removals.record(outcome.applied)
            result.outcomes[tenant] = outcome
            before = previous.get(tenant)
            if spec is not None and before is not None and before.applied_hash == spec_digest(spec):
                result.heals.extend(outcome.applied)
            else:
                self._record_deploy(tenant, spec, before, outcome.applied, None)
            finished.append((tenant, outcome, None))

        if not self.stop.is_set():
            # Records of tenants whose route is ready (or, without routing, that run a container) go out now.
            dns.publish_ready(self._route_ready(inputs, result))
        self.removals.record(dns.applied_removals())
        result.dns_applied = [c for outcome in dns.outcomes for c in outcome.applied]
        running = [t for t in tenants if (s := desired.tenants.get(t)) is not None and s.state == "running"]
        sites = [f"{SITE_KEY}{name}" for name in inputs.sites.hosts] if inputs.sites is not None else []
        dns.settle([*running, *sites])
        for tenant, done, failure in finished:
            spec = desired.tenants.get(tenant)
            rendered = inputs.rendered.get(tenant)
            statuses.append(builder.tenant(tenant, spec, desired, plan, rendered, done, failure, previous.get(tenant)))
        written = write_statuses(self.engine, statuses)
        if self.on_status is not None:
            for status in written:
                self.on_status(previous.get(status.tenant), status)
        for message in plan.errors:
            log.error("%s", message)
        return result

    def _failed(
        self,
        result: PassResult,
        tenant: str,
        spec: TenantSpec | None,
        before: TenantStatus | None,
        raised: BaseException,
    ) -> ReconcileError:
        """Any failure of one tenant is that tenant's, never the pass's: recorded, logged, counted."""
        error = raised if isinstance(raised, ReconcileError) else ReconcileError(_unexpected(tenant, raised))
        if not isinstance(raised, ReconcileError):
            log.error("tenant=%s unexpected failure", tenant, exc_info=raised, extra={"tenant": tenant})
        result.errors[tenant] = str(error)
        result.failures[tenant] = error
        log.error("tenant=%s reconcile failed: %s", tenant, error, extra={"tenant": tenant})
        if self.metrics:
            self.metrics.tenant_errors.labels(tenant=tenant).inc()
        self._record_deploy(tenant, spec, before, [], str(error))
        return error

    def _apply_one(self, tenant: str, inputs: PassInputs, hold_removal: str | None) -> TenantOutcome | None:
        """One tenant's share of the plan, on a worker of the pass; None: the pass stopped before it began."""
        if self.stop.is_set():
            return None
        # The canary analysis's weights, when it imposes some, are what the route is published with.
        spec = inputs.routed.get(tenant) or inputs.desired.tenants.get(tenant)
        snapshot = inputs.snapshot.for_tenant(tenant)
        return self.executor.apply_tenant(tenant, inputs.plan, spec, snapshot, hold_removal=hold_removal)

    def _route_ready(self, inputs: PassInputs, result: PassResult) -> Callable[[str], bool]:
        def ready(tenant: str) -> bool:
            if tenant.startswith(SITE_KEY):  # a site's records wait until Nginx has loaded its file
                return inputs.sites is not None and tenant.removeprefix(SITE_KEY) in inputs.sites.loaded
            if self.router is not None:
                return self.router.ready(tenant).status == "True"
            if tenant in result.errors:
                return False
            started = any(c.kind == "container" for c in result.outcomes.get(tenant, TenantOutcome(tenant)).applied)
            return started or any(c.running for c in inputs.snapshot.for_tenant(tenant).containers)

        return ready

    def _record_deploy(
        self,
        tenant: str,
        spec: TenantSpec | None,
        before: TenantStatus | None,
        applied: list[Change],
        error: str | None,
    ) -> None:
        """A new spec rolled out (or failing to): one history row per spec digest, kept by the operations hook."""
        if self.operations is None or spec is None or (error is None and not applied):
            return
        if before is not None and before.applied_hash == spec_digest(spec):
            return
        self.operations.deployed(tenant, spec_digest(spec), applied, error)


def _unexpected(tenant: str, exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return f"tenant {tenant!r}: unexpected error: {text[:300]}"
