"""The placement step of ``plan_pass`` for the Swarm engine: every tenant's data node, then its services (pure).

Called by ``planning.pass_plan`` when ``PlanSettings.swarm`` is set, after rendering and before the diff. A tenant's
data node is, in order: the one stored in the database (``tenant_placements``, given as ``PassContext.placements``),
the one its services are constrained to now (a database restored without the table), or a new choice
(``core.placement.choose_node``) that apply records. A tenant for which no node has the memory gets no change
(its status says why); a tenant whose data node is drained, down or gone keeps its plan (the stateless services
still converge) and gets a ``Placement`` condition, because moving data is never implicit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.core.placement import Need, choose_node, node_problem, reserved_by_node
from reconciler.core.plan import Blocked
from reconciler.core.resources import DesiredTenant, Snapshot
from renderers.services import render_services, stateful_need


@dataclass(frozen=True)
class SwarmSettings:
    """``registry``: where nodes pull tenant images from; ``stateless``: services that mount no data and spread."""

    registry: str | None = None
    stateless: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Placement:
    rendered: dict[str, DesiredTenant]
    # New choices, (tenant, node), for apply to record; ``plan`` records nothing.
    chosen: tuple[tuple[str, str], ...] = ()
    # Tenants no node can hold, with why (they get no change).
    unplaced: dict[str, str] = field(default_factory=dict)
    # Tenants whose data node cannot run their stateful services now (informational: ``Placement`` condition).
    problems: tuple[Blocked, ...] = ()


def place_tenants(
    rendered: Mapping[str, DesiredTenant],
    snapshot: Snapshot,
    placements: Mapping[str, str],
    settings: SwarmSettings,
) -> Placement:
    reserved = reserved_by_node(snapshot.services)
    current = {s.tenant: s.node for s in snapshot.services if s.node is not None}
    out: dict[str, DesiredTenant] = {}
    chosen: list[tuple[str, str]] = []
    unplaced: dict[str, str] = {}
    problems: list[Blocked] = []
    for name, tenant in sorted(rendered.items()):
        if tenant.state == "absent":
            out[name] = tenant
            continue
        need = stateful_need(tenant, settings.stateless)
        node = placements.get(name) or current.get(name)
        if node is None:
            node = choose_node(need, snapshot.nodes, reserved)
            if node is None:
                unplaced[name] = (
                    f"tenant {name!r}: no usable node has {need.memory // 1024**2} MiB of memory and {need.cpus:g} "
                    "CPUs unreserved for its stateful services"
                )
                continue
            # Counted at once, so the next tenant of this pass sees the node fuller.
            reserved[node] = reserved.get(node, Need()) + need
        if name not in placements:
            chosen.append((name, node))
        problem = node_problem(node, snapshot.nodes) if snapshot.nodes else None
        if problem is not None:
            problems.append(Blocked(name, "service", problem[0], f"tenant {name!r}: {problem[1]}"))
        out[name] = render_services(tenant, node=node, stateless=settings.stateless, registry=settings.registry)
    return Placement(rendered=out, chosen=tuple(chosen), unplaced=unplaced, problems=tuple(problems))
