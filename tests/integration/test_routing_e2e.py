"""Issue 3 acceptance through the whole reconciler: database → render → observe → diff → apply → Traefik.

Each test runs the real pipeline (``Harness.apply``: one pass in-process, as ``reconciler run`` does on every
trigger) against the real engine, a real PostgreSQL and the session's Traefik, with a client looping requests
through Traefik's web entrypoint for the whole operation. The counts are printed (``pytest -s``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desired_state.status import read_status
from tests.integration.harness import Harness, routed_harness, wait_until
from tests.integration.traffic import LoadLoop

pytestmark = pytest.mark.integration

CATALOG = """\
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25, public: true}
"""


@pytest.fixture
def routed(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any) -> Iterator[Harness]:
    """A reconciler with the routing stage on the session Traefik (its files named after the test's owner)."""
    with routed_harness(owner_id, postgres_url, docker_client, traefik) as h:
        yield h


def domain(h: Harness, tenant: str) -> str:
    return f"{tenant}.{h.owner}.erp.test"


def tenant_yaml(h: Harness, services: str, tenant: str = "acme") -> str:
    return f"{CATALOG}tenants:\n  - name: {tenant}\n    domain: {domain(h, tenant)}\n    services:\n{services}"


def converge(h: Harness, tenant: str = "acme") -> None:
    result = h.apply()
    assert result.ok, result.errors
    status = read_status(h.rt.engine, tenant)
    assert status is not None
    route = status.condition("RouteReady")
    assert route is not None and route.status == "True", route
    assert status.phase == "Ready", status


def load(traefik: Any, h: Harness, tenant: str = "acme") -> LoadLoop:
    return LoadLoop(traefik.web_url, domain(h, tenant))


def test_route_ready_and_replicas_answer(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "      a: {replicas: 2}\n"))
    converge(routed)
    status = read_status(routed.rt.engine, "acme")
    assert status is not None
    route = status.condition("RouteReady")
    assert route is not None and route.reason == "ServersUp" and domain(routed, "acme") in route.message
    with load(traefik, routed) as loop:
        time.sleep(0.5)
    assert not loop.failed and set(loop.replicas) == {"1/0", "1/1"}
    # A pass with nothing to change rewrites nothing and reads the API once.
    router = routed.rt.reconciler.router
    assert router is not None
    writes, reads = router.driver.writes, router.driver.api_reads  # type: ignore[attr-defined]
    assert routed.apply().plan.empty
    assert (router.driver.writes, router.driver.api_reads) == (writes, reads + 1)  # type: ignore[attr-defined]


def test_image_upgrade_of_two_replicas_under_load_loses_no_request(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "      a: {replicas: 2}\n"))
    converge(routed)
    with load(traefik, routed) as loop:
        time.sleep(0.5)
        routed.import_yaml(tenant_yaml(routed, '      a: {replicas: 2, image: "erp/demo-svc:2"}\n'))
        started = time.monotonic()
        converge(routed)
        took = time.monotonic() - started
        time.sleep(0.5)
    print(f"image upgrade (2 replicas) in {took:.1f}s under load: {loop.summary()}")
    assert loop.failed == []
    assert loop.versions["1"] > 0 and loop.versions["2"] > 0
    assert loop.last_ok["version"] == "2"
    assert {c.labels["tenant-reconciler.image"] for c in routed.running("acme")} == {"erp/demo-svc:2"}


def test_scale_down_from_three_to_one_under_load_loses_no_request(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "      a: {replicas: 3}\n"))
    converge(routed)
    with load(traefik, routed) as loop:
        time.sleep(0.5)
        routed.import_yaml(tenant_yaml(routed, "      a: {replicas: 1}\n"))
        converge(routed)
        after = loop.ok
        time.sleep(0.5)
    print(f"scale down 3 -> 1 under load: {loop.summary()}")
    assert loop.failed == []
    assert loop.ok > after
    assert len(routed.running("acme")) == 1
    assert loop.last_ok["replica"] == "0"


