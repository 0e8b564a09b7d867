"""Moving a tenant's data to another Swarm node, and restoring on a swarm (issue 13), on the real three-node lab.

The move goes through the CLI (``reconciler tenants move-data``) as an operator runs it; the swarm is checked with
the docker CLI on each node, not through the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desired_state.operation_requests import create_request, get_request
from desired_state.operations import list_operations
from reconciler.runtime.operations.requests import process_requests
from tests.integration.harness import Harness
from tests.integration.swarm import SwarmLab, wait_until
from tests.integration.swarm_rig import NODES, node_names, owned, placements, running_tasks, swarm_harness, tenants_yaml

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


@pytest.fixture
def rig(swarm_lab: SwarmLab, owner_id: str, postgres_url: str, tmp_path: Path) -> Iterator[Harness]:
    helper = f"{swarm_lab.registry}/erp/demo-svc:1"  # busybox tar, pulled by each node from the lab registry
    backups = str(tmp_path / "backups")
    with swarm_harness(swarm_lab, owner_id, postgres_url, backup_dir=backups, backup_helper_image=helper) as h:
        h.import_yaml(tenants_yaml("acme", replicas=1))
        assert not h.apply().errors
        yield h


def _stateful_task(lab: SwarmLab, owner: str) -> tuple[str, str]:
    """(node, container id) of the tenant's one running stateful task."""
    b = f"{owner}-acme-b"
    wait_until(lambda: len(running_tasks(lab, b)) == 1, 120, "one running stateful task")
    (task,) = running_tasks(lab, b)
    return node_names(lab)[task["NodeID"]], task["Status"]["ContainerStatus"]["ContainerID"]


