"""Which Swarm node holds a tenant's data (pure): chosen once from node labels and free capacity, then kept.

Called by ``planning.placement`` for tenants of the Swarm engine. A tenant's stateful services and its data volume
live on one node; the choice is stored in the database (``tenant_placements``) and never changed by a pass: moving
data is an explicit operation (docs/swarm.md "Node failure"). Free capacity is the node's memory and CPUs minus the
reservations of the services already placed on it (Swarm refuses a task whose reservation does not fit, so
reservations, not usage, are what decides); the most free memory wins among the nodes where both fit. Nodes
labelled ``tenant-reconciler.data=true`` are the only candidates when any node carries the label; otherwise every
usable node is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.core.resources import LABEL_PREFIX
from reconciler.core.services import Node, Service

DATA_NODE_LABEL = f"{LABEL_PREFIX}.data"
_PAST = {"drain": "drained", "pause": "paused"}


@dataclass(frozen=True)
class Need:
    """What a tenant's stateful replicas reserve together: bytes of memory and CPUs."""

    memory: int = 0
    cpus: float = 0.0

    def __add__(self, other: Need) -> Need:
        return Need(self.memory + other.memory, self.cpus + other.cpus)


def reserved_by_node(services: Iterable[Service]) -> dict[str, Need]:
    """What services constrained to each node reserve there (spread services are not counted)."""
    reserved: dict[str, Need] = {}
    for service in services:
        if service.node is not None:
            need = Need((service.memory or 0) * service.replicas, (service.cpus or 0.0) * service.replicas)
            reserved[service.node] = reserved.get(service.node, Need()) + need
    return reserved


def candidates(nodes: Iterable[Node]) -> list[Node]:
    usable = [n for n in nodes if n.usable]
    labelled = [n for n in usable if dict(n.labels).get(DATA_NODE_LABEL) == "true"]
    return labelled or usable


def choose_node(need: Need, nodes: Iterable[Node], reserved: Mapping[str, Need]) -> str | None:
    """The candidate with the most free memory where ``need`` fits (ties by name); None if none fits."""
    best: tuple[int, str] | None = None
    for node in candidates(nodes):
        taken = reserved.get(node.name, Need())
        free = node.memory - taken.memory
        if free < need.memory or (node.cpus and node.cpus - taken.cpus < need.cpus - 1e-9):
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
            f"data node {node} is {_PAST.get(found.availability, found.availability)}; stateful services stay "
            "pending until it is active again "
            'or an operator moves the data (docs/swarm.md, "What a node failure does")',
        )
    return None
