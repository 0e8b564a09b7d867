"""What the executor reports for one tenant, and the plan's share of a tenant sorted by the phase it belongs to.

``passes.executor`` fills a ``TenantOutcome`` in plan order (whatever order concurrent actions finished in) and
``passes.reconcile`` turns it into the tenant's status; ``Buckets`` sorts a tenant's changes into the phases of
apply (network and volume, new containers, route, removals). ``Interrupted`` ends a pass between two actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Action, Change


class Interrupted(ReconcileError):
    """The process was asked to stop; the pass ended between two actions."""


@dataclass
class TenantOutcome:
    tenant: str
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    waiting: str | None = None  # why removal was held back (e.g. DNS record still published)

    @property
    def ok(self) -> bool:
        return not self.failed


class Buckets:
    """A tenant's changes by phase, each list in plan order."""

    def __init__(self, changes: tuple[Change, ...]) -> None:
        def pick(kind: str, action: Action, operation: str | None = None) -> list[Change]:
            return [
                c
                for c in changes
                if c.kind == kind and c.action is action and (operation is None or c.operation == operation)
            ]

        self.network_creates = pick("network", Action.CREATE)
        # Swarm: the router (Traefik) joined again to an existing overlay (``engine.RouterAttaching``).
        self.network_attaches = pick("network", Action.UPDATE)
        self.volume_creates = pick("volume", Action.CREATE)
        self.creates = pick("container", Action.CREATE)
        self.replaces = pick("container", Action.REPLACE, "replace")
        self.resumes = pick("container", Action.REPLACE, "resume")
        self.starts = pick("container", Action.UPDATE, "start")
        self.stops = pick("container", Action.UPDATE, "stop")
        self.updates = pick("container", Action.UPDATE, "update")
        self.deletes = pick("container", Action.DELETE)
        self.network_deletes = pick("network", Action.DELETE)
        # Swarm services (``core.services``): the engine rolls their tasks itself.
        self.service_changes = pick("service", Action.CREATE) + pick("service", Action.UPDATE)
        self.service_deletes = pick("service", Action.DELETE)
        routes = [c for c in changes if c.kind == "route"]
        self.route = routes[0] if routes else None
