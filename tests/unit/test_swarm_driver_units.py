"""The Swarm driver's pure parts: error translation, list answers read into core values, the service spec."""

from __future__ import annotations

import docker.errors
import requests
import requests.exceptions

from reconciler.core.errors import PermanentError, SubnetTaken, TransientError
from reconciler.core.resources import HealthCheck
from reconciler.core.services import Service
from reconciler.drivers.swarm.errors import translate
from reconciler.drivers.swarm.observe import node_from_list, service_from_list, task_as_container
from reconciler.drivers.swarm.spec import StopPolicy, service_spec


def _api_error(status: int, text: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("x", response=response, explanation=text)


def test_errors_are_permanent_only_when_retrying_cannot_help() -> None:
    bad = translate(_api_error(400, "invalid mount config"), "create service", "erp-acme-a", "acme")
    assert isinstance(bad, PermanentError) and "(swarm, permanent)" in str(bad) and "erp-acme-a" in str(bad)
    busy = translate(_api_error(503, "rpc error: the swarm does not have a leader"), "update service", "s", "acme")
    assert isinstance(busy, TransientError) and not isinstance(busy, PermanentError)
    down = translate(requests.exceptions.ConnectionError("refused"), "list", "services", None)
    assert isinstance(down, TransientError) and "manager not reachable" in str(down)
    taken = translate(_api_error(403, "Pool overlaps with other one on this address space"), "create network", "n", "a")
    assert isinstance(taken, SubnetTaken)


RAW_SERVICE = {
    "ID": "svc1",
    "Version": {"Index": 42},
    "Spec": {
        "Name": "erp-acme-b",
        "Labels": {
            "tenant-reconciler.managed": "true",
            "tenant-reconciler.owner": "o",
            "tenant-reconciler.tenant": "acme",
            "tenant-reconciler.service": "b",
            "tenant-reconciler.spec-hash": "abc",
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "reg:5000/erp/demo-svc:1@sha256:0123",
                "Env": ["ERP_PORT=8080", "A=1=2", "garbage"],
                "Mounts": [{"Type": "volume", "Source": "erp-acme-data", "Target": "/data"}],
            },
            "Resources": {"Limits": {"MemoryBytes": 33554432, "NanoCPUs": 250000000}},
            "Placement": {"Constraints": ["node.hostname==n2"]},
            "Networks": [{"Target": "netid"}],
        },
        "Mode": {"Replicated": {"Replicas": 3}},
    },
}


def test_a_listed_service_reads_back_as_the_value_the_planner_renders() -> None:
    service = service_from_list(RAW_SERVICE, {"netid": "erp-acme"})
    assert (service.name, service.tenant, service.service, service.track) == ("erp-acme-b", "acme", "b", "")
    assert service.image == "reg:5000/erp/demo-svc:1"  # the pinned digest is Swarm's, not the spec's
    assert (service.replicas, service.node, service.volume, service.network) == (3, "n2", "erp-acme-data", "erp-acme")
    assert (service.memory, service.cpus, service.port) == (32 * 1024**2, 0.25, 8080)
    assert service.env == (("A", "1=2"), ("ERP_PORT", "8080"))
    assert (service.id, service.version) == ("svc1", 42)
    task = task_as_container(
        {
            "ID": "t1",
            "Slot": 2,
            "NodeID": "nid",
            "Status": {"State": "running"},
            "Spec": {"ContainerSpec": {"Image": "x", "Labels": {"tenant-reconciler.spec-hash": "abc"}}},
            "NetworksAttachments": [{"Network": {"Spec": {"Name": "erp-acme"}}, "Addresses": ["10.213.0.5/26"]}],
        },
        service,
        {"nid": "n2"},
    )
    assert (task.replica, task.ip, task.node, task.running, task.spec_hash) == (2, "10.213.0.5", "n2", True, "abc")


def test_a_node_reads_its_capacity_and_state() -> None:
    node = node_from_list(
        {
            "ID": "nid",
            "Spec": {"Availability": "drain", "Labels": {"tenant-reconciler.data": "true"}},
            "Description": {"Hostname": "n2", "Resources": {"MemoryBytes": 1024, "NanoCPUs": 2_000_000_000}},
            "Status": {"State": "ready"},
        }
    )
    assert (node.name, node.memory, node.cpus, node.usable) == ("n2", 1024, 2.0, False)


def test_the_spec_says_what_every_tenant_service_gets() -> None:
    service = Service(
        name="erp-acme-b", tenant="acme", service="b", track="", image="reg/erp:1", replicas=2, spec_hash="h",
        network="erp-acme", volume="erp-acme-data", node="n2", port=8080, memory=64 * 1024**2, cpus=0.5,
        env=(("ERP_PORT", "8080"),), labels=(("tenant-reconciler.owner", "o"),), pids_limit=512,
        healthcheck=HealthCheck("wget -q http://127.0.0.1:8080/health", interval=2, timeout=1, retries=3),
    )  # fmt: skip
    spec = service_spec(service, StopPolicy("SIGUSR1", 6))
    template = spec["task_template"]
    assert spec["mode"]["replicated"]["Replicas"] == 2 and spec["endpoint_spec"]["Mode"] == "dnsrr"
    assert spec["update_config"]["Order"] == "start-first" and spec["update_config"]["FailureAction"] == "rollback"
    assert spec["update_config"]["Parallelism"] == 1 and spec["rollback_config"]["Order"] == "start-first"
    assert template["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * 1024**2, "Pids": 512}
    assert template["Resources"]["Reservations"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * 1024**2}
    assert template["Placement"]["Constraints"] == ["node.hostname==n2"]
    assert template["RestartPolicy"]["Condition"] == "any"
    container = template["ContainerSpec"]
    assert container["StopSignal"] == "SIGUSR1" and container["StopGracePeriod"] == 6_000_000_000
    assert container["Mounts"][0]["Source"] == "erp-acme-data" and container["Mounts"][0]["Target"] == "/data"
    assert container["Healthcheck"]["Test"][0] == "CMD-SHELL" and container["Env"] == ["ERP_PORT=8080"]
