"""The Swarm engine driver on the real three-node lab (issue 13): tenants converge across nodes and heal.

Every test drives the real pass (``RECONCILER_ENGINE=swarm``) against the lab's manager, with images from the
lab's registry, and checks the swarm with the docker CLI, not through the driver.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Harness
from tests.integration.swarm import SwarmLab, wait_until
from tests.integration.swarm_rig import (
    node_names,
    placements,
    running_tasks,
    service_specs,
    swarm_harness,
    tenants_yaml,
)

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


@pytest.fixture
def rig(swarm_lab: SwarmLab, owner_id: str, postgres_url: str) -> Iterator[Harness]:
    with swarm_harness(swarm_lab, owner_id, postgres_url) as h:
        yield h


def test_tenants_converge_across_nodes_with_their_data_on_one_node(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    rig.import_yaml(tenants_yaml("acme", "beta", replicas=3))
    result = rig.apply()
    assert not result.errors, result.errors

    specs = service_specs(swarm_lab, owner)
    assert sorted(specs) == [f"{owner}-{t}-{s}" for t in ("acme", "beta") for s in ("a", "b")]
    a = specs[f"{owner}-acme-a"]["Spec"]
    template = a["TaskTemplate"]
    assert a["Mode"]["Replicated"]["Replicas"] == 3
    assert template["ContainerSpec"]["Image"].startswith(f"{swarm_lab.registry}/erp/demo-svc:1")
    assert template["Resources"]["Limits"]["MemoryBytes"] == 32 * 1024**2
    assert template["Resources"]["Reservations"]["MemoryBytes"] == 32 * 1024**2
    assert a["UpdateConfig"]["Order"] == "start-first" and a["UpdateConfig"]["FailureAction"] == "rollback"
    assert a["UpdateConfig"]["Parallelism"] == 1
    assert a["EndpointSpec"]["Mode"] == "dnsrr"
    assert template["RestartPolicy"]["Condition"] == "any"
    assert "Healthcheck" in template["ContainerSpec"]
    assert a["Labels"]["tenant-reconciler.owner"] == owner

    names = node_names(swarm_lab)
    stored = placements(rig)
    for tenant in ("acme", "beta"):
        stateful = running_tasks(swarm_lab, f"{owner}-{tenant}-b")
        assert [names[t["NodeID"]] for t in stateful] == [stored[tenant]]
        volumes = swarm_lab.docker("volume", "ls", "-q", "--filter", f"label=tenant-reconciler.owner={owner}",
                                   node=stored[tenant]).split()  # fmt: skip
        assert f"{owner}-{tenant}-data" in volumes
        network = json.loads(swarm_lab.docker("network", "inspect", f"{owner}-{tenant}"))[0]
        assert network["Driver"] == "overlay" and network["Attachable"] is True
        assert network["IPAM"]["Config"][0]["Subnet"].startswith("10.213.")
    # The stateless service spreads: its three tasks are not all on one node.
    spread = {names[t["NodeID"]] for t in running_tasks(swarm_lab, f"{owner}-acme-a")}
    assert len(spread) > 1, spread

    # Converged: the next plan is empty.
    assert rig.rt.reconciler.compute().plan.empty


def _running_count(lab: SwarmLab, service: str) -> int:
    return len(running_tasks(lab, service))


def test_a_killed_task_is_replaced_and_hand_edits_are_put_back(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    a, b = f"{owner}-acme-a", f"{owner}-acme-b"
    rig.import_yaml(tenants_yaml("acme", replicas=2))
    assert not rig.apply().errors

    # A task killed on its node: Swarm's restart policy replaces it (the reconciler has nothing to do).
    victim = running_tasks(swarm_lab, a)[0]
    node = node_names(swarm_lab)[victim["NodeID"]]
    swarm_lab.docker("kill", victim["Status"]["ContainerStatus"]["ContainerID"], node=node)
    wait_until(
        lambda: (
            _running_count(swarm_lab, a) == 2 and victim["ID"] not in {t["ID"] for t in running_tasks(swarm_lab, a)}
        ),
        90,
        "the killed task to be replaced",
    )
    assert rig.rt.reconciler.compute().plan.empty

    # Edits by hand: scaled, image changed, limits changed, and one service removed.
    swarm_lab.docker("service", "update", "--detach", "--replicas", "4", "--limit-memory", "48M", a)
    swarm_lab.docker("service", "rm", b)
    planned = rig.rt.reconciler.compute().plan
    found = {(c.action.value, c.kind, c.name): c.reason for c in planned.changes}
    assert ("+", "service", b) in found, found
    reason = found[("~", "service", a)]
    assert "replicas 4 -> 2" in reason and "limits changed outside the reconciler" in reason
    plan_text = rig.cli("plan")
    assert f"+ service {b}" in plan_text.stdout and f"~ service {a}" in plan_text.stdout, plan_text.stderr

    assert not rig.apply().errors
    spec = service_specs(swarm_lab, owner)
    assert spec[a]["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
    assert spec[a]["Spec"]["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 32 * 1024**2
    assert _running_count(swarm_lab, b) == 1
    wait_until(lambda: _running_count(swarm_lab, a) == 2, 60, "the scale-down to 2 tasks")
    assert rig.rt.reconciler.compute().plan.empty
    assert "No changes" in rig.cli("plan").stdout or "0 to create, 0 to update" in rig.cli("plan").stdout


def test_a_no_op_pass_makes_the_same_few_calls_whatever_the_number_of_tenants(
    swarm_lab: SwarmLab, rig: Harness
) -> None:
    def no_op_calls() -> dict[str, int]:
        driver = rig.rt.reconciler.docker
        before = dict(driver.calls)
        result = rig.apply()
        assert not result.errors and result.plan.empty
        return {k: v - before.get(k, 0) for k, v in driver.calls.items() if v - before.get(k, 0)}

    rig.import_yaml(tenants_yaml("t1", replicas=1))
    assert not rig.apply().errors
    few = no_op_calls()
    rig.import_yaml(tenants_yaml("t1", "t2", "t3", "t4", "t5", replicas=1))
    assert not rig.apply().errors
    wait_until(lambda: rig.rt.reconciler.compute().plan.empty, 60, "the five tenants to converge")
    many = no_op_calls()
    # services, tasks, networks, nodes, and one volume listing per node; no mutation.
    assert few == many == {"list": 4 + 3}, (few, many)


def _conditions(h: Harness, tenant: str) -> dict[str, tuple[str, str]]:
    from desired_state.status import read_statuses

    status = next(s for s in read_statuses(h.rt.engine) if s.tenant == tenant)
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_the_data_volume_is_found_again_after_the_reconciler_restarts(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    b = f"{owner}-acme-b"
    rig.import_yaml(tenants_yaml("acme", replicas=1))
    assert not rig.apply().errors
    home = placements(rig)["acme"]
    (task,) = running_tasks(swarm_lab, b)
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    swarm_lab.docker("exec", container, "sh", "-c", "echo kept > /data/marker", node=home)

    # Every service of the tenant gone, and another node made the only one labelled for data: a fresh choice
    # would now pick it. The restarted reconciler must go back to the stored node, where the volume is.
    for service in (f"{owner}-acme-a", b):
        swarm_lab.docker("service", "rm", service)
    other = next(n for n in ("n1", "n2", "n3") if n != home)
    swarm_lab.docker("node", "update", "--label-add", "tenant-reconciler.data=true", other)
    try:
        rig.rebuild()
        assert not rig.apply().errors
        assert placements(rig)["acme"] == home
        wait_until(lambda: len(running_tasks(swarm_lab, b)) == 1, 90, "the stateful task back")
        (task,) = running_tasks(swarm_lab, b)
        assert node_names(swarm_lab)[task["NodeID"]] == home
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        assert swarm_lab.docker("exec", container, "cat", "/data/marker", node=home).strip() == "kept"
    finally:
        swarm_lab.docker("node", "update", "--label-rm", "tenant-reconciler.data", other)


def test_a_drained_node_moves_stateless_tasks_and_reports_stateful_tenants(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    rig.import_yaml(tenants_yaml("acme", replicas=3))
    assert not rig.apply().errors
    home = placements(rig)["acme"]
    assert _conditions(rig, "acme").get("Placement") is None
    swarm_lab.docker("node", "update", "--availability", "drain", home)
    try:
        names = node_names(swarm_lab)
        a = f"{owner}-acme-a"
        wait_until(
            lambda: (
                len(running_tasks(swarm_lab, a)) == 3
                and all(names[t["NodeID"]] != home for t in running_tasks(swarm_lab, a))
            ),
            120,
            f"the stateless tasks to leave {home}",
        )
        result = rig.apply()
        assert not result.plan.changes  # nothing moves the data by itself
        assert _conditions(rig, "acme")["Placement"] == ("False", "NodeDrained")
        assert placements(rig)["acme"] == home
        # The stateful task waits for its node (pending, never started elsewhere).
        assert running_tasks(swarm_lab, f"{owner}-acme-b") == []
    finally:
        swarm_lab.docker("node", "update", "--availability", "active", home)
    wait_until(lambda: len(running_tasks(swarm_lab, f"{owner}-acme-b")) == 1, 120, "the stateful task back on its node")
    rig.apply()
    assert "Placement" not in _conditions(rig, "acme")


def test_tenant_overlays_are_isolated_across_nodes(swarm_lab: SwarmLab, rig: Harness) -> None:
    owner = rig.owner
    rig.import_yaml(tenants_yaml("acme", "beta", replicas=3))
    assert not rig.apply().errors
    names = node_names(swarm_lab)

    def address(task: dict[str, object], network: str) -> str:
        attachments = task["NetworksAttachments"]  # type: ignore[index]
        found = next(a for a in attachments if a["Network"]["Spec"]["Name"] == network)  # type: ignore[attr-defined]
        return str(found["Addresses"][0]).split("/")[0]

    acme = running_tasks(swarm_lab, f"{owner}-acme-a")
    beta = running_tasks(swarm_lab, f"{owner}-beta-a")
    # A probe on acme's overlay, on a node other than the task it asks: the overlay carries it across nodes.
    target = acme[0]
    probe_node = next(n for n in ("n1", "n2", "n3") if n != names[target["NodeID"]])
    image = f"{swarm_lab.registry}/erp/demo-svc:1"

    def fetch(network: str, ip: str) -> str:
        return swarm_lab.docker(
            "run", "--rm", "--network", network, image, "sh", "-c",
            f"timeout 4 wget -q -O- http://{ip}:8080/ || echo UNREACHABLE", node=probe_node,
        )  # fmt: skip

    assert "tenant=acme" in fetch(f"{owner}-acme", address(target, f"{owner}-acme"))
    for task in beta:
        assert "UNREACHABLE" in fetch(f"{owner}-acme", address(task, f"{owner}-beta"))


def test_a_backup_runs_its_helper_on_the_data_node(
    swarm_lab: SwarmLab, owner_id: str, postgres_url: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    helper = f"{swarm_lab.registry}/erp/demo-svc:1"  # busybox tar, pulled by the node from the lab registry
    with swarm_harness(swarm_lab, owner_id, postgres_url, backup_dir=str(backups), backup_helper_image=helper) as h:
        h.import_yaml(tenants_yaml("acme", replicas=1))
        assert not h.apply().errors
        home = placements(h)["acme"]
        (task,) = running_tasks(swarm_lab, f"{owner_id}-acme-b")
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        swarm_lab.docker("exec", container, "sh", "-c", "echo on-the-data-node > /data/marker", node=home)
        assert h.rt.operations is not None
        record = h.rt.operations.backup("acme")
        assert record.status == "succeeded" and record.file_name, record
        archive = next(backups.rglob(record.file_name))
        with tarfile.open(archive) as tar:
            member = tar.extractfile("./marker")
            assert member is not None and member.read() == b"on-the-data-node\n"


def test_reconciler_run_puts_a_hand_scaled_service_back(swarm_lab: SwarmLab, rig: Harness, tmp_path: Path) -> None:
    owner = rig.owner
    a = f"{owner}-acme-a"
    rig.import_yaml(tenants_yaml("acme", replicas=2))
    rig.start_run(log_path=tmp_path / "run.log")
    wait_until(
        lambda: a in service_specs(swarm_lab, owner) and len(running_tasks(swarm_lab, a)) == 2,
        120,
        "reconciler run to converge the tenant",
    )
    swarm_lab.docker("service", "scale", "--detach", f"{a}=5")

    def replicas() -> int:
        return int(service_specs(swarm_lab, owner)[a]["Spec"]["Mode"]["Replicated"]["Replicas"])

    wait_until(lambda: replicas() == 2, 60, "the resync to scale the service back to 2")
    assert rig.stop_run() == 0
    assert "replicas 5 -> 2" in (tmp_path / "run.log").read_text()


def test_services_get_the_container_defaults_and_hand_edits_of_them_are_put_back(
    swarm_lab: SwarmLab, rig: Harness
) -> None:
    owner = rig.owner
    a = f"{owner}-acme-a"
    rig.import_yaml(tenants_yaml("acme", replicas=1))
    assert not rig.apply().errors

    # The Docker engine's defaults (RECONCILER_CONTAINER_*): 10m x 3 json-file rotation and 512 pids.
    template = service_specs(swarm_lab, owner)[a]["Spec"]["TaskTemplate"]
    assert template["LogDriver"] == {"Name": "json-file", "Options": {"max-file": "3", "max-size": "10m"}}
    assert template["Resources"]["Limits"]["Pids"] == 512
    # And the task's container on its node really has them.
    (task,) = running_tasks(swarm_lab, a)
    node = node_names(swarm_lab)[task["NodeID"]]
    [container] = json.loads(swarm_lab.docker("inspect", task["Status"]["ContainerStatus"]["ContainerID"], node=node))
    assert container["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert container["HostConfig"]["PidsLimit"] == 512
    # This lab's engines speak API 1.41: a service spec cannot carry no-new-privileges, and the plan says so.
    assert "NoNewPrivileges" not in json.dumps(template)
    plan_text = rig.cli("plan")
    assert "Note: no-new-privileges is not applied to Swarm services" in plan_text.stderr, plan_text.stderr

    # Edited by hand: named in the plan and put back by the next pass.
    # (The CLI changes log options only with --log-driver given, and then replaces them all.)
    edit = ("--log-driver", "json-file", "--log-opt", "max-size=1g", "--limit-pids", "100")
    swarm_lab.docker("service", "update", "--detach", *edit, a)
    planned = rig.rt.reconciler.compute().plan
    found = {(c.action.value, c.kind, c.name): c.reason for c in planned.changes}
    reason = found[("~", "service", a)]
    assert "pids limit 100 -> 512" in reason and "log rotation 1g x1 -> 10m x3" in reason, reason
    assert not rig.apply().errors
    template = service_specs(swarm_lab, owner)[a]["Spec"]["TaskTemplate"]
    assert template["LogDriver"]["Options"] == {"max-file": "3", "max-size": "10m"}
    assert template["Resources"]["Limits"]["Pids"] == 512
    assert rig.rt.reconciler.compute().plan.empty
