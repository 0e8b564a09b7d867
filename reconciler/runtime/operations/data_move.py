"""Moving a tenant's data to another Swarm node: ``reconciler tenants move-data TENANT --to NODE --yes``.

Beside the reconcile pipeline, like the restore; called by the CLI (``reconciler.cli``) and for a ``move`` request
(``operations.requests``, the target in the request's ``node``). Never implicit: a
pass never moves data (``core.placement``). The move, held as a running ``move`` operation (passes leave the
tenant alone), is: the tenant's stateful services scaled to 0 (``operations.swarm_quiesce``), a backup of the data
volume by a helper on the old node (the usual backup path: ``runtime.data_node`` runs it there, and the archive is
recorded in ``backups``), the volume created on the new node with the same labels and the archive extracted into
it by a helper there (the restore's script), then the stored placement moved (``move_placement``) and the
operation finished; a pass then re-creates the stateful tasks on the new node. The old node's volume is kept: only
an operator removes it (``docker volume rm`` on that node). A move that fails before the placement changed leaves
the tenant on its old node, and the pass that follows scales its services back there.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from desired_state.operations import finish_operation, record_operation, start_operation
from desired_state.placements import move_placement, read_placements
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.resources import Volume
from reconciler.drivers.docker import DockerDriver
from reconciler.drivers.swarm import SwarmDriver
from reconciler.runtime.data_node import DataNodeDocker
from reconciler.runtime.operations.archives import archive_path
from reconciler.runtime.operations.common import helper_labels, helper_name
from reconciler.runtime.operations.restore import RESTORE_SCRIPT
from reconciler.runtime.operations.swarm_quiesce import STOP_TIMEOUT, stop_stateful

if TYPE_CHECKING:
    from reconciler.runtime.operations.tenant_ops import TenantOps
    from reconciler.runtime.passes.reconcile import PassResult
    from reconciler.runtime.wiring import Runtime

log = logging.getLogger("reconciler.operations")


class MoveRefused(PermanentError):
    """A move was refused before anything was touched (not a swarm, unknown or unusable node, same node)."""


@dataclass
class MoveResult:
    operation_id: int
    from_node: str
    to_node: str
    backup_id: int
    scaled: list[str]
    pass_result: PassResult | None


@dataclass(frozen=True)
class _Nodes:
    swarm: SwarmDriver
    old: str
    source: DockerDriver
    target: DockerDriver


def move_data(
    ops: TenantOps, tenant: str, node: str, *, trigger: str = "manual", request_id: int | None = None
) -> MoveResult:
    """Move the tenant's data volume to ``node``; raises ``MoveRefused`` (nothing done) or ``ReconcileError``."""
    try:
        nodes = _checked(ops, tenant, node)
    except MoveRefused as exc:
        record_operation(ops.engine, tenant, "move", "failed", trigger=trigger, request_id=request_id, error=str(exc))
        log.error("tenant=%s data move refused: %s", tenant, exc, extra={"tenant": tenant})
        raise
    volume = ops.naming.volume(tenant)
    operation_id = start_operation(ops.engine, tenant, "move", trigger=trigger, request_id=request_id)
    log.warning(
        "tenant=%s data move %s -> %s started (operation %d)",
        tenant,
        nodes.old,
        node,
        operation_id,
        extra={"tenant": tenant},
    )
    scaled: list[str] = []
    try:
        scaled = stop_stateful(nodes.swarm, nodes.source, tenant, volume, STOP_TIMEOUT)
        backup = ops.backups.backup(tenant, "move")
        assert ops.config.backup_dir is not None  # checked before
        path = archive_path(ops.config.backup_dir, backup)
        uid = next((v.uid for v in nodes.source.observe(tenant).volumes if v.name == volume), None)
        nodes.target.create_volume(Volume(name=volume, tenant=tenant, node=node), ops.naming.base_labels(tenant, uid))
        with path.open("rb") as archive:
            result = nodes.target.run_helper(
                ops.config.helper_image,
                ["sh", "-c", RESTORE_SCRIPT, "restore", f".restore-{operation_id}"],
                name=helper_name(ops.naming, tenant, "move"),
                volume=volume,
                labels=helper_labels(ops.naming, tenant, "move"),
                timeout=ops.config.backup_timeout,
                stdin=archive,
            )
        if not result.ok:
            raise TransientError(f"restore helper on {node} exited with {result.exit_code}: {result.output.strip()}")
        move_placement(ops.engine, tenant, node)
    except (ReconcileError, OSError) as exc:
        error = f"data move {nodes.old} -> {node} failed, the data stays on {nodes.old}: {exc}"
        finish_operation(ops.engine, operation_id, "failed", error=error)
        ops.relay(tenant, error)
        log.error("tenant=%s %s", tenant, error, extra={"tenant": tenant})
        ops.resume(tenant)
        raise ReconcileError(error, tenant=tenant) from exc
    output = (
        f"data moved {nodes.old} -> {node} through backup {backup.id}; services scaled to 0: "
        f"{', '.join(scaled) or 'none'}; the old volume {volume} is kept on {nodes.old}"
    )
    finish_operation(ops.engine, operation_id, "succeeded", backup_id=backup.id, output=output)
    log.warning("tenant=%s %s", tenant, output, extra={"tenant": tenant})
    passed = ops.resume(tenant)
    return MoveResult(operation_id, nodes.old, node, backup.id, scaled, passed)