def test_killed_replica_others_keep_serving_and_replacement_rejoins(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "      a: {replicas: 2}\n"))
    converge(routed)
    victim = next(c for c in routed.running("acme") if c.labels["tenant-reconciler.replica"] == "1")
    with load(traefik, routed) as loop:
        time.sleep(0.5)
        victim.kill()
        # The others keep serving while nothing has reacted yet.
        before = loop.ok
        time.sleep(1.5)
        served_meanwhile = loop.ok - before
        at_heal = loop.replicas["1/1"]
        converge(routed)
        wait_until(lambda: loop.replicas["1/1"] > at_heal, timeout=10, what="the restarted replica answering")
        time.sleep(0.5)
    print(
        f"replica killed: {served_meanwhile} answers in the 1.5 s before the heal; {loop.summary()}; "
        f"failures {loop.failed[:5]}"
    )
    assert served_meanwhile > 20
    assert victim.name in {c.name for c in routed.running("acme")}


def test_weighted_versions_through_the_pipeline(routed: Harness, traefik: Any) -> None:
    versions = (
        "      a:\n        versions:\n"
        '          - {image: "erp/demo-svc:1", weight: 50}\n'
        '          - {image: "erp/demo-svc:2", weight: 50}\n'
    )
    routed.import_yaml(tenant_yaml(routed, versions))
    converge(routed)
    tracks = sorted(c.labels.get("tenant-reconciler.track", "") for c in routed.running("acme"))
    assert tracks == ["", "b"]
    with load(traefik, routed) as loop:
        wait_until(lambda: loop.ok >= 200, timeout=20, what="200 answers")
    share = loop.versions["1"] / loop.ok
    print(f"50/50 through the reconciler: {loop.summary()}")
    assert not loop.failed and 0.4 <= share <= 0.6

    # Promote version 2: the first track is replaced in place, the second removed, nothing fails.
    with load(traefik, routed) as loop:
        time.sleep(0.3)
        routed.import_yaml(tenant_yaml(routed, '      a: {image: "erp/demo-svc:2"}\n'))
        converge(routed)
        time.sleep(0.5)
    print(f"promotion of version 2 under load: {loop.summary()}")
    assert loop.failed == []
    assert loop.last_ok["version"] == "2"
    assert [c.labels.get("tenant-reconciler.track", "") for c in routed.running("acme")] == [""]


def test_deleted_route_file_is_restored_by_the_next_pass(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "      a: {}\n"))
    converge(routed)
    path = Path(traefik.dynamic_dir) / f"{routed.owner}-acme.yml"
    written = path.read_text()
    path.unlink()
    with load(traefik, routed) as loop:
        wait_until(lambda: loop.failed, timeout=10, what="Traefik dropping the deleted file's route")
    assert {cause for _, cause in loop.failed} == {"HTTP 404"}
    converge(routed)
    status = read_status(routed.rt.engine, "acme")
    assert status is not None
    assert path.read_text() == written
    with load(traefik, routed) as loop:
        time.sleep(0.3)
    assert loop.failed == [] and loop.last_ok["version"] == "1"


def test_stopped_tenant_routes_are_withdrawn(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "      a: {}\n"))
    converge(routed)
    routed.import_yaml(
        tenant_yaml(routed, "      a: {}\n").replace("    services:", "    state: stopped\n    services:")
    )
    # Its route file is the only one we own: withdrawing it is a mass delete unless said explicitly.
    refused = routed.apply()
    assert refused.plan.errors and (Path(traefik.dynamic_dir) / f"{routed.owner}-acme.yml").exists()
    result = routed.apply(allow_mass_delete=True)
    assert result.ok, result.errors
    assert not (Path(traefik.dynamic_dir) / f"{routed.owner}-acme.yml").exists()
    with load(traefik, routed) as loop:
        time.sleep(0.3)
    assert loop.ok == 0 and {cause for _, cause in loop.failed} == {"HTTP 404"}
