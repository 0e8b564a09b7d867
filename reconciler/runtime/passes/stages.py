"""The contracts between a pass and its routing and DNS stages (and tenant operations).

Every layer is observed before planning (``Router.observe_files`` and ``begin_pass``, ``DnsPublisher.observe``)
and changed only as the plan says, in the order of ARCHITECTURE.md:
- DNS deletions first (``DnsPublisher.apply``), so a name stops resolving before its backends go;
- then per tenant: networks and volumes, containers, and the route change (``Router.publish`` around a
  replacement: new containers ready → old + new → new only, confirmed by Traefik → old stopped; or
  ``Router.withdraw`` when the plan removes the route), then container and network removals;
- then new and changed DNS records of tenants whose route is ready (``DnsPublisher.apply``).
Both stages are optional: without them the platform runs containers only. Implementations: ``passes.routing``
(Traefik) and ``passes.dns`` (PowerDNS), built by ``runtime.wiring`` only when configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from desired_state.model import Condition, DesiredState
from desired_state.specs import TenantSpec
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Change, Plan
from reconciler.core.resources import Container
from reconciler.core.routes import RouteFile
from reconciler.core.upgrades import Pin, Upgrade
from reconciler.planning import DnsSettings, ZoneState


@dataclass
class DnsOutcome:
    """What one ``DnsPublisher.apply`` did: the changes the server took, and tenants it refused, with why."""

    applied: list[Change] = field(default_factory=list)
    problems: dict[str, Condition] = field(default_factory=dict)


class Router(Protocol):
    def observe_files(self) -> dict[str, RouteFile]:
        """The tenants' dynamic files on disk, parsed, for the planner (no API request)."""

    def begin_pass(self, files: Mapping[str, RouteFile]) -> None:
        """Read what routing looks like now (one API read per pass), so ``ready`` answers without I/O."""

    def publish(self, spec: TenantSpec, backends: Sequence[Container]) -> None:
        """Route the tenant to exactly ``backends`` (running, ready, with an address); wait until the routing
        layer confirms every backend UP and no other server listed. Rewrites nothing if unchanged.
        Raises ``TransientError`` when confirmation times out."""

    def withdraw(self, tenant: str) -> None:
        """Remove every route of the tenant and wait until the routing layer no longer lists them."""

    def ready(self, tenant: str) -> Condition:
        """``RouteReady`` condition from the last ``begin_pass``/``publish``."""


class DnsPublisher(Protocol):
    @property
    def settings(self) -> DnsSettings:
        """Zones, target and policy, for the planner."""

    def observe(self) -> dict[str, ZoneState]:
        """One GET per managed zone. Raises ``TransientError`` / ``UnauthorizedError`` when the server as a whole
        cannot be used (the pass then plans no DNS change and removals of leaving tenants wait)."""

    def apply(self, changes: Sequence[Change]) -> DnsOutcome:
        """At most one PATCH per zone (more only when the server rejects a tenant's rrset, which is set aside)."""

    def settle(
        self,
        tenants: Iterable[str],
        plan: Plan,
        outcomes: Sequence[DnsOutcome],
        *,
        deferred: frozenset[str] = frozenset(),
        failure: ReconcileError | None = None,
    ) -> None:
        """Set each tenant's ``DNSReady`` from the plan and what ``apply`` did."""

    def condition(self, tenant: str) -> Condition:
        """``DNSReady`` condition for the tenant after the last ``settle``."""

    def published(self, tenant: str) -> bool:
        """Whether our record for the tenant exists (removal of its containers waits until it is gone)."""


class UpgradeGate(Protocol):
    """Around the replacements that change a service's image (``runtime.operations.upgrades`` implements it).

    ``before_upgrades`` runs before any new container of those services starts (backup, then migration) and
    returns the upgrades that must not go ahead, with why; their old containers keep serving. Raising
    ``ReconcileError`` holds back every upgrade of the tenant in this pass. ``after_upgrades`` gets the outcome
    of the upgrades that went ahead: None, or why the new version did not take over (its new containers, every
    replica of them, were removed and the old ones kept serving).
    """

    def before_upgrades(self, spec: TenantSpec, upgrades: Sequence[Upgrade]) -> Mapping[Upgrade, str]: ...

    def after_upgrades(self, spec: TenantSpec, results: Mapping[Upgrade, str | None]) -> None: ...


class TenantOperations(UpgradeGate, Protocol):
    """What a pass asks of tenant operations (``operations.upgrades.UpgradeGuard``), besides the upgrade gate."""

    def holds(self) -> Mapping[str, str]:
        """Tenants the pass must leave alone right now (a restore is running on them), with why."""

    def pins(self, desired: DesiredState) -> Mapping[str, Sequence[Pin]]:
        """Active pins by tenant, for ``core.policies.pinned`` (read-only)."""

    def deployed(self, tenant: str, digest: str, applied: Sequence[Change], error: str | None) -> None:
        """A pass rolled out a new spec of the tenant (digest), or failed to: recorded in the history once."""
