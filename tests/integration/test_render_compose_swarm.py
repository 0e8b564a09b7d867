"""A rendered Compose file deploys as a stack on the Swarm lab (``docker stack deploy``): the tenant's overlay
with its subnet, replicas spread over nodes, limits, reservations, start-first updates and dnsrr as rendered."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.diff import SubnetPool
from reconciler.core.resources import ContainerDefaults
from renderers.compose import compose_subnets, compose_text, render_compose
from renderers.containers import Naming, render_tenant
from tests.integration.swarm import SwarmLab, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


@pytest.fixture
def stack(swarm_lab: SwarmLab, tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A tenant rendered with a prefix of this test's own, images from the lab registry; the stack removed after."""
    prefix = f"s{secrets.token_hex(3)}"
    catalog = parse_catalog({"web": {"image": f"{swarm_lab.registry}/erp/demo-svc:1", "memory": "40M", "cpus": 0.2}})
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"web": {"replicas": 3}}}, catalog)
    tenant = render_tenant(spec, Naming(prefix=prefix, owner=prefix), defaults=ContainerDefaults())
    subnets = compose_subnets({"acme": tenant}, SubnetPool("10.233.0.0/16", 26))
    path = tmp_path / "acme.compose.yaml"
    path.write_text(compose_text(render_compose(tenant, subnets["acme"]), "acme"))
    name = f"{prefix}-acme"
    yield path, name, subnets["acme"]
    swarm_lab.docker("stack", "rm", name, check=False)
    wait_until(lambda: name not in swarm_lab.docker("network", "ls"), 60, f"network {name} to go")


def test_stack_deploy_runs_the_rendered_tenant(swarm_lab: SwarmLab, stack: tuple[Path, str, str]) -> None:
    path, name, subnet = stack
    swarm_lab.docker("stack", "deploy", "--compose-file", str(path), name)
    service = f"{name}_web"

    def running() -> list[str]:
        out = swarm_lab.docker(
            "stack", "ps", name, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"
        )
        return [line.split()[0] for line in out.splitlines() if " Running" in line]

    wait_until(lambda: len(running()) == 3, 120, f"3 running tasks of {service}")
    assert len(set(running())) >= 2  # spread over nodes
    spec = json.loads(swarm_lab.docker("service", "inspect", "--format", "{{json .Spec}}", service))
    limits = {"NanoCPUs": 200_000_000, "MemoryBytes": 40 * 1024**2}
    assert spec["TaskTemplate"]["Resources"] == {"Limits": limits | {"Pids": 512}, "Reservations": limits}
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    network = json.loads(swarm_lab.docker("network", "inspect", "--format", "{{json .}}", name))
    assert network["Driver"] == "overlay"
    assert [c["Subnet"] for c in network["IPAM"]["Config"]] == [subnet]
