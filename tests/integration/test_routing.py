"""Issue 3 acceptance for the routing stage: a real Traefik, real demo containers, real HTTP through 127.0.0.1.

Containers are started here directly with the docker SDK (labelled with the test's owner id, so the cleanup
fixture removes them) on per-tenant networks; ``TraefikRouter`` routes to them exactly as the executor would.
The end-to-end cases through the whole reconciler are in ``test_routing_e2e.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from desired_state.specs import TenantSpec, build_tenant, parse_catalog
from reconciler.core.resources import (
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_TENANT,
    LABEL_TRACK,
    Container,
)
from reconciler.core.subnets import allocate_subnet
from reconciler.drivers.traefik import TraefikDriver
from reconciler.runtime.passes.routing import TraefikRouter
from renderers.traefik import RouteNaming
from tests.integration.traffic import LoadLoop, body_fields

pytestmark = pytest.mark.integration

CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "public": True}})
# A pool of its own, so these networks never take a subnet the reconciler under test would hand out.
TEST_POOL = "10.214.0.0/16"
OTHER_CLIENT = "127.0.0.2"


@dataclass
class Stack:
    """One test's tenants: networks, demo containers, a router writing into the session Traefik."""

    docker: Any
    owner: str
    traefik: Any
    networks: dict[str, str] = field(default_factory=dict)
    router: TraefikRouter = field(init=False)
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        driver = TraefikDriver(self.traefik.dynamic_dir, self.traefik.api_url, prefix=self.owner, owner=self.owner)
        self.router = TraefikRouter(driver, naming=RouteNaming(self.owner), entrypoint="web", owner=self.owner)

    def domain(self, tenant: str) -> str:
        # Unique per test: other tests route through the same session Traefik.
        return f"{tenant}.{self.owner}.erp.test"

    def spec(self, tenant: str, services: dict[str, Any]) -> TenantSpec:
        return build_tenant({"name": tenant, "domain": self.domain(tenant), "services": services}, CATALOG)

    def labels(self, tenant: str) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_TENANT: tenant}

    def network(self, tenant: str) -> str:
        if tenant not in self.networks:
            name = f"{self.owner}-{tenant}"
            used = [
                config["Subnet"]
                for net in self.docker.api.networks()
                for config in (net.get("IPAM") or {}).get("Config") or []
                if config.get("Subnet")
            ]
            subnet = allocate_subnet(name, TEST_POOL, 28, used)
            self.docker.api.create_network(
                name, driver="bridge", labels=self.labels(tenant), ipam={"Config": [{"Subnet": subnet}]}
            )
            self.networks[tenant] = name
        return self.networks[tenant]

    def start(self, tenant: str, replica: int, image: str = "erp/demo-svc:1", track: str = "") -> Container:
        network = self.network(tenant)
        name = f"{self.owner}-{tenant}-a{'-' + track if track else ''}-{replica}-{image.rsplit(':', 1)[1]}"
        labels = self.labels(tenant) | {LABEL_SERVICE: "a", LABEL_REPLICA: str(replica), LABEL_TRACK: track}
        created = self.docker.containers.run(
            image,
            name=name,
            detach=True,
            labels=labels,
            environment={"ERP_TENANT": tenant, "ERP_SERVICE": "a", "ERP_REPLICA": str(replica)},
            network=network,
            stop_signal="SIGKILL",
        )
        created.reload()
        ip = created.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        self._wait_healthy(ip)
        return Container(
            name=name,
            tenant=tenant,
            service="a",
            replica=replica,
            image=image,
            spec_hash="",
            network=network,
            volume="",
            port=0,
            id=created.id,
            ip=ip,
            track=track,
        )

    @staticmethod
    def _wait_healthy(ip: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"http://{ip}:8080/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"demo container at {ip} did not answer /health within {timeout}s")

    def client(self, local: str = "127.0.0.1") -> httpx.Client:
        if local not in self.clients:
            transport = httpx.HTTPTransport(local_address=local)
            self.clients[local] = httpx.Client(
                base_url=self.traefik.web_url, transport=transport, trust_env=False, timeout=5.0
            )
        return self.clients[local]

    def get(self, tenant: str, path: str = "/", local: str = "127.0.0.1") -> httpx.Response:
        return self.client(local).get(path, headers={"Host": self.domain(tenant)})

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        for path in Path(self.traefik.dynamic_dir).glob(f"{self.owner}-*.yml"):
            path.unlink(missing_ok=True)
        self.router.driver.close()


@pytest.fixture
def stack(traefik: Any, docker_client: Any, owner_id: str, demo_images: Any) -> Iterator[Stack]:
    built = Stack(docker_client, owner_id, traefik)
    try:
        yield built
    finally:
        built.close()


def test_replicas_answer_in_turn(stack: Stack) -> None:
    backends = [stack.start("acme", replica) for replica in range(3)]
    spec = stack.spec("acme", {"a": {"replicas": 3}})
    stack.router.publish(spec, backends)
    assert stack.router.ready("acme").reason == "ServersUp"

    replicas = [body_fields(stack.get("acme").text)["replica"] for _ in range(9)]
    print("replica sequence:", " ".join(replicas))
    assert Counter(replicas) == {"0": 3, "1": 3, "2": 3}
    # Round robin: each round of three answers comes from the three replicas (the order within a round varies).
    assert all(len(set(replicas[i : i + 3])) == 3 for i in range(0, len(replicas), 3))
    assert stack.get("nobody").status_code == 404


@pytest.mark.parametrize(("weights", "low", "high"), [((50, 50), 0.40, 0.60), ((90, 10), 0.85, 0.95)])
def test_weighted_versions_split_the_traffic(stack: Stack, weights: tuple[int, int], low: float, high: float) -> None:
    old = stack.start("acme", 0, "erp/demo-svc:1")
    new = stack.start("acme", 0, "erp/demo-svc:2", track="b")
    versions = [
        {"image": "erp/demo-svc:1", "weight": weights[0]},
        {"image": "erp/demo-svc:2", "weight": weights[1]},
    ]
    stack.router.publish(stack.spec("acme", {"a": {"versions": versions}}), [old, new])

    answers = Counter(body_fields(stack.get("acme").text)["version"] for _ in range(200))
    share = answers["1"] / 200
    print(f"weights {weights[0]}/{weights[1]}: version 1 answered {answers['1']}, version 2 answered {answers['2']}")
    assert answers["1"] + answers["2"] == 200
    assert low <= share <= high


def test_allow_list_admits_only_listed_clients(stack: Stack) -> None:
    backend = stack.start("acme", 0)
    stack.router.publish(stack.spec("acme", {"a": {"route": {"allow": ["127.0.0.1/32"]}}}), [backend])
    assert stack.get("acme").status_code == 200
    assert stack.get("acme", local=OTHER_CLIENT).status_code == 403


def test_deny_list_refuses_listed_clients(stack: Stack) -> None:
    backend = stack.start("acme", 0)
    stack.router.publish(stack.spec("acme", {"a": {"route": {"deny": ["127.0.0.2/32"]}}}), [backend])
    assert stack.get("acme").status_code == 200
    assert stack.get("acme", local=OTHER_CLIENT).status_code == 403
    # Another address in 127.0.0.0/8 is not denied.
    assert stack.get("acme", local="127.0.0.3").status_code == 200


def test_path_routes_share_a_host(stack: Stack) -> None:
    acme = stack.start("acme", 0)
    shop = stack.start("shop", 0)
    stack.router.publish(stack.spec("acme", {"a": {}}), [acme])
    host = stack.domain("acme")
    stack.router.publish(stack.spec("shop", {"a": {"route": {"host": host, "path": "/shop"}}}), [shop])
    assert body_fields(stack.get("acme", "/").text)["tenant"] == "acme"
    # The prefix is stripped: the shop's service answers /shop as its root, /shop/health as /health.
    assert body_fields(stack.get("acme", "/shop").text)["tenant"] == "shop"
    assert stack.get("acme", "/shop/health").text == "ok"


def test_deleted_or_edited_file_is_restored(stack: Stack) -> None:
    backends = [stack.start("acme", replica) for replica in range(2)]
    spec = stack.spec("acme", {"a": {"replicas": 2}})
    stack.router.publish(spec, backends)
    path = stack.router.driver.path("acme")
    written = path.read_text()

    path.unlink()
    deadline = time.monotonic() + 10
    while stack.get("acme").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.get("acme").status_code == 404, "Traefik kept the route of a deleted file"

    # The planner sees the file gone (the plan then holds "+ route"); publish writes it again.
    files = stack.router.observe_files()
    assert "acme" not in files
    stack.router.begin_pass(files)
    stack.router.publish(spec, backends)
    assert path.read_text() == written
    assert stack.router.ready("acme").reason == "ServersUp"
    assert stack.get("acme").status_code == 200

    # An edit by hand (here: one server dropped) is undone by the next publish.
    path.write_text(written.replace(f"url: http://{backends[1].ip}:8080", f"url: http://{backends[0].ip}:8080"))
    stack.router.publish(spec, backends)
    assert path.read_text() == written
    replicas = {body_fields(stack.get("acme").text)["replica"] for _ in range(4)}
    assert replicas == {"0", "1"}


def test_no_ready_backend_removes_the_router(stack: Stack) -> None:
    backend = stack.start("acme", 0)
    spec = stack.spec("acme", {"a": {}})
    stack.router.publish(spec, [backend])
    stack.router.publish(spec, [])
    condition = stack.router.ready("acme")
    assert (condition.status, condition.reason) == ("False", "NoBackends")
    assert stack.get("acme").status_code == 404
    assert not stack.router.driver.path("acme").exists()


def test_withdraw_removes_routes_and_file(stack: Stack) -> None:
    backend = stack.start("acme", 0)
    stack.router.publish(stack.spec("acme", {"a": {}}), [backend])
    assert stack.router.owned_tenants() == {"acme"}
    stack.router.withdraw("acme")
    assert stack.router.owned_tenants() == frozenset()
    assert stack.get("acme").status_code == 404


def test_swap_backends_under_load_loses_no_request(stack: Stack) -> None:
    spec = stack.spec("acme", {"a": {"replicas": 2}})
    old = [stack.start("acme", replica, "erp/demo-svc:1") for replica in range(2)]
    stack.router.publish(spec, old)
    with LoadLoop(stack.traefik.web_url, stack.domain("acme")) as load:
        time.sleep(0.5)
        new = [stack.start("acme", replica, "erp/demo-svc:2") for replica in range(2)]
        # The executor's order: new in (seen UP), old out (confirmed gone), then old stopped.
        stack.router.publish(spec, [*old, *new])
        stack.router.publish(spec, new)
        for container in old:
            stack.docker.containers.get(container.name).remove(force=True)
        time.sleep(1.0)
    print(f"swap under load: {load.summary()}")
    assert load.failed == []
    assert load.ok > 50
    assert body_fields(stack.get("acme").text)["version"] == "2"


def test_cross_tenant_connection_fails(stack: Stack) -> None:
    acme = [stack.start("acme", replica) for replica in range(2)]
    globex = stack.start("globex", 0)
    source = stack.docker.containers.get(acme[0].name)

    def fetch(ip: str) -> int:
        # busybox wget's own -T segfaults in this build; `timeout` bounds the attempt instead.
        result = source.exec_run(["timeout", "3", "wget", "-q", "-O", "-", f"http://{ip}:8080/"])
        return int(result.exit_code)

    assert fetch(acme[1].ip or "") == 0, "same-tenant peer must be reachable (the probe itself works)"
    assert fetch(globex.ip or "") != 0, "a container of tenant acme reached a container of tenant globex"
    assert set(stack.docker.containers.get(globex.name).attrs["NetworkSettings"]["Networks"]) == {
        stack.networks["globex"]
    }