def _checked(ops: TenantOps, tenant: str, node: str) -> _Nodes:
    swarm, docker = ops.reconciler.docker, ops.docker
    if not isinstance(swarm, SwarmDriver) or not isinstance(docker, DataNodeDocker):
        raise MoveRefused(
            "moving data needs RECONCILER_ENGINE=swarm and RECONCILER_SWARM_NODE_HOSTS (each node's engine)",
            tenant=tenant,
        )
    if ops.config.backup_dir is None:
        raise MoveRefused("a move goes through a backup archive: set RECONCILER_BACKUP_DIR", tenant=tenant)
    old = read_placements(ops.engine).get(tenant)
    if old is None:
        raise MoveRefused(f"tenant {tenant!r} has no data node yet (no pass placed it on the swarm)", tenant=tenant)
    if old == node:
        raise MoveRefused(f"tenant {tenant!r}'s data is already on node {node}", tenant=tenant)
    known = {n.name: n for n in swarm.observe(tenant).nodes}
    found = known.get(node)
    if found is None:
        raise MoveRefused(
            f"unknown node {node[:60]!r}; the swarm's nodes are {', '.join(sorted(known))}", tenant=tenant
        )
    if not found.usable:
        raise MoveRefused(
            f"node {node} is {found.availability} and {found.state}; only an active, ready node can take data",
            tenant=tenant,
        )
    source, target = docker.node_engine(old), docker.node_engine(node)
    if source is None or target is None:
        missing = old if source is None else node
        raise MoveRefused(f"RECONCILER_SWARM_NODE_HOSTS names no engine for node {missing}", tenant=tenant)
    volume = ops.naming.volume(tenant)
    if any(v.name == volume for v in target.observe(tenant).volumes):
        raise MoveRefused(
            f"node {node} already holds a volume {volume} (kept by an earlier move?); it is never overwritten: "
            f"remove it on {node} (`docker volume rm {volume}`) after checking it, then move again",
            tenant=tenant,
        )
    return _Nodes(swarm, old, source, target)


def run_move_command(tenant: str, node: str, confirmed: bool, runtime: Runtime) -> int:
    """``reconciler tenants move-data TENANT --to NODE [--yes]``: without ``--yes`` it only says what would happen."""
    ops = runtime.operations
    assert ops is not None
    if not confirmed:
        print(
            f"error: moving tenant {tenant!r}'s data to {node} stops its stateful services until the data is "
            "restored there; add --yes to confirm",
            file=sys.stderr,
        )
        return 1
    runtime.alerts.start()
    try:
        result = move_data(ops, tenant, node)
    except ReconcileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.alerts.stop()
    volume = ops.naming.volume(tenant)
    print(f"tenant {tenant}: data moved {result.from_node} -> {result.to_node} (backup {result.backup_id})")
    print(f"the old volume {volume} is kept on {result.from_node}; remove it there with `docker volume rm {volume}`")
    error = result.pass_result.errors.get(tenant) if result.pass_result is not None else None
    if error:
        print(f"error: starting {tenant} on {result.to_node}: {error}", file=sys.stderr)
        return 1
    return 0
