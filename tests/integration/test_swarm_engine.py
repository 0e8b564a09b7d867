"""The Swarm engine driver on the real three-node lab (issue 13): tenants converge across nodes and heal.

Every test drives the real pass (``RECONCILER_ENGINE=swarm``) against the lab's manager, with images from the
lab's registry, and checks the swarm with the docker CLI, not through the driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.harness import Harness
from tests.integration.swarm import SwarmLab
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
