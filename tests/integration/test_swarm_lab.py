"""The Swarm lab works as issue 13's driver will need it: placement by node label, images from the lab registry,
and an attachable overlay (dnsrr) carrying traffic from a container on one node to a task on another."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.integration.swarm import SwarmLab, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


@pytest.fixture
def names(swarm_lab: SwarmLab) -> Iterator[tuple[str, str]]:
    suffix = secrets.token_hex(3)
    network, service = f"smoke-net-{suffix}", f"smoke-{suffix}"
    yield network, service
    swarm_lab.docker("service", "rm", service, check=False)

    def network_gone() -> bool:
        swarm_lab.docker("network", "rm", network, check=False)
        return all(network not in swarm_lab.docker("network", "ls", node=n) for n in ("n1", "n2", "n3"))

    wait_until(network_gone, 60, f"network {network} to leave every node")


def _running_tasks(lab: SwarmLab, service: str) -> list[str]:
    out = lab.docker("service", "ps", "-q", "--filter", "desired-state=running", service)
    tasks = [t for t in out.split() if t]
    return [t for t in tasks if lab.inspect(t)[0]["Status"]["State"] == "running"]


def test_two_replicas_on_two_nodes_reachable_across_an_overlay(swarm_lab: SwarmLab, names: tuple[str, str]) -> None:
    network, service = names
    image = f"{swarm_lab.registry}/erp/demo-svc:1"
    swarm_lab.docker("network", "create", "--driver", "overlay", "--attachable", network)
    swarm_lab.docker(
        "service", "create", "--detach", "--quiet", "--name", service, "--replicas", "2",
        "--constraint", "node.labels.lab.node!=n1", "--replicas-max-per-node", "1",
        "--endpoint-mode", "dnsrr", "--network", network, "--stop-grace-period", "1s",
        "--env", "ERP_TENANT=smoke", "--env", "ERP_SERVICE=web", image,
    )  # fmt: skip
    wait_until(lambda: len(_running_tasks(swarm_lab, service)) == 2, 120, f"2 running tasks of {service}")

    tasks = swarm_lab.inspect(*_running_tasks(swarm_lab, service))
    node_of = {n["ID"]: n["Description"]["Hostname"] for n in swarm_lab.inspect(*[t["NodeID"] for t in tasks])}
    placed = sorted(node_of[t["NodeID"]] for t in tasks)
    assert placed == ["n2", "n3"]
    # The service pins the registry's digest, and the workers (which never had the image) pulled it from there.
    spec_image = str(tasks[0]["Spec"]["ContainerSpec"]["Image"])
    assert spec_image.startswith(f"{image}@sha256:")
    pinned = f"{swarm_lab.registry}/erp/demo-svc@{spec_image.split('@', 1)[1]}"
    for node in ("n2", "n3"):
        digests = swarm_lab.docker("image", "inspect", "--format", "{{json .RepoDigests}}", pinned, node=node)
        assert pinned in digests

    on_n2 = next(t for t in tasks if node_of[t["NodeID"]] == "n2")
    attachment = next(a for a in on_n2["NetworksAttachments"] if a["Network"]["Spec"]["Name"] == network)
    address = attachment["Addresses"][0].split("/")[0]
    answer = swarm_lab.docker(
        "run", "--rm", "--network", network, image, "timeout", "10", "wget", "-q", "-O-", f"http://{address}:8080/",
        node="n3",
    )  # fmt: skip
    assert "tenant=smoke service=web" in answer
    assert f"host={on_n2['Status']['ContainerStatus']['ContainerID'][:12]}" in answer
