"""Routing on the Swarm engine (issue 13): Traefik reaches the tasks on the tenant overlay by address, and a tenant
upgraded under a request loop loses no request while Swarm rolls its tasks start-first."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import Harness
from tests.integration.swarm import SwarmLab, wait_until
from tests.integration.swarm_rig import running_tasks, swarm_harness, tenants_yaml
from tests.integration.swarm_traefik import LabTraefik, lab_traefik

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


@pytest.fixture
def routed(
    swarm_lab: SwarmLab, owner_id: str, postgres_url: str, tmp_path: Path
) -> Iterator[tuple[Harness, LabTraefik]]:
    with (
        lab_traefik(swarm_lab, owner_id, tmp_path) as traefik,
        swarm_harness(
            swarm_lab,
            owner_id,
            postgres_url,
            traefik_dynamic_dir=str(traefik.dynamic_dir),
            traefik_api_url=traefik.api_url,
            # erp-serve exits at once on SIGTERM; as PID 1 it ignores SIGUSR1, so a replaced task serves until routing
            # has dropped it (docs/swarm.md "Routing").
            swarm_stop_signal="SIGUSR1",
            swarm_stop_grace="6",
            swarm_router_container=traefik.name,
        ) as h,
    ):
        yield h, traefik


class Loop:
    """GET the tenant's front end as fast as one client can, counting answers by status (errors as 0)."""

    def __init__(self, url: str, host: str) -> None:
        self.url, self.host = url, host
        self.statuses: Counter[int] = Counter()
        self.bodies: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                try:
                    answer = client.get(self.url, headers={"Host": self.host})
                    self.statuses[answer.status_code] += 1
                    self.bodies[answer.text.split(" version=")[-1].split(" ")[0]] += 1
                except httpx.HTTPError:
                    self.statuses[0] += 1

    def __enter__(self) -> Loop:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_an_upgrade_through_traefik_loses_no_request(swarm_lab: SwarmLab, routed: tuple[Harness, LabTraefik]) -> None:
    h, traefik = routed
    owner = h.owner
    # One pass: the overlay is created and Traefik joined to it, the services run, the route is published.
    h.import_yaml(tenants_yaml("acme", replicas=2))
    assert not h.apply().errors, "first rollout"
    networks = swarm_lab.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", traefik.name)
    assert f'"{owner}-acme"' in networks

    def answers() -> bool:
        got = httpx.get(traefik.web_url, headers={"Host": "acme.erp.test"}, timeout=5)
        return got.status_code == 200 and "tenant=acme service=a version=1" in got.text

    wait_until(answers, 60, "the tenant's front end through Traefik")
    assert h.rt.reconciler.compute().plan.empty

    with Loop(traefik.web_url, "acme.erp.test") as loop:
        wait_until(lambda: sum(loop.statuses.values()) > 20, 30, "the request loop to run")
        h.import_yaml(tenants_yaml("acme", replicas=2, image="erp/demo-svc:2"))
        result = h.apply()
        assert not result.errors, result.errors
        wait_until(lambda: loop.bodies["2"] > 20, 30, "answers of version 2")
    tasks = running_tasks(swarm_lab, f"{owner}-acme-a")
    assert len(tasks) == 2 and all(":2" in t["Spec"]["ContainerSpec"]["Image"] for t in tasks)
    assert set(loop.statuses) == {200}, loop.statuses
    assert loop.statuses[200] > 100 and loop.bodies["1"] > 0 and loop.bodies["2"] > 0, (loop.statuses, loop.bodies)


def test_a_removed_tenant_takes_traefik_off_its_overlay(
    swarm_lab: SwarmLab, routed: tuple[Harness, LabTraefik]
) -> None:
    h, traefik = routed
    network = f"{h.owner}-acme"
    h.import_yaml(tenants_yaml("acme", replicas=1))
    assert not h.apply().errors
    h.execute_sql("delete from tenants where name = 'acme'")

    def gone() -> bool:
        h.apply(allow_mass_delete=True)  # the overlay goes once its tasks left it (a later pass if still stopping)
        return network not in swarm_lab.docker("network", "ls", "--format", "{{.Name}}")

    wait_until(gone, 90, f"the overlay {network} removed with Traefik still attached to it before")
    assert network not in swarm_lab.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", traefik.name)
    assert json.loads(swarm_lab.docker("inspect", "--format", "{{json .State.Running}}", traefik.name)) is True


def test_a_traefik_recreated_by_hand_is_joined_to_the_overlays_again(
    swarm_lab: SwarmLab, routed: tuple[Harness, LabTraefik]
) -> None:
    h, traefik = routed
    network = f"{h.owner}-acme"
    h.import_yaml(tenants_yaml("acme", replicas=1))
    assert not h.apply().errors

    def served() -> bool:
        try:
            got = httpx.get(traefik.web_url, headers={"Host": "acme.erp.test"}, timeout=3)
        except httpx.HTTPError:
            return False
        return got.status_code == 200 and "tenant=acme" in got.text

    wait_until(served, 60, "the tenant's front end through Traefik")
    assert h.rt.reconciler.compute().plan.empty

    # Re-created by hand (same name, mounts and ports): it loads the same route files but reaches no overlay.
    traefik.recreate()
    assert network not in swarm_lab.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", traefik.name)
    planned = h.rt.reconciler.compute().plan
    found = {(c.action.value, c.kind, c.name): c.reason for c in planned.changes}
    assert found == {("~", "network", network): "router not attached (re-created?)"}, found
    assert f"~ network {network}" in h.cli("plan").stdout

    # One pass later the tenant is served again, and the plan is empty.
    result = h.apply()
    assert not result.errors and network in [c.name for c in result.applied], (result.errors, result.applied)
    assert network in swarm_lab.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", traefik.name)
    wait_until(served, 60, "the tenant served again through the re-created Traefik")
    assert h.rt.reconciler.compute().plan.empty
