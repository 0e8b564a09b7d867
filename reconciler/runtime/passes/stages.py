"""The contracts between the pass executor and the routing and DNS stages.

The executor (``runtime.passes.executor``) drives a tenant's container changes; around them it calls a ``Router``
(Traefik) and, once per pass, a ``DnsPublisher`` (PowerDNS). Both are optional: without them the platform
runs containers only. The implementations live in ``runtime`` adapters over ``drivers.traefik`` and
``drivers.powerdns`` and the pure ``renderers``.

Ordering they rely on (see ARCHITECTURE.md):
- replacement: new container started and ready → ``Router.publish`` with old and new backends (waits until
  Traefik reports the new ones UP) → ``Router.publish`` without the old ones (waits until Traefik no longer
  lists them) → old container stopped;
- removal: DNS record retired first (``DnsPublisher.sync`` at the start of the pass), then ``Router.withdraw``,
  then containers and network;
- publication: a tenant's record is published by ``DnsPublisher.sync`` once its route is ready.

Wiring (``runtime.wiring``) builds them through two factories, imported only when configured:
``reconciler.runtime.passes.routing.build_traefik_router(settings: Settings, naming: Naming) -> Router`` (when
``settings.traefik_dynamic_dir`` is set) and ``reconciler.runtime.passes.dns.build_powerdns_publisher(settings, naming)
-> DnsPublisher`` (when ``settings.powerdns_url`` is set). Tenants present in the database but invalid are
passed as ``keep`` to ``DnsPublisher.sync`` so their records survive a full pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from desired_state.model import Condition, DesiredState
from desired_state.specs import TenantSpec
from reconciler.core.plan import Change
from reconciler.core.resources import Container
from reconciler.core.upgrades import Pin, Upgrade


class Router(Protocol):
    def begin_pass(self) -> None:
        """Read what routing looks like now (one API read per pass), so ``ready`` answers without I/O."""

    def publish(self, spec: TenantSpec, backends: Sequence[Container]) -> None:
        """Route the tenant to exactly ``backends`` (running, ready, with an address); wait until the routing
        layer confirms every backend UP and no other server listed. Rewrites nothing if unchanged.
        Raises ``TransientError`` when confirmation times out."""

    def withdraw(self, tenant: str) -> None:
        """Remove every route of the tenant and wait until the routing layer no longer lists them."""

    def ready(self, tenant: str) -> Condition:
        """``RouteReady`` condition from the last ``begin_pass``/``publish``."""

    def owned_tenants(self) -> frozenset[str]:
        """Tenants for which routes we wrote exist (so routes of vanished tenants are withdrawn)."""


class DnsPublisher(Protocol):
    def sync(
        self,
        publish: Mapping[str, TenantSpec],
        retire: Sequence[str],
        scope: frozenset[str] | None,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        """One GET per zone, at most one PATCH per zone: publish records of ``publish`` (tenants whose route is
        ready), delete our records of ``retire`` and, when ``scope`` is None (a full pass), our records of any
        tenant not in ``publish`` (unless the policy is upsert-only). Never touches unmarked records.
        Errors are kept per tenant (see ``condition``), never raised for one tenant's conflict; an unreachable
        server raises ``TransientError``."""

    def condition(self, tenant: str) -> Condition:
        """``DNSReady`` condition for the tenant after the last ``sync``."""

    def published(self, tenant: str) -> bool:
        """Whether our record for the tenant exists after the last ``sync`` (removal waits until it is gone)."""


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
