"""Phase 3 of a tenant's apply: the plan's route change, once, with every backend that may serve.

Called by ``passes.executor`` after the tenant's new containers were waited for. Around a replacement the route
goes old + new first, then new only (``Router.publish`` waits until Traefik confirms each), so an old container
leaves routing only after its successor serves; a removed route is withdrawn before the containers behind it go.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from desired_state.specs import TenantSpec
from reconciler.core.plan import Action, Change
from reconciler.core.resources import Container, Snapshot
from reconciler.runtime.passes.stages import Router


@dataclass(frozen=True)
class Backends:
    observed: Snapshot  # the tenant's containers when the pass began
    ready: Mapping[str, Container]  # new containers of this pass, ready, by name
    removing: Set[str]  # containers this pass stops or removes after routing
    discarded: Set[str]  # new halves of interrupted replacements that never got ready (removed)

    def final(self) -> list[Container]:
        staying = [
            c
            for c in self.observed.containers
            if c.running
            and c.ip
            and c.name not in self.removing
            and c.name not in self.ready
            and c.name not in self.discarded
        ]
        return sorted([*staying, *self.ready.values()], key=lambda c: c.name)

    def going(self) -> list[Container]:
        return [c for c in self.observed.containers if c.name in self.removing and c.running and c.ip]


def route_tenant(
    router: Router,
    tenant: str,
    spec: TenantSpec | None,
    route: Change,
    backends: Backends,
    hold_removal: str | None,
) -> bool:
    """Carry out the route change; whether it was (a withdrawal waits while DNS still publishes the tenant)."""
    if route.action is Action.DELETE:
        if hold_removal is not None:
            return False
        router.withdraw(tenant)
        return True
    if spec is None or spec.state != "running":
        return False
    final = backends.final()
    going = backends.going()
    if going and backends.ready:
        router.publish(spec, sorted([*final, *going], key=lambda c: c.name))
    router.publish(spec, final)
    return True
