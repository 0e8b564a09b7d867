"""Issue 11: a replacement interrupted by ``kill -9`` is resumed or undone safely, under load through Traefik.

The interrupted state is built by hand exactly as the executor leaves it when the process dies after starting
the new container (``Executor.apply_tenant`` step 2) and before routing it: the new container runs, the route
file still lists only the old one. The next pass must not trust the new container because its spec matches:
it plans ``-/+ OLD => NEW (resume interrupted replacement)``, waits for NEW to be ready, routes old + new, then
new only, and removes OLD; when NEW never gets ready, NEW goes and OLD keeps serving. A client loops requests
through Traefik the whole time: not one may fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from desired_state.status import read_status
from reconciler.core.plan import Action
from reconciler.core.render_plan import render_text
from reconciler.core.resources import Container
from tests.integration.harness import Harness, routed_harness
from tests.integration.traffic import LoadLoop

pytestmark = pytest.mark.integration

CATALOG = """\
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25, public: true}
"""


@pytest.fixture
def routed(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any) -> Iterator[Harness]:
    with routed_harness(owner_id, postgres_url, docker_client, traefik, ready_timeout="4") as h:
        yield h


def _domain(h: Harness) -> str:
    return f"acme.{h.owner}.erp.test"


def _tenant(h: Harness, service: str) -> str:
    return f"{CATALOG}tenants:\n  - name: acme\n    domain: {_domain(h)}\n    services:\n      a: {service}\n"


def _interrupt_replacement(h: Harness, service: str) -> tuple[Container, Container]:
    """Change the spec, then do what the executor does up to the crash: start the new container, route nothing."""
    h.import_yaml(_tenant(h, service))
    (change,) = [c for c in h.rt.reconciler.compute({"acme"}).plan.changes if c.kind == "container"]
    assert change.action is Action.REPLACE and change.operation == "replace"
    old, new = change.before, change.after
    assert isinstance(old, Container) and isinstance(new, Container)
    h.rt.reconciler.docker.run_container(new)
    return old, new


def _names(h: Harness) -> set[str]:
    return {c.name for c in h.containers("acme")}


def test_an_interrupted_replacement_is_resumed_with_no_failed_request(routed: Harness, traefik: Any) -> None:
    h = routed
    h.import_yaml(_tenant(h, "{replicas: 1}"))
    assert h.apply().ok
    old, new = _interrupt_replacement(h, '{replicas: 1, image: "erp/demo-svc:2"}')
    assert _names(h) == {old.name, new.name}

    text = render_text(h.rt.reconciler.compute({"acme"}).plan)
    assert f"-/+ container {old.name} => {new.name}" in text and "# resume interrupted replacement" in text, text

    with LoadLoop(traefik.web_url, _domain(h)) as loop:
        time.sleep(0.5)
        result = h.apply()
        time.sleep(0.5)
    print(f"resumed replacement under load: {loop.summary()}")
    assert result.ok, result.errors
    assert loop.failed == []
    assert loop.versions["1"] > 0 and loop.last_ok["version"] == "2"
    assert _names(h) == {new.name}  # never created again: the container started "before the crash" took over
    status = read_status(h.rt.engine, "acme")
    assert status is not None and status.phase == "Ready", status
    assert h.apply().plan.empty


def test_an_interrupted_replacement_that_never_gets_ready_is_undone_and_the_old_one_keeps_serving(
    routed: Harness, traefik: Any
) -> None:
    h = routed
    h.import_yaml(_tenant(h, "{replicas: 1}"))
    assert h.apply().ok
    # The new version's health path answers 404 (ERP_UNHEALTHY): it can never be ready.
    old, new = _interrupt_replacement(h, '{replicas: 1, image: "erp/demo-svc:2", env: {ERP_UNHEALTHY: "1"}}')
    assert f"-/+ container {old.name} => {new.name}" in render_text(h.rt.reconciler.compute({"acme"}).plan)

    with LoadLoop(traefik.web_url, _domain(h)) as loop:
        time.sleep(0.5)
        result = h.apply()
        time.sleep(0.5)
    print(f"undone replacement under load: {loop.summary()}")
    error = result.errors.get("acme", "")
    assert "not ready within 4s" in error and "answered 404" in error, result.errors
    assert loop.failed == []
    assert set(loop.versions) == {"1"}
    assert _names(h) == {old.name}  # the never-ready container is gone, the old one untouched
    route = h.rt.reconciler.router
    assert route is not None and route.ready("acme").status == "True"
