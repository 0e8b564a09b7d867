"""Parallel apply on the real engine (``runtime.passes.executor`` with ``passes.parallel``): one pass converges
several tenants side by side with the creates of each tenant's phase together, and an upgrade of several replicas
under a client looping requests through Traefik loses none.

A counting wrapper around the real Docker driver records each creation's start and end, so the overlap is read
from what the engine was asked to do, not from timings (no timed assertion: this machine is shared).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.core.resources import Container
from tests.integration.harness import Harness, routed_harness
from tests.integration.test_routing_e2e import converge, load, tenant_yaml

pytestmark = pytest.mark.integration

FLEET = """\
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25}
  b: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25}
  c: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25}
tenants:
"""


class CountingDriver:
    """The real driver, with every ``run_container`` timed and the most in flight at once counted."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self._lock = threading.Lock()
        self._busy = 0
        self.peak = 0
        self.runs: list[tuple[str, float, float]] = []  # tenant, start, end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def run_container(self, container: Container) -> None:
        with self._lock:
            self._busy += 1
            self.peak = max(self.peak, self._busy)
        start = time.monotonic()
        try:
            self._driver.run_container(container)
        finally:
            with self._lock:
                self._busy -= 1
                self.runs.append((container.tenant, start, time.monotonic()))


def _count(h: Harness) -> CountingDriver:
    counting = CountingDriver(h.rt.reconciler.executor.docker)
    h.rt.reconciler.executor.docker = counting
    return counting


@pytest.fixture
def parallel(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str) -> Iterator[Harness]:
    h = Harness.create(owner_id, postgres_url, docker_client, apply_workers="3", apply_concurrency="4")
    try:
        yield h
    finally:
        h.stop_run()
        h.rt.engine.dispose()


def test_three_tenants_of_four_containers_converge_side_by_side(parallel: Harness) -> None:
    h = parallel
    services = "    services:\n      a: {replicas: 2}\n      b: {}\n      c: {}\n"
    tenants = "".join(f"  - name: t{i}\n    domain: t{i}.erp.test\n{services}" for i in range(3))
    h.import_yaml(FLEET + tenants)
    counting = _count(h)
    result = h.apply()
    assert result.ok, result.errors
    for i in range(3):
        assert len(h.running(f"t{i}")) == 4
    assert len(counting.runs) == 12
    assert 2 <= counting.peak <= 4, f"creations in flight at once: {counting.peak} (bound 4)"
    across = [
        (a, b)
        for a in counting.runs
        for b in counting.runs
        if a[0] < b[0] and a[1] < b[2] and b[1] < a[2]  # different tenants, overlapping in time
    ]
    assert across, "no two tenants were created at the same time"
    mutations = h.rt.docker.mutations
    assert h.apply().plan.empty and h.rt.docker.mutations == mutations


@pytest.fixture
def routed_parallel(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any
) -> Iterator[Harness]:
    with routed_harness(owner_id, postgres_url, docker_client, traefik, apply_concurrency="4") as h:
        yield h


def test_upgrade_of_three_replicas_started_together_loses_no_request(routed_parallel: Harness, traefik: Any) -> None:
    h = routed_parallel
    h.import_yaml(tenant_yaml(h, "      a: {replicas: 3}\n"))
    converge(h)
    counting = _count(h)
    with load(traefik, h) as loop:
        time.sleep(0.5)
        h.import_yaml(tenant_yaml(h, '      a: {replicas: 3, image: "erp/demo-svc:2"}\n'))
        converge(h)
        time.sleep(0.5)
    print(f"parallel upgrade (3 replicas) under load: {loop.summary()}; creations in flight at most {counting.peak}")
    assert loop.failed == []
    assert counting.peak >= 2, "the new replicas were created one after the other"
    assert loop.last_ok["version"] == "2"
    assert {c.labels["tenant-reconciler.image"] for c in h.running("acme")} == {"erp/demo-svc:2"}
