"""What a reconcile pass is made of: the ``Reconciler``'s fields, its executor, locks and removal ledger, metrics.

Below every part of ``passes.reconcile.Reconciler``, which is built on ``PassSetup`` through
``passes.pass_planning`` (load, observe, plan) and ``passes.pass_apply`` (apply, status); the runtime makes one per
process by constructor (``runtime.wiring``, for the service and the CLI alike; benches make their own).
``__post_init__`` makes the executor the pass drives (``passes.executor``), with the settings it shares;
``plan_settings`` is what ``planning.plan_pass`` is given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from desired_state.bounds import InputLimits
from desired_state.model import TenantStatus
from reconciler.core.diff import SubnetPool
from reconciler.core.plan import Change, Plan
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.resources import ContainerDefaults, HealthCheck
from reconciler.planning import PlanSettings, RenderCache, RoutingSettings
from reconciler.planning.placement import SwarmSettings
from reconciler.runtime.checks.runner import CheckRunner
from reconciler.runtime.passes.deadline import PassDeadline
from reconciler.runtime.passes.engine import ContainerEngine
from reconciler.runtime.passes.executor import DEFAULT_APPLY_CONCURRENCY, Executor
from reconciler.runtime.passes.locks import PassLocks
from reconciler.runtime.passes.parallel import ActionSlots
from reconciler.runtime.passes.pass_metrics import record_pass
from reconciler.runtime.passes.pass_values import PassInputs, PassResult
from reconciler.runtime.passes.removals import RemovalLedger
from reconciler.runtime.passes.sites_step import NoSites, SitesStep
from reconciler.runtime.passes.stages import DnsPublisher, Router, TenantOperations
from reconciler.runtime.passes.status import ExtraConditions
from reconciler.runtime.telemetry.metrics import Metrics
from renderers.containers import Naming


@dataclass
class PassSetup:
    """The fields a ``Reconciler`` is made with, what ``__post_init__`` builds from them, and the pass metrics."""

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

    # --- metrics -------------------------------------------------------------------------------------------

    def _count_action(self, change: Change) -> None:
        if self.metrics:
            self.metrics.actions.labels(kind=change.kind, action=change.action.name.lower()).inc()

    def _record_metrics(
        self, inputs: PassInputs, result: PassResult, scope: frozenset[str] | None, calls_before: dict[str, int]
    ) -> None:
        if self.metrics is not None:
            record_pass(self.metrics, self.engine, self.docker.calls, inputs.plan, result, scope, calls_before)
