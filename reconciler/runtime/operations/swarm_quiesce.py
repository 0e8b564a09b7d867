"""Scaling a tenant's stateful Swarm services to 0 while its data volume is worked on (restore, data move).

Called by ``operations.tenant_ops`` (a restore when the pass drives a swarm) and ``operations.data_move``. On one
engine a restore stops the tenant's containers; on a swarm Swarm replaces a stopped task at once, so the services
that mount the data volume are scaled to 0 instead (the rest of their spec as observed). The tenant is held
meanwhile (a running ``restore`` or ``move`` operation), so no pass scales them up under the operation's feet; the
pass that follows the operation puts the configured replicas back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from reconciler.core.errors import TransientError
from reconciler.drivers.docker import DockerDriver
from reconciler.drivers.swarm import SwarmDriver
from reconciler.runtime.data_node import DataNodeDocker

log = logging.getLogger("reconciler.operations")

POLL_INTERVAL = 0.5
# How long the stateful tasks get to stop (their stop grace is usually seconds).
STOP_TIMEOUT = 120.0


def is_swarm(engine: object) -> bool:
    """Whether the pass's engine is a Swarm manager (operations are given it as the reconciler's ``docker``)."""
    return isinstance(engine, SwarmDriver)


def quiesce_for_restore(engine: object, docker: DockerDriver, tenant: str, volume: str) -> list[str]:
    """Before a restore: on a swarm (``engine`` is the pass's engine) the stateful services scaled to 0; else nothing.

    ``docker`` is the operations' driver: on the data node's engine when ``RECONCILER_SWARM_NODE_HOSTS`` names it.
    """
    if not isinstance(engine, SwarmDriver):
        return []
    node = docker.tenant_engine(tenant) if isinstance(docker, DataNodeDocker) else None
    return stop_stateful(engine, node, tenant, volume, STOP_TIMEOUT)


def stop_stateful(swarm: SwarmDriver, node: DockerDriver | None, tenant: str, volume: str, timeout: float) -> list[str]:
    """Scale the services mounting ``volume`` to 0 and wait until none of their tasks runs (and, with ``node``, no
    container on that engine runs with the volume mounted: a task told to stop may still run out its stop grace).

    Returns the names of the services scaled down; raises ``TransientError`` when containers still run after
    ``timeout`` seconds (the caller's pass then scales the services back).
    """
    stateful = [s for s in swarm.observe(tenant).services if s.volume == volume]
    scaled = []
    for service in stateful:
        if service.replicas:
            swarm.update_service(replace(service, replicas=0))
            scaled.append(service.name)
            log.info("tenant=%s scaled %s to 0 for the operation", tenant, service.name, extra={"tenant": tenant})
    deadline = time.monotonic() + timeout
    names = {s.name for s in stateful}
    while True:
        running = [s.name for s in swarm.observe(tenant).services if s.name in names and s.running]
        if node is not None and not running:
            running = node.api.containers(filters={"volume": volume, "status": "running"})
        if not running:
            return scaled
        if time.monotonic() > deadline:
            raise TransientError(
                f"{len(running)} container(s) still use {volume} {timeout:.0f} s after its services were scaled to 0",
                tenant=tenant,
            )
        time.sleep(POLL_INTERVAL)