def test_moving_data_to_another_node_keeps_it_and_keeps_the_old_volume(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    home = placements(rig)["acme"]
    node, container = _stateful_task(swarm_lab, owner)
    assert node == home
    swarm_lab.docker("exec", container, "sh", "-c", "echo written-on-a > /data/marker", node=home)
    target, drained = (n for n in NODES if n != home)

    # Refusals touch nothing: no --yes, the same node, an unknown node, a drained node.
    assert "--yes" in rig.cli("tenants", "move-data", "acme", "--to", target).stderr
    same = rig.cli("tenants", "move-data", "acme", "--to", home, "--yes")
    assert same.returncode == 1 and "already on node" in same.stderr
    unknown = rig.cli("tenants", "move-data", "acme", "--to", "n9", "--yes")
    assert unknown.returncode == 1 and "unknown node 'n9'" in unknown.stderr and "n1, n2, n3" in unknown.stderr
    swarm_lab.docker("node", "update", "--availability", "drain", drained)
    try:
        refused = rig.cli("tenants", "move-data", "acme", "--to", drained, "--yes")
    finally:
        swarm_lab.docker("node", "update", "--availability", "active", drained)
    assert refused.returncode == 1 and f"node {drained} is drain" in refused.stderr, refused.stderr
    assert placements(rig)["acme"] == home
    assert _stateful_task(swarm_lab, owner) == (home, container)  # never stopped by a refusal

    moved = rig.cli("tenants", "move-data", "acme", "--to", target, "--yes", timeout=400)
    assert moved.returncode == 0, moved.stderr
    assert f"data moved {home} -> {target}" in moved.stdout and "kept on" in moved.stdout

    assert placements(rig)["acme"] == target
    node, container = _stateful_task(swarm_lab, owner)
    assert node == target
    assert swarm_lab.docker("exec", container, "cat", "/data/marker", node=target).strip() == "written-on-a"
    volume = f"{owner}-acme-data"
    assert volume in owned(swarm_lab, owner, "volume", node=home)  # the old volume is kept
    assert volume in owned(swarm_lab, owner, "volume", node=target)
    moves = [o for o in list_operations(rig.rt.engine, "acme") if o.kind == "move"]
    assert [o.status for o in moves] == ["failed", "failed", "failed", "succeeded"], moves
    assert moves[-1].backup_id is not None and f"{home} -> {target}" in (moves[-1].output or "")
    assert not rig.apply().plan.changes  # converged on the new node

    # The same through the request pool (what the web UI inserts): a row without a node is answered with why.
    ops = rig.rt.operations
    assert ops is not None
    nodeless = create_request(rig.rt.engine, "acme", "move")
    request = create_request(rig.rt.engine, "acme", "move", node=drained)
    assert process_requests(ops) == 2
    refused_row = get_request(rig.rt.engine, nodeless)
    assert refused_row is not None and refused_row.status == "failed"
    assert "needs node" in (refused_row.error or "")
    answered = get_request(rig.rt.engine, request)
    assert answered is not None and answered.status == "succeeded", answered
    assert placements(rig)["acme"] == drained
    node, container = _stateful_task(swarm_lab, owner)
    assert node == drained
    assert swarm_lab.docker("exec", container, "cat", "/data/marker", node=drained).strip() == "written-on-a"
    assert volume in owned(swarm_lab, owner, "volume", node=target)  # kept too

    # Moving back onto the node that keeps the old volume is refused: it is never overwritten.
    back = rig.cli("tenants", "move-data", "acme", "--to", home, "--yes")
    assert back.returncode == 1 and "already holds a volume" in back.stderr


def test_a_restore_on_the_swarm_scales_the_stateful_services_down_and_back(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    ops = rig.rt.operations
    assert ops is not None
    home, container = _stateful_task(swarm_lab, owner)
    swarm_lab.docker("exec", container, "sh", "-c", "echo before > /data/marker", node=home)
    record = ops.backup("acme")
    swarm_lab.docker("exec", container, "sh", "-c", "echo after > /data/marker", node=home)

    restored, passed = ops.restore("acme", record.id)
    # Nothing was left running to stop by hand: the service was at 0 replicas (a stopped task would come back).
    assert restored.stopped == []
    assert passed is not None and not passed.errors, passed
    node, container = _stateful_task(swarm_lab, owner)
    assert node == home
    assert swarm_lab.docker("exec", container, "cat", "/data/marker", node=home).strip() == "before"
    assert not rig.apply().plan.changes


def test_a_failed_move_leaves_the_tenant_running_on_its_node(
    swarm_lab: SwarmLab, owner_id: str, postgres_url: str, tmp_path: Path
) -> None:
    missing = f"{swarm_lab.registry}/erp/no-such-helper:1"  # the backup helper cannot start on the old node
    backups = str(tmp_path / "backups")
    with swarm_harness(swarm_lab, owner_id, postgres_url, backup_dir=backups, backup_helper_image=missing) as h:
        h.import_yaml(tenants_yaml("acme", replicas=1))
        assert not h.apply().errors
        home = placements(h)["acme"]
        _, container = _stateful_task(swarm_lab, owner_id)
        swarm_lab.docker("exec", container, "sh", "-c", "echo still-here > /data/marker", node=home)
        target = next(n for n in NODES if n != home)

        failed = h.cli("tenants", "move-data", "acme", "--to", target, "--yes", timeout=400)
        assert failed.returncode == 1
        assert f"data move {home} -> {target} failed, the data stays on {home}" in failed.stderr, failed.stderr
        assert placements(h)["acme"] == home
        (move,) = [o for o in list_operations(h.rt.engine, "acme") if o.kind == "move"]
        assert move.status == "failed" and "the data stays on" in (move.error or "")
        # The pass after the failure scaled the stateful service back up on its node, with its data.
        node, container = _stateful_task(swarm_lab, owner_id)
        assert node == home
        assert swarm_lab.docker("exec", container, "cat", "/data/marker", node=home).strip() == "still-here"
        assert f"{owner_id}-acme-data" not in owned(swarm_lab, owner_id, "volume", node=target)
