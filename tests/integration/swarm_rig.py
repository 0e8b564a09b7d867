"""A reconciler on the Swarm lab for tests marked ``swarm``: ``RECONCILER_ENGINE=swarm`` against the lab's manager.

Each test has its own owner id, name prefix and database (``Harness``); at the end everything labelled with that
owner id is removed from the swarm (services, then the overlays once no node lists them, then the data volumes
on every node). Only those objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.integration.harness import Harness
from tests.integration.swarm import SwarmLab, wait_until

NODES = ("n1", "n2", "n3")
HEALTH = "timeout 3 wget -q -O /dev/null http://127.0.0.1:{port}{health}"


def tenants_yaml(*names: str, image: str = "erp/demo-svc:1", replicas: int = 2, state: str = "running") -> str:
    """Tenants with a stateless service ``a`` (spread over nodes) and a stateful service ``b`` (on the data node)."""
    lines = [
        "catalog:",
        "  a: {image: erp/demo-svc:1, port: 8080, health: /health, memory: 32M, cpus: 0.1, public: true}",
        "  b: {image: erp/demo-svc:1, port: 8080, health: /health, memory: 32M, cpus: 0.1}",
        "tenants:",
    ]
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    domain: {name}.erp.test",
            f"    state: {state}",
            "    services:",
            f"      a: {{replicas: {replicas}, image: {image}}}",
            f"      b: {{image: {image}}}",
        ]
    return "\n".join(lines) + "\n"


def owned(lab: SwarmLab, owner: str, kind: str, node: str = "n1") -> list[str]:
    label = f"label=tenant-reconciler.owner={owner}"
    return [x for x in lab.docker(kind, "ls", "-q", "--filter", label, node=node).split() if x]


def service_specs(lab: SwarmLab, owner: str) -> dict[str, dict[str, Any]]:
    ids = owned(lab, owner, "service")
    if not ids:
        return {}
    loaded: list[dict[str, Any]] = json.loads(lab.docker("service", "inspect", *ids))
    return {s["Spec"]["Name"]: s for s in loaded}


def running_tasks(lab: SwarmLab, service: str) -> list[dict[str, Any]]:
    ids = [t for t in lab.docker("service", "ps", "-q", "--filter", "desired-state=running", service).split() if t]
    return [t for t in (lab.inspect(*ids) if ids else []) if t["Status"]["State"] == "running"]


def node_names(lab: SwarmLab) -> dict[str, str]:
    return {n["ID"]: n["Description"]["Hostname"] for n in json.loads(lab.docker("node", "inspect", *NODES))}


def placements(h: Harness) -> dict[str, str]:
    """The data nodes the reconciler stored (``tenant_placements``)."""
    from sqlalchemy import text

    with h.rt.engine.connect() as connection:
        return {str(t): str(n) for t, n in connection.execute(text("select tenant, node from tenant_placements"))}


def clean_owner(lab: SwarmLab, owner: str, *, plain: bool = True) -> None:
    """``plain``: also the test's own containers (a Traefik it attached to the overlays), which hold networks."""
    for service in owned(lab, owner, "service"):
        lab.docker("service", "rm", service, check=False)
    for node in NODES if plain else ():
        label = f"label=tenant-reconciler.owner={owner}"
        for container in lab.docker("ps", "-aq", "--filter", label, node=node).split():
            lab.docker("rm", "-f", container, node=node, check=False)

    def networks_gone() -> bool:
        for network in owned(lab, owner, "network"):
            lab.docker("network", "rm", network, check=False)
        return not any(owned(lab, owner, "network", node=n) for n in NODES)

    wait_until(networks_gone, 90, f"networks of owner {owner} to leave every node")

    def volumes_gone() -> bool:
        for node in NODES:
            for volume in owned(lab, owner, "volume", node=node):
                lab.docker("volume", "rm", volume, node=node, check=False)
        return not any(owned(lab, owner, "volume", node=n) for n in NODES)

    wait_until(volumes_gone, 90, f"volumes of owner {owner} to go (their task containers first)")


@contextmanager
def swarm_harness(lab: SwarmLab, owner: str, database_url: str, **settings: str) -> Iterator[Harness]:
    hosts = ",".join(f"{n}={lab.socket(n)}" for n in NODES)
    clean_owner(lab, owner, plain=False)
    h = Harness.create(
        owner,
        database_url,
        None,
        engine="swarm",
        docker_host=lab.manager,
        swarm_registry=lab.registry,
        swarm_stateless="a",
        swarm_node_hosts=hosts,
        healthcheck_command=HEALTH,
        healthcheck_interval="1",
        healthcheck_start_period="1",
        ready_timeout="120",
        **settings,
    )
    try:
        yield h
    finally:
        h.stop_run()
        h.rt.engine.dispose()
        clean_owner(lab, owner)
