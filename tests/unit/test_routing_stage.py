"""TraefikRouter when Traefik's API cannot be read: fail fast on changes, report (not fail) when unchanged.

The happy paths run against a real Traefik in tests/integration/test_routing.py; here the API is a closed port
and time is a fake clock, so the waits cost nothing.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.errors import TransientError
from reconciler.core.resources import Container
from reconciler.drivers.traefik import TraefikDriver
from reconciler.runtime.passes.routing import UNREACHABLE_GRACE, TraefikRouter
from renderers.traefik import RouteNaming


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def backend(ip: str) -> Container:
    return Container(
        name=f"erp-acme-a-0-{ip}",
        tenant="acme",
        service="a",
        replica=0,
        image="erp/demo-svc:1",
        spec_hash="",
        network="erp-acme",
        volume="",
        port=0,
        ip=ip,
    )


def test_unreachable_api_fails_changes_fast_and_reports_unchanged_tenants(tmp_path: Path) -> None:
    clock = FakeClock()
    driver = TraefikDriver(tmp_path, f"http://127.0.0.1:{closed_port()}", prefix="erp", owner="ci", timeout=0.5)
    router = TraefikRouter(
        driver, naming=RouteNaming("erp"), entrypoint="web", owner="ci", timeout=15, clock=clock, sleep=clock.sleep
    )
    catalog = parse_catalog({"a": {"image": "erp/demo-svc:1", "public": True}})
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"a": {}}}, catalog)

    with pytest.raises(TransientError):
        router.begin_pass({})
    with pytest.raises(TransientError, match="unreachable") as caught:
        router.publish(spec, [backend("10.0.0.2")])
    assert caught.value.tenant == "acme"
    assert UNREACHABLE_GRACE <= clock.now < 15
    # The file is written all the same: Traefik picks it up when it is back.
    assert driver.path("acme").read_text().count("http://10.0.0.2:8080") == 1

    clock.now = 0.0
    router.publish(spec, [backend("10.0.0.2")])  # unchanged: nothing to confirm
    assert clock.now == 0.0
    condition = router.ready("acme")
    assert (condition.status, condition.reason) == ("Unknown", "TraefikUnreachable")
    assert router.owned_tenants() == {"acme"}


def test_withdrawing_a_tenant_without_routes_needs_no_api(tmp_path: Path) -> None:
    clock = FakeClock()
    driver = TraefikDriver(tmp_path, f"http://127.0.0.1:{closed_port()}", prefix="erp", owner="ci", timeout=0.5)
    router = TraefikRouter(
        driver, naming=RouteNaming("erp"), entrypoint="web", owner="ci", clock=clock, sleep=clock.sleep
    )
    with pytest.raises(TransientError):
        router.begin_pass({})
    router.withdraw("stopped-one")  # no file, nothing published: returns at once
    assert clock.now == 0.0
    # A file of ours is removed, and then its removal must be confirmed: that needs the API.
    driver.write("acme", "# tenant-reconciler owner=ci tenant=acme\nhttp: {}\n")
    with pytest.raises(TransientError, match="unreachable"):
        router.withdraw("acme")
    assert not driver.path("acme").exists()
