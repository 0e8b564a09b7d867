"""Phase 2 for engines that schedule replicas themselves (Swarm): wait for the services a tenant's plan created or
updated to run their replicas of the new spec, and keep routing on the tasks that run meanwhile.

Called by ``passes.executor`` after it created or updated the tenant's services. The engine rolls the tasks
(start-first, one at a time, rollback on failure); what the pass adds is routing that follows the roll: every round
the tenant's running tasks (desired state running: a task the engine is stopping has left that list, and keeps
serving for its stop grace period) are published to the router when they changed, so an old task leaves routing
before it is killed and a new one joins once it is healthy. One tenant listing per round, whatever the replicas.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from reconciler.core.errors import TransientError
from reconciler.core.resources import Container
from reconciler.core.services import Service
from reconciler.runtime.passes.engine import ContainerEngine

log = logging.getLogger("reconciler.apply")

# Seconds between two looks at the tenant's tasks: well inside a task's stop grace period (drivers.swarm.spec).
ROUND = 0.5


def _settled(service: Service, tasks: Sequence[Container]) -> bool:
    mine = [t for t in tasks if t.service == service.service and t.track == service.track and t.running]
    return sum(t.spec_hash == service.spec_hash for t in mine) >= service.replicas


def settle_services(
    engine: ContainerEngine,
    tenant: str,
    services: Sequence[Service],
    *,
    timeout: float,
    stop: threading.Event,
    follow: Callable[[list[Container]], None] | None = None,
) -> list[Container]:
    """The tenant's running tasks once every service runs its replicas of the new spec; TransientError on timeout.

    ``follow`` is given the running tasks with an address whenever they changed (routing); None: no routing.
    """
    waiting = {s.name: s for s in services if s.replicas > 0}
    deadline = time.monotonic() + timeout
    published: frozenset[tuple[str, str | None]] | None = None
    running: list[Container] = []
    while not stop.is_set():
        tasks = engine.observe(tenant, scope=frozenset()).containers
        running = sorted((t for t in tasks if t.running and t.ip), key=lambda t: t.name)
        serving = frozenset((t.name, t.ip) for t in running)
        if follow is not None and running and serving != published:
            follow(running)
            published = serving
        waiting = {name: s for name, s in waiting.items() if not _settled(s, tasks)}
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(ROUND)
    if waiting and not stop.is_set():
        for name in sorted(waiting):
            log.warning("tenant=%s service %s not settled within %.0fs", tenant, name, timeout)
        raise TransientError(
            f"tenant {tenant!r}: service(s) {', '.join(sorted(waiting))} not running their replicas within "
            f"{timeout:.0f}s (the engine keeps trying, and rolls back a failing update)",
            tenant=tenant,
        )
    return running
