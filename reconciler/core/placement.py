"""Which Swarm node holds a tenant's data (pure): chosen once from node labels and free memory, then kept.

Called by ``planning.placement`` for tenants of the Swarm engine. A tenant's stateful services and its data volume
live on one node; the choice is stored in the database (``tenant_placements``) and never changed by a pass: moving
data is an explicit operation (docs/swarm.md "Node failure"). Free memory is the node's memory minus the memory
reservations of the services already placed on it (Swarm refuses a task whose reservation does not fit, so
reservations, not usage, are what decides). Nodes labelled ``tenant-reconciler.data=true`` are the only
candidates when any node carries the label; otherwise every usable node is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.core.resources import LABEL_PREFIX
from reconciler.core.services import Node, Service

DATA_NODE_LABEL = f"{LABEL_PREFIX}.data"


def reserved_by_node(services: Iterable[Service]) -> dict[str, int]:
    """Memory reserved on each node by services constrained to it (spread services are not counted)."""
    reserved: dict[str, int] = {}
    for service in services:
        if service.node is not None and service.memory is not None:
            reserved[service.node] = reserved.get(service.node, 0) + service.memory * service.replicas
    return reserved


def candidates(nodes: Iterable[Node]) -> list[Node]:
    usable = [n for n in nodes if n.usable]
    labelled = [n for n in usable if dict(n.labels).get(DATA_NODE_LABEL) == "true"]
    return labelled or usable


def choose_node(need: int, nodes: Iterable[Node], reserved: Mapping[str, int]) -> str | None:
    """The candidate with the most free memory that fits ``need`` bytes (ties by name); None if none fits."""
    best: tuple[int, str] | None = None
    for node in candidates(nodes):
        free = node.memory - reserved.get(node.name, 0)
        if free < need:
            continue
        if best is None or (free, _neg(node.name)) > (best[0], _neg(best[1])):
            best = (free, node.name)
    return best[1] if best is not None else None


def _neg(name: str) -> tuple[int, ...]:
    # Equal free memory: the alphabetically first node wins (a stable, reviewable choice).
    return tuple(-ord(c) for c in name)


def node_problem(node: str, nodes: Iterable[Node]) -> tuple[str, str] | None:
    """Why the tenant's data node cannot run its stateful services now (reason, message), or None if it can."""
    found = next((n for n in nodes if n.name == node), None)
    if found is None:
        return "NodeLost", f"data node {node} is no longer in the swarm; its stateful services cannot run"
    if found.state != "ready":
        return "NodeDown", f"data node {node} is {found.state}; its stateful services wait for it"
    if found.availability != "active":
        return (
            "NodeDrained",
            f"data node {node} is {found.availability}ed; stateful services stay pending until it is active again "
            "or the data is moved (`reconciler swarm move-data`)",
        )
    return None
