"""Which engine the pass drives (``RECONCILER_ENGINE``): the single Docker engine or a Docker Swarm manager.

Called by ``runtime.wiring.build_runtime``. Kept apart from the wiring so the choice (and the Swarm settings it
reads) stays in one small place; the pass itself never learns which engine it was given.
"""

from __future__ import annotations

import logging

from reconciler.core.resources import ContainerDefaults
from reconciler.drivers.swarm import StopPolicy, SwarmDriver, SwarmTimeouts
from reconciler.planning.placement import SwarmSettings
from reconciler.runtime.passes.engine import ContainerEngine
from reconciler.runtime.settings import Settings

log = logging.getLogger("reconciler")


def node_hosts(value: str) -> dict[str, str]:
    """``"n1=unix:///run/n1.sock,n2=tcp://..."`` as a mapping; a malformed entry is a clear error."""
    hosts: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"swarm_node_hosts entry {item[:60]!r} is not NODE=URL such as n1=tcp://10.0.0.11:2376")
        hosts[name.strip()] = url.strip()
    return hosts


def swarm_settings(settings: Settings) -> SwarmSettings | None:
    if settings.engine != "swarm":
        return None
    stateless = frozenset(s.strip() for s in settings.swarm_stateless.split(",") if s.strip())
    return SwarmSettings(registry=settings.swarm_registry or None, stateless=stateless)


def build_engine(settings: Settings, docker: ContainerEngine) -> ContainerEngine:
    """The engine for the pass: ``docker`` (already built: operations use it too) or a Swarm driver."""
    if settings.engine != "swarm":
        return docker
    driver = SwarmDriver(
        settings.owner_id,
        settings.docker_host,
        node_hosts=node_hosts(settings.swarm_node_hosts),
        timeouts=SwarmTimeouts(api=settings.docker_api_timeout, mutation=settings.docker_mutation_timeout),
        stop=StopPolicy(settings.swarm_stop_signal, settings.swarm_stop_grace),
        router_container=settings.swarm_router_container or None,
    )
    for gap in driver.hardening_gaps(ContainerDefaults(no_new_privileges=settings.container_no_new_privileges)):
        log.warning("%s", gap)
    return driver
