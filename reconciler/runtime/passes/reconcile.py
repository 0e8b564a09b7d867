"""One reconcile pass: load → observe every layer → plan (``reconciler.planning.plan_pass``) → apply → status.

Level-based: whatever triggered it (resync, Docker event, nudge, CLI), a pass re-reads the desired state and
the world: containers, networks and volumes (3 Docker list calls), the tenants' Traefik files, the DNS zones
(one GET each). The plan covers every tenant, so the mass-delete guard judges what the desired state does to the
whole fleet; ``scope`` then narrows what the pass applies (an event or nudge for one tenant). ``None`` is a
full pass, the only kind that removes tenants the database no longer knows. Apply executes exactly the plan,
in the fixed order (DNS removals; per tenant networks and volumes, containers, routes, removals; DNS
publications of tenants whose route is ready); the tenants run side by side on up to ``apply_workers`` threads
(``passes.parallel``) and are recorded in tenant order. One tenant's failure, of any kind, is recorded in its
status and never stops the others. Called by the service's workers (``runtime.service.loop``) and the CLI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial

from sqlalchemy.engine import Engine

from desired_state.bounds import InputLimits
from desired_state.canaries import CanaryRecord, read_canaries
from desired_state.identity import assign_uids, read_bindings, record_bindings
from desired_state.load import load_desired_state
from desired_state.model import DesiredState, TenantStatus
from desired_state.placements import read_placements, record_placements
from desired_state.specs import TenantSpec
from desired_state.status import read_statuses, write_statuses
from reconciler.core.diff import SubnetPool
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Change, Plan
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.resources import ContainerDefaults, HealthCheck
from reconciler.core.sites import SITE_KEY
from reconciler.planning import Observed, PassContext, PlanSettings, RenderCache, RoutingSettings, plan_pass
from reconciler.planning.placement import SwarmSettings
from reconciler.runtime.checks.runner import CheckRunner
from reconciler.runtime.passes.deadline import PassDeadline
from reconciler.runtime.passes.dns_step import DnsStep
from reconciler.runtime.passes.engine import ContainerEngine
from reconciler.runtime.passes.executor import DEFAULT_APPLY_CONCURRENCY, Executor, Interrupted, TenantOutcome
from reconciler.runtime.passes.locks import PassLocks
from reconciler.runtime.passes.parallel import ActionSlots, run_all
from reconciler.runtime.passes.pass_metrics import record_pass
from reconciler.runtime.passes.pass_values import PassInputs, PassResult
from reconciler.runtime.passes.removals import RemovalLedger
from reconciler.runtime.passes.sites_step import NoSites, SitesStep
from reconciler.runtime.passes.stages import DnsPublisher, Router, TenantOperations
from reconciler.runtime.passes.status import ExtraConditions, StatusBuilder, spec_digest
from reconciler.runtime.telemetry.metrics import Metrics
from renderers.containers import Naming

log = logging.getLogger("reconciler")

__all__ = ["PassInputs", "PassResult", "Reconciler", "spec_digest"]


@dataclass
class Reconciler:
    engine: Engine
    # The engine the pass drives (the single Docker engine today): see ``passes.engine``.
    docker: ContainerEngine
    naming: Naming
    pool: SubnetPool = field(default_factory=SubnetPool)
    limits: MassDeleteLimits = field(default_factory=MassDeleteLimits)
    router: Router | None = None
    dns: DnsPublisher | None = None
    metrics: Metrics | None = None
    ready_timeout: float = 60.0
    # Checked between actions; ``reconciler run`` adds per-worker deadlines (``passes.deadline``).
    stop: threading.Event = field(default_factory=PassDeadline)
    # Docker health check given to every container (None: none); see ``renderers.containers``.
    healthcheck: HealthCheck | None = None
    # Pids limit, log rotation, no-new-privileges for every container (None: none); see ``renderers.containers``.
    container_defaults: ContainerDefaults | None = None
    # Runtime hooks (``runtime.service.loop``): extra plan policies (crash-loop backoff), extra status conditions
    # (Degraded) and a callback after each status write (alerts on transitions).
    policies: tuple[Callable[[Plan], Plan], ...] = ()
    extra_conditions: ExtraConditions | None = None
    on_status: Callable[[TenantStatus | None, TenantStatus], None] | None = None
    # Tenant operations (``runtime.operations.upgrades``): backup and migration before upgrades, pins, holds.
    operations: TenantOperations | None = None
    # Route hosts must lie under it when set (``Settings.base_domain``); checked per tenant by the loader.
    base_domain: str | None = None
    # The Traefik entrypoint routers are put on (``Settings.traefik_entrypoint``).
    entrypoint: str = "web"
    # Bounds on tenants' memory, CPUs and route lists (``Settings.input_limits``); unset: what this host can give.
    input_limits: InputLimits | None = None
    # Tenants one pass applies side by side (``RECONCILER_APPLY_WORKERS``), and engine actions in flight across
    # the process (``RECONCILER_APPLY_CONCURRENCY``, shared by every pass): docs/runtime.md "Apply concurrency".
    apply_workers: int = 4
    apply_concurrency: int = DEFAULT_APPLY_CONCURRENCY
    sites: SitesStep | NoSites = field(default_factory=NoSites)  # Nginx sites: full passes and sweeps only
    # Renderings reused by later passes for tenants whose inputs are all equal (``planning.render_cache``).
    render_cache: RenderCache = field(default_factory=RenderCache, compare=False, repr=False)
    # The Swarm engine's planning settings (``RECONCILER_ENGINE=swarm``): tenants run as placed services.
    swarm: SwarmSettings | None = None
    # Checks after every rollout and the ChecksPassing condition (``runtime.checks``); None: no checks.
    checks: CheckRunner | None = None

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
            slots=ActionSlots(self.apply_concurrency),
            checks=self.checks,
        )
        # A tenant is never reconciled by two passes at once; passes of different tenants run side by side.
        self.locks = PassLocks()
        self.removals = RemovalLedger(self.limits.window)

    @property
    def plan_settings(self) -> PlanSettings:
        return PlanSettings(
            naming=self.naming,
            pool=self.pool,
            limits=self.limits,
            healthcheck=self.healthcheck,
            container_defaults=self.container_defaults,
            routing=RoutingSettings(self.entrypoint) if self.router is not None else None,
            dns=self.dns.settings if self.dns is not None else None,
            swarm=self.swarm,
        )

    # --- planning (no effects) -------------------------------------------------------------------------

    def observe(self, scope: frozenset[str] | None = None) -> tuple[Observed, ReconcileError | None]:
        """Every layer as it is now; the DNS server being unreachable is returned, not raised. Containers
        marked for inspection are inspected for the tenants in ``scope`` only (None: any)."""
        snapshot = self.docker.observe(scope=scope)
        routes = None
        if self.router is not None:
            try:
                routes = self.router.observe_files()
            except ReconcileError as exc:
                log.warning("route files not readable: %s", exc)
        zones, dns_failure = None, None
        if self.dns is not None:
            try:
                zones = self.dns.observe()
            except ReconcileError as exc:
                log.warning("DNS zones not readable: %s", exc)
                dns_failure = exc
        return Observed(snapshot=snapshot, routes=routes, zones=zones), dns_failure

    def compute(
        self,
        scope: Iterable[str] | None = None,
        *,
        allow_mass_delete: bool = False,
        applying: bool = False,
        edit: Callable[[DesiredState], DesiredState] | None = None,
    ) -> PassInputs:
        """The plan of a pass. ``applying`` (apply and run, never ``plan``): tenants get their uids first and the
        data-volume bindings the plan asks for are recorded (``desired_state.identity``). ``edit`` (never with
        ``applying``): a proposed change to the loaded desired state, planned without being written (the API's plan
        preview, ``reconciler.api.preview``)."""
        if applying:
            assign_uids(self.engine)
        desired = load_desired_state(self.engine, self.base_domain, self.input_limits)
        if edit is not None and not applying:
            desired = edit(desired)
        requested = frozenset(scope) if scope is not None else None
        # Containers marked for inspection (events, the round-robin) are inspected for the tenants in scope only.
        observed, dns_failure = self.observe(requested)
        # Removing tenants the database no longer has is left to full passes and the sweep.
        effective = requested & desired.known if requested is not None else None
        held = dict(self.operations.holds()) if self.operations is not None else {}
        # Site records are planned by full passes only (a scoped plan is narrowed to its tenants anyway).
        sites = None
        if requested is None and isinstance(self.sites, SitesStep):
            sites = self.sites.dns_hosts(allow_mass_delete=allow_mass_delete)
        canaries = self._canaries()
        context = PassContext(
            scope=effective,
            held=held,
            pins=self.operations.pins(desired) if self.operations is not None else {},
            policies=self.policies,
            removed_recently=self.removals.recent(),
            allow_mass_delete=allow_mass_delete,
            bindings=read_bindings(self.engine),
            sites=sites,
            canaries={t: tuple(r.canary for r in found) for t, found in canaries.items()},
            cache=self.render_cache,
            placements=read_placements(self.engine) if self.swarm is not None else {},
        )
        planned = plan_pass(desired, observed, self.plan_settings, context)
        if applying:
            record_bindings(self.engine, planned.bindings)
            if planned.placements:
                record_placements(
                    self.engine, planned.placements, {t: self.naming.volume(t) for t, _ in planned.placements}
                )
        return PassInputs(
            desired,
            observed.snapshot,
            dict(planned.rendered),
            planned.plan,
            effective,
            held,
            observed,
            dns_failure,
            planned.failed,
            sites,
            canaries,
            planned.routed,
        )

    def _canaries(self) -> dict[str, tuple[CanaryRecord, ...]]:
        """The canary analysis's state rows by tenant: the weights they impose are an input of the plan."""
        found: dict[str, list[CanaryRecord]] = {}
        for record in read_canaries(self.engine):
            found.setdefault(record.canary.tenant, []).append(record)
        return {tenant: tuple(records) for tenant, records in found.items()}

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
            inputs = self.compute(scope_set, allow_mass_delete=allow_mass_delete, applying=True)
            result = self._apply(inputs, inputs.scope)
            self.sites.run_logged(allow_mass_delete, scope_set)
            result.duration = time.monotonic() - started
            self._record_metrics(inputs, result, scope_set, calls_before)
            return result

    def sweep(self, *, allow_mass_delete: bool = False, trigger: str = "resync") -> PassResult:
        """The pass-wide share of a resync, next to per-tenant passes (``runtime.service.loop`` runs it).

        Plans the whole world and applies the share of tenants the database no longer has (containers, routes,
        DNS records: under the mass-delete guard, which sees the whole plan). Tenants in the database are left
        to their own scoped passes: the result lists them (and every other tenant seen) in ``tenants``.
        """
        started = time.monotonic()
        if self.metrics:
            self.metrics.reconciles.labels(trigger=trigger).inc()
        calls_before = dict(self.docker.calls)
        inputs = self.compute(None, allow_mass_delete=allow_mass_delete, applying=True)
        present = self._present(inputs)
        vanished = frozenset(present - inputs.desired.known)
        # The sweep also carries out the sites' DNS changes (their files follow in the sites stage below).
        site_keys = frozenset(t for t in inputs.plan.tenants() if t.startswith(SITE_KEY))
        own = replace(inputs, plan=inputs.plan.for_tenants(vanished | site_keys), scope=vanished)
        result = PassResult(plan=own.plan)
        if vanished or site_keys:
            with self.locks.hold(vanished):
                result = self._apply(own, vanished)
        else:
            for error in own.plan.errors:
                log.error("%s", error)
        result.tenants = sorted((present | inputs.desired.known) - vanished)
        self.sites.run_logged(allow_mass_delete, None)
        result.duration = time.monotonic() - started
        self._record_metrics(own, result, None, calls_before)
        return result

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

    # --- metrics -------------------------------------------------------------------------------------------

    def _count_action(self, change: Change) -> None:
        if self.metrics:
            self.metrics.actions.labels(kind=change.kind, action=change.action.name.lower()).inc()

    def _record_metrics(
        self, inputs: PassInputs, result: PassResult, scope: frozenset[str] | None, calls_before: dict[str, int]
    ) -> None:
        if self.metrics is not None:
            record_pass(self.metrics, self.engine, self.docker.calls, inputs.plan, result, scope, calls_before)


def _unexpected(tenant: str, exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return f"tenant {tenant!r}: unexpected error: {text[:300]}"
