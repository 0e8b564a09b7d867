"""The plan: an immutable, sorted list of changes over every layer the reconciler owns (networks, volumes,
containers, Traefik route files, DNS rrsets). Computed by ``reconciler.planning.plan_pass`` (``core.diff``,
``core.route_diff``, ``core.dns``), filtered by ``core.policies``, printed by ``core.render_plan`` and executed,
exactly, by the runtime's executor.

Sorting encodes the ordering rule: for creation network and volume, then containers, then routes, then DNS; for
removal the reverse (DNS first). Replacement is one change (-/+) that the executor carries out as start new →
ready → in routing → old out of routing → stop old. A route change lists what changes inside the file (routers,
services, servers, middlewares) as ``parts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from reconciler.core.dns import RRset
from reconciler.core.resources import Container, Network, Volume
from reconciler.core.routes import RouteFile
from reconciler.core.services import Service
from reconciler.core.sites import SiteFile

Resource = Container | Network | Volume | RouteFile | RRset | SiteFile | Service
# "site": one Nginx site file (``core.sites``); its changes carry the key ``site:<name>`` as ``tenant``.
# "service": one Swarm service (``core.services``), where the engine schedules the replicas itself.
Kind = Literal["network", "volume", "container", "route", "dns", "site", "service"]
# What a part of a route change is about.
PartKind = Literal["router", "service", "server", "middleware", "file"]


class Action(Enum):
    CREATE = "+"
    UPDATE = "~"
    REPLACE = "-/+"
    DELETE = "-"


# An update names the operation the executor performs in place; ``resume`` finishes a replacement that an
# earlier process started (its new container exists already: see ``core.diff``).
Operation = Literal["create", "start", "stop", "replace", "resume", "delete", "update"]

# Creation phases run in ascending order; deletions in descending order after them.
_KIND_RANK: dict[str, int] = {"network": 0, "volume": 1, "container": 2, "service": 2, "route": 3, "dns": 4, "site": 5}


@dataclass(frozen=True)
class Part:
    """One router, service, server or middleware that a route change adds, changes or removes."""

    action: Action
    kind: PartKind
    name: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.action.value} {self.kind} {self.name}{f' ({self.detail})' if self.detail else ''}"


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    tenant: str
    name: str
    reason: str
    before: Resource | None = None
    after: Resource | None = None
    operation: Operation = "create"
    # Route changes: what changes inside the file. DNS changes: the zone the rrset lives in.
    parts: tuple[Part, ...] = ()
    zone: str = ""

    @property
    def removes(self) -> dict[str, int]:
        """What this change takes away, by layer (for the mass-delete guard): containers, route files, routers,
        DNS rrsets. A replacement removes nothing (its new half takes over); a route update removes routers."""
        if self.action is Action.DELETE:
            if self.kind == "container":
                return {"containers": 1}
            if self.kind == "service" and isinstance(self.before, Service):
                # Its tasks are what the snapshot counts as containers.
                return {"containers": max(self.before.running, 1)}
            if self.kind == "route":
                routers = sum(1 for p in self.parts if p.kind == "router" and p.action is Action.DELETE)
                return {"route files": 1, "routers": routers}
            if self.kind == "dns":
                return {"DNS rrsets": 1}
            if self.kind == "site":
                return {"site files": 1}
            return {}
        if self.kind == "route" and self.action is Action.UPDATE:
            routers = sum(1 for p in self.parts if p.kind == "router" and p.action is Action.DELETE)
            return {"routers": routers} if routers else {}
        return {}

    @property
    def sort_key(self) -> tuple[int, int, str, str, str, int, str]:
        rank = _KIND_RANK[self.kind]
        resource = self.before or self.after
        service, track, replica = (
            (resource.service, resource.track, resource.replica)
            if isinstance(resource, Container | Service)
            else ("", "", 0)
        )
        if self.action is Action.DELETE:
            # Removal in reverse kind order, highest replica index first.
            return (1, -rank, self.tenant, service, track, -replica, self.name)
        return (0, rank, self.tenant, service, track, replica, self.name)

    def describe(self) -> str:
        return f"{self.action.value} {self.kind} {self.name} ({self.reason})"

    @property
    def removal(self) -> bool:
        return bool(self.removes)


@dataclass(frozen=True)
class Refusal:
    """A change a policy withheld, with why; shown by ``plan`` and counted in metrics."""

    change: Change
    policy: str
    reason: str


@dataclass(frozen=True)
class Blocked:
    tenant: str
    kind: Kind
    reason: str  # CamelCase, becomes the condition's reason
    message: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()
    refused: tuple[Refusal, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)
    # Why a tenant's route or records cannot be what it wants (a DNS conflict, a host outside every zone):
    # no change is planned for them, and the tenant's status says why.
    blocked: tuple[Blocked, ...] = ()

    @staticmethod
    def of(
        changes: list[Change] | tuple[Change, ...],
        refused: tuple[Refusal, ...] = (),
        errors: tuple[str, ...] = (),
        blocked: tuple[Blocked, ...] = (),
    ) -> Plan:
        return Plan(
            changes=tuple(sorted(changes, key=lambda c: c.sort_key)), refused=refused, errors=errors, blocked=blocked
        )

    def with_changes(self, changes: list[Change] | tuple[Change, ...], refused: list[Refusal] | None = None) -> Plan:
        """The same plan (errors, blockers) with other changes and refusals."""
        return Plan.of(changes, tuple(self.refused if refused is None else refused), self.errors, self.blocked)

    def merged(self, other: Plan) -> Plan:
        """This plan and ``other`` as one (``reconciler plan`` shows the tenants' and the sites' plans together)."""
        return Plan.of(
            (*self.changes, *other.changes),
            (*self.refused, *other.refused),
            (*self.errors, *other.errors),
            (*self.blocked, *other.blocked),
        )

    def of_kind(self, *kinds: Kind) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind in kinds)

    @property
    def empty(self) -> bool:
        return not self.changes

    def for_tenant(self, tenant: str) -> Plan:
        return Plan(
            changes=tuple(c for c in self.changes if c.tenant == tenant),
            refused=tuple(r for r in self.refused if r.change.tenant == tenant),
            blocked=tuple(b for b in self.blocked if b.tenant == tenant),
        )

    def for_tenants(self, tenants: frozenset[str]) -> Plan:
        return Plan(
            changes=tuple(c for c in self.changes if c.tenant in tenants),
            refused=tuple(r for r in self.refused if r.change.tenant in tenants),
            errors=self.errors,
            blocked=tuple(b for b in self.blocked if b.tenant in tenants),
        )

    def tenants(self) -> list[str]:
        return sorted({c.tenant for c in self.changes} | {r.change.tenant for r in self.refused})

    def counts(self) -> dict[str, int]:
        result = {action.name.lower(): 0 for action in Action}
        for change in self.changes:
            result[change.action.name.lower()] += 1
        return result
