"""One reconcile pass: load → render → observe → diff → policies → apply → status.

Level-based: whatever triggered it (resync, Docker event, nudge, CLI), a pass re-reads the desired state and
the world. ``scope`` limits it to some tenants (an event or nudge for one tenant); ``None`` is a full pass, the
only kind that removes tenants the database no longer knows. One tenant's failure is recorded in its status
and never stops the others. Called by the loop (``runtime.service.loop``) and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from desired_state.load import load_desired_state
from desired_state.model import Condition, DesiredState, Phase, TenantStatus
from desired_state.specs import TenantSpec
from desired_state.status import read_statuses, write_statuses
from reconciler.core.diff import SubnetPool, diff
from reconciler.core.errors import PermanentError, ReconcileError
from reconciler.core.plan import Change, Plan
from reconciler.core.policies import MassDeleteLimits, mass_delete_guard, ownership, pinned
from reconciler.core.resources import ContainerDefaults, DesiredTenant, HealthCheck, Snapshot
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.passes.executor import Executor, Interrupted, TenantOutcome
from reconciler.runtime.passes.locks import PassLocks
from reconciler.runtime.passes.stages import DnsPublisher, Router, TenantOperations
from reconciler.runtime.telemetry.metrics import PHASES, Metrics
from renderers.containers import Naming, render_tenant

log = logging.getLogger("reconciler")


@dataclass(frozen=True)
class PassInputs:
    desired: DesiredState
    snapshot: Snapshot
    rendered: dict[str, DesiredTenant]
    plan: Plan
    # Tenants the pass acts on: the requested scope minus tenants the database no longer has (None: all).
    scope: frozenset[str] | None = None
    # Tenants left alone by this pass because an operation (a restore) is working on them, with why.
    held: dict[str, str] = field(default_factory=dict)


@dataclass
class PassResult:
    plan: Plan
    outcomes: dict[str, TenantOutcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # The error behind each entry of ``errors``: the loop retries transient ones and parks permanent ones.
    failures: dict[str, ReconcileError] = field(default_factory=dict)
    # Changes that restored a spec already applied and unchanged since: the world drifted, we healed it.
    heals: list[Change] = field(default_factory=list)
    duration: float = 0.0
    # After a sweep: every tenant it saw (database, engine, routes) except those it removed itself.
    tenants: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.plan.errors

    @property
    def failed_tenants(self) -> list[str]:
        return sorted(self.errors)


def spec_digest(spec: TenantSpec) -> str:
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Reconciler:
    engine: Engine
    docker: DockerDriver
    naming: Naming
    pool: SubnetPool = field(default_factory=SubnetPool)
    limits: MassDeleteLimits = field(default_factory=MassDeleteLimits)
    router: Router | None = None
    dns: DnsPublisher | None = None
    metrics: Metrics | None = None
    ready_timeout: float = 60.0
    stop: threading.Event = field(default_factory=threading.Event)
    # Docker health check given to every container (None: none); see ``renderers.containers``.
    healthcheck: HealthCheck | None = None
    # Pids limit, log rotation, no-new-privileges for every container (None: none); see ``renderers.containers``.
    container_defaults: ContainerDefaults | None = None
    # Runtime hooks (``runtime.service.loop``): extra plan policies (crash-loop backoff), extra status conditions
    # (Degraded) and a callback after each status write (alerts on transitions).
    policies: tuple[Callable[[Plan], Plan], ...] = ()
    extra_conditions: Callable[[str, DesiredTenant | None, TenantStatus | None], list[Condition]] | None = None
    on_status: Callable[[TenantStatus | None, TenantStatus], None] | None = None
    # Tenant operations (``runtime.operations.upgrades``): backup and migration before upgrades, pins, holds, history.
    operations: TenantOperations | None = None
    # Route hosts must lie under it when set (``Settings.base_domain``); checked per tenant by the loader.
    base_domain: str | None = None

    def __post_init__(self) -> None:
        self.executor = Executor(
            docker=self.docker,
            naming=self.naming,
            router=self.router,
            pool=self.pool,
            ready_timeout=self.ready_timeout,
            stop=self.stop,
            on_applied=self._count_action,
            upgrades=self.operations,
        )
        # A tenant is never reconciled by two passes at once; passes of different tenants run side by side.
        self.locks = PassLocks()

    # --- planning (no effects) -------------------------------------------------------------------------

    def compute(self, scope: Iterable[str] | None = None, *, allow_mass_delete: bool = False) -> PassInputs:
        desired = load_desired_state(self.engine, self.base_domain)
        requested = frozenset(scope) if scope is not None else None
        # One tenant: observe only its objects (same 3 list calls, smaller answers).
        only = next(iter(requested)) if requested is not None and len(requested) == 1 else None
        # Containers marked for inspection (events, the round-robin) are inspected for the tenants in scope only.
        snapshot = self.docker.observe(tenant=only, scope=requested)
        # Removing tenants the database no longer has is left to full passes and the sweep: only they see every
        # owned container, which the mass-delete guard needs to judge a table that reads empty by mistake.
        effective = requested & desired.known if requested is not None else None
        rendered = {
            name: render_tenant(spec, self.naming, healthcheck=self.healthcheck, defaults=self.container_defaults)
            for name, spec in desired.tenants.items()
        }
        held = dict(self.operations.holds()) if self.operations is not None else {}
        protected = desired.errors.keys() | held.keys()
        plan = diff(rendered, snapshot, scope=effective, protected=protected, pool=self.pool)
        plan = ownership(plan, self.naming.owner)
        if self.operations is not None:
            plan = pinned(plan, self.operations.pins(desired))
        for policy in self.policies:
            plan = policy(plan)
        vanished = snapshot.tenants() - desired.known
        plan = mass_delete_guard(
            plan, len(snapshot.containers), self.limits, vanished=vanished, allow=allow_mass_delete
        )
        return PassInputs(desired, snapshot, rendered, plan, effective, held)

    # --- one pass ----------------------------------------------------------------------------------------

    def run_pass(
        self, scope: Iterable[str] | None = None, *, allow_mass_delete: bool = False, trigger: str = "resync"
    ) -> PassResult:
        scope_set = frozenset(scope) if scope is not None else None
        with self.locks.hold(scope_set):
            started = time.monotonic()
            if self.metrics:
                self.metrics.reconciles.labels(trigger=trigger).inc()
            calls_before = dict(self.docker.calls)
            inputs = self.compute(scope_set, allow_mass_delete=allow_mass_delete)
            result = self._apply(inputs, inputs.scope)
            result.duration = time.monotonic() - started
            self._record_metrics(inputs, result, scope_set, calls_before)
            return result

    def sweep(self, *, allow_mass_delete: bool = False, trigger: str = "resync") -> PassResult:
        """The pass-wide share of a resync, next to per-tenant passes (``runtime.service.loop`` runs it).

        Observes the whole world, removes tenants the database no longer has (under the mass-delete guard,
        which sees every owned container), deletes our DNS records of tenants the database does not know, and
        refreshes the per-phase gauges. Tenants in the database are left to their own scoped passes: the result
        lists them (and every other tenant seen) in ``tenants`` for the caller to queue.
        """
        started = time.monotonic()
        if self.metrics:
            self.metrics.reconciles.labels(trigger=trigger).inc()
        calls_before = dict(self.docker.calls)
        inputs = self.compute(None, allow_mass_delete=allow_mass_delete)
        routed = self.router.owned_tenants() if self.router is not None else frozenset()
        present = inputs.snapshot.tenants() | routed
        vanished = frozenset(present - inputs.desired.known)
        plan = inputs.plan
        own = replace(
            inputs,
            plan=Plan(
                changes=tuple(c for c in plan.changes if c.tenant in vanished),
                refused=tuple(r for r in plan.refused if r.change.tenant in vanished),
                errors=plan.errors,
            ),
            scope=vanished,
        )
        result = PassResult(plan=own.plan)
        if vanished:
            with self.locks.hold(vanished):
                result = self._apply(own, vanished)
        elif plan.errors:
            for error in plan.errors:
                log.error("%s", error)
        if self.dns is not None:
            try:
                self.dns.sync({}, [], None, keep=inputs.desired.known)
            except ReconcileError as exc:
                log.warning("DNS sync failed: %s", exc)
        result.tenants = sorted((present | inputs.desired.known) - vanished)
        result.duration = time.monotonic() - started
        self._record_metrics(own, result, None, calls_before)
        return result

    def _tenants_in_pass(self, inputs: PassInputs, scope: frozenset[str] | None) -> list[str]:
        names = set(inputs.plan.tenants()) | set(inputs.desired.known) | set(inputs.snapshot.tenants())
        if self.router is not None:
            names |= set(self.router.owned_tenants())
        if scope is not None:
            names &= scope
        return sorted(names)

    def _apply(self, inputs: PassInputs, scope: frozenset[str] | None) -> PassResult:
        result = PassResult(plan=inputs.plan)
        desired = inputs.desired
        tenants = self._tenants_in_pass(inputs, scope)
        previous = {s.tenant: s for s in read_statuses(self.engine)}

        if self.router is not None:
            try:
                self.router.begin_pass()
            except ReconcileError as exc:
                log.warning("routing state not readable: %s", exc)
        leaving = [t for t in tenants if t not in desired.tenants and t not in desired.errors] + [
            t for t, spec in desired.tenants.items() if spec.state != "running" and (scope is None or t in scope)
        ]
        published: set[str] = set()
        if self.dns is not None:
            # Retirements must precede route and container removal, so DNS goes first in a pass.
            published = self._sync_dns(desired, inputs.snapshot, leaving, scope, only=None)

        finished: list[tuple[str, TenantOutcome | None, ReconcileError | None]] = []
        statuses: list[TenantStatus] = []
        for tenant in tenants:
            if self.stop.is_set():
                break
            spec = desired.tenants.get(tenant)
            if tenant in desired.errors:
                statuses.append(self._invalid_status(tenant, desired, previous.get(tenant)))
                continue
            if tenant in inputs.held:
                log.info("tenant=%s left alone: %s", tenant, inputs.held[tenant], extra={"tenant": tenant})
                continue
            hold = None
            if self.dns is not None and tenant in leaving and self.dns.published(tenant):
                hold = "waiting for the DNS record to be removed first"
            try:
                outcome = self.executor.apply_tenant(
                    tenant, inputs.plan, spec, inputs.snapshot.for_tenant(tenant), hold_removal=hold
                )
            except Interrupted:
                log.info("stopping: pass interrupted in tenant %s", tenant)
                break
            except ReconcileError as exc:
                result.errors[tenant] = str(exc)
                result.failures[tenant] = exc
                log.error("tenant=%s reconcile failed: %s", tenant, exc, extra={"tenant": tenant})
                if self.metrics:
                    self.metrics.tenant_errors.labels(tenant=tenant).inc()
                finished.append((tenant, None, exc))
                self._record_deploy(tenant, spec, previous.get(tenant), [], str(exc))
                continue
            result.outcomes[tenant] = outcome
            before = previous.get(tenant)
            if spec is not None and before is not None and before.applied_hash == spec_digest(spec):
                result.heals.extend(outcome.applied)
            else:
                self._record_deploy(tenant, spec, before, outcome.applied, None)
            finished.append((tenant, outcome, None))

        if self.dns is not None and not self.stop.is_set():
            # Tenants whose route became ready during this pass are published now, not a resync later.
            newly_ready = {
                t for t, outcome, _ in finished if outcome is not None and t not in published
            } & self._publishable(desired, None, scope)
            if newly_ready:
                self._sync_dns(desired, None, [], frozenset(newly_ready), only=newly_ready)
        for tenant, done, failure in finished:
            spec = desired.tenants.get(tenant)
            statuses.append(self._tenant_status(tenant, spec, desired, inputs, done, failure, previous.get(tenant)))
        written = write_statuses(self.engine, statuses)
        if self.on_status is not None:
            for status in written:
                self.on_status(previous.get(status.tenant), status)
        for message in inputs.plan.errors:
            log.error("%s", message)
        return result

    def _publishable(self, desired: DesiredState, snapshot: Snapshot | None, scope: frozenset[str] | None) -> set[str]:
        """Running tenants whose traffic path is ready: route ready, or (without routing) a running container."""
        names = set()
        for name, spec in desired.tenants.items():
            if spec.state != "running" or (scope is not None and name not in scope):
                continue
            if self.router is not None:
                if self.router.ready(name).status == "True":
                    names.add(name)
            elif snapshot is None or any(c.running for c in snapshot.for_tenant(name).containers):
                names.add(name)
        return names

    def _sync_dns(
        self,
        desired: DesiredState,
        snapshot: Snapshot | None,
        leaving: list[str],
        scope: frozenset[str] | None,
        *,
        only: set[str] | None,
    ) -> set[str]:
        assert self.dns is not None
        ready = self._publishable(desired, snapshot, scope)
        if only is not None:
            ready &= only
        publish = {name: desired.tenants[name] for name in sorted(ready)}
        # Invalid tenants and running tenants whose route is only briefly not ready keep their records:
        # removing a name makes resolvers cache NXDOMAIN long after the route is back.
        running = {n for n, spec in desired.tenants.items() if spec.state == "running"}
        keep = frozenset(desired.errors) | frozenset(running - ready)
        try:
            self.dns.sync(publish, sorted(set(leaving)), scope, keep=keep)
        except ReconcileError as exc:
            log.warning("DNS sync failed: %s", exc)
        return set(publish)

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

    # --- status --------------------------------------------------------------------------------------------

    def _invalid_status(self, tenant: str, desired: DesiredState, previous: TenantStatus | None) -> TenantStatus:
        error = desired.errors[tenant]
        return TenantStatus(
            tenant=tenant,
            phase="Invalid",
            conditions=(Condition("Valid", "False", "InvalidSpec", str(error)),),
            observed_generation=desired.generations.get(tenant),
            applied_hash=previous.applied_hash if previous else None,
            last_error=str(error),
            last_reconciled_at=datetime.now(UTC),
        )

    def _tenant_status(
        self,
        tenant: str,
        spec: TenantSpec | None,
        desired: DesiredState,
        inputs: PassInputs,
        outcome: TenantOutcome | None,
        error: ReconcileError | None,
        previous: TenantStatus | None,
    ) -> TenantStatus:
        conditions = [Condition("Valid", "True", "SpecValid")]
        phase: Phase
        if error is not None:
            phase = "Failed"
            reason = "PermanentError" if isinstance(error, PermanentError) else "ApplyFailed"
            conditions.append(Condition("ContainersReady", "False", reason, str(error)))
        elif spec is None or spec.state == "absent":
            phase = "Absent" if outcome is None or not outcome.waiting else "Progressing"
        elif spec.state == "stopped":
            phase = "Stopped"
            conditions.append(Condition("ContainersReady", "False", "TenantStopped"))
        else:
            phase = "Ready"
            conditions.append(Condition("ContainersReady", "True", "AllReplicasRunning"))
        if self.router is not None and spec is not None and spec.state == "running":
            route = self.router.ready(tenant)
            conditions.append(route)
            if phase == "Ready" and route.status != "True":
                phase = "Progressing"
        if self.dns is not None and spec is not None and spec.state == "running":
            conditions.append(self.dns.condition(tenant))
        if outcome is not None and outcome.waiting:
            conditions.append(Condition("Removal", "False", "Waiting", outcome.waiting))
        guarded = [r.reason for r in inputs.plan.refused if r.policy == "mass-delete" and r.change.tenant == tenant]
        if guarded:
            # Its containers still run: the removal was refused, so the tenant is not Absent yet.
            conditions.append(Condition("Removal", "False", "MassDeleteRefused", guarded[0]))
            phase = "Failed"
        pins = [r.reason for r in inputs.plan.refused if r.policy == "pinned" and r.change.tenant == tenant]
        if pins and spec is not None:
            # Not a "Degraded" condition: the failed upgrade already sent its one alert.
            conditions.append(Condition("Pinned", "True", "UpgradeFailed", pins[0]))
            if phase in ("Ready", "Progressing"):
                phase = "Degraded"
        if self.extra_conditions is not None and spec is not None:
            extra = self.extra_conditions(tenant, inputs.rendered.get(tenant), previous)
            conditions.extend(extra)
            if phase in ("Ready", "Progressing") and any(c.type == "Degraded" and c.status == "True" for c in extra):
                phase = "Degraded"
        return TenantStatus(
            tenant=tenant,
            phase=phase,
            conditions=tuple(conditions),
            observed_generation=desired.generations.get(tenant),
            applied_hash=spec_digest(spec)
            if spec is not None and error is None
            else (previous.applied_hash if previous else None),
            last_error=str(error) if error is not None else None,
            last_reconciled_at=datetime.now(UTC),
        )

    # --- metrics -------------------------------------------------------------------------------------------

    def _count_action(self, change: Change) -> None:
        if self.metrics:
            self.metrics.actions.labels(kind=change.kind, action=change.action.name.lower()).inc()

    def _record_metrics(
        self, inputs: PassInputs, result: PassResult, scope: frozenset[str] | None, calls_before: dict[str, int]
    ) -> None:
        m = self.metrics
        if m is None:
            return
        for change in inputs.plan.changes:
            m.drift.labels(kind=change.kind).inc()
        for change in result.heals:
            m.heals.labels(kind=change.kind).inc()
        for refusal in inputs.plan.refused:
            m.refused.labels(policy=refusal.policy).inc()
        outcome = "refused" if inputs.plan.errors else ("error" if result.errors else "ok")
        m.passes.labels(result=outcome).inc()
        m.pass_duration.labels(scope="all" if scope is None else "tenant").observe(result.duration)
        if outcome == "ok":
            m.last_success.set(time.time())
        for kind, count in self.docker.calls.items():
            delta = count - calls_before.get(kind, 0)
            if delta:
                m.docker_calls.labels(kind=kind).inc(delta)
        if scope is None:
            phases: dict[str, int] = {}
            for status in read_statuses(self.engine):
                phases[status.phase] = phases.get(status.phase, 0) + 1
            for phase in {*PHASES, *phases}:
                m.tenants.labels(phase=phase).set(phases.get(phase, 0))
