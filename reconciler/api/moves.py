"""Moving a tenant's data to another Swarm node, asked through the API (``POST /tenants/{name}/requests`` with
``kind: move``) or the console's tenant page: the checks that can be made when the request is made, then the
``operation_requests`` row the web UI would insert (kind ``move`` with ``node``, docs/schema.md).

Called by ``api.resources.ask_operation`` and ``console.pages.tenant_action``. ``reconciler run`` carries the row
out (``runtime.operations.data_move``) and checks again what only the swarm knows at that moment (a node drained
or down, the tenant's current node). What is refused here is what that move would refuse from settings and stored
rows alone, read from this process's settings (``reconciler serve`` reads the same environment as ``reconciler
run``): not the swarm engine, no node engines, no backup directory, a node with no engine, the tenant not yet
placed or already on that node. A refusal writes nothing.
"""

from __future__ import annotations

from desired_state.operation_requests import create_request
from desired_state.placements import read_placements
from desired_state.specs import SpecError, shorten
from reconciler.api.context import ApiContext
from reconciler.api.models import NODE_RULE, node_problem
from reconciler.runtime.engine_choice import node_hosts


class MoveNotPossible(Exception):
    """The move cannot be carried out as things stand (HTTP 409): the message says why and what would allow it."""


def move_refusal(context: ApiContext, tenant: str, node: str) -> str | None:
    """Why ``reconciler run`` would refuse to move ``tenant``'s data to ``node``, if that is known now."""
    settings = context.settings
    who = f"tenant {shorten(repr(tenant))}"
    if settings.engine != "swarm":
        return (
            f"{who}: moving data needs RECONCILER_ENGINE=swarm; this reconciler runs tenants on the "
            f"{settings.engine} engine (one host: there is no other node to move to)"
        )
    try:
        hosts = node_hosts(settings.swarm_node_hosts)
    except ValueError as exc:
        return f"{who}: {exc}"
    if not hosts:
        return f"{who}: moving data needs RECONCILER_SWARM_NODE_HOSTS (each node's engine, n1=tcp://...)"
    if settings.backup_dir is None:
        return f"{who}: a move goes through a backup archive: set RECONCILER_BACKUP_DIR"
    if node not in hosts:
        return (
            f"{who}: unknown node {shorten(repr(node))}; the nodes with an engine in RECONCILER_SWARM_NODE_HOSTS "
            f"are {', '.join(sorted(hosts))}"
        )
    placed = read_placements(context.engine).get(tenant)
    if placed is None:
        return f"{who} has no data node yet (no pass placed it on the swarm)"
    if placed == node:
        return f"{who}'s data is already on node {node}"
    return None


def request_move(context: ApiContext, tenant: str, node: str | None, *, priority: int = 0) -> int:
    """Check, then insert the pending ``move`` request; returns its id. Raises ``SpecError`` for a missing or
    malformed node (422, naming the field and the shortened value) and ``MoveNotPossible`` (409)."""
    if node is None or node == "":
        raise SpecError(tenant, "node", node, f"a move needs node, {NODE_RULE}")
    problem = node_problem(node)
    if problem is not None:
        raise SpecError(tenant, "node", node, problem)
    refusal = move_refusal(context, tenant, node)
    if refusal is not None:
        raise MoveNotPossible(refusal)
    return create_request(context.engine, tenant, "move", node=node, priority=priority)
