"""Issue 15 acceptance, first half: checks (smoke tests) through the real route after every rollout.

Real Traefik (the session's), Docker and PostgreSQL, the whole pipeline in-process (``Harness.apply``). The demo
images answer ``GET /`` with ``tenant=T service=S version=V ...``, so a check that the body contains ``version=1``
passes on ``erp/demo-svc:1`` and fails on ``erp/demo-svc:2``: the upgrade to 2 is marked failed, alerts exactly once,
goes back to 1 (still running until the checks passed) and stays pinned there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from desired_state.check_results import latest_results, recent_results
from desired_state.operations import list_operations
from desired_state.pins import read_pins
from desired_state.status import read_status
from tests.integration.harness import Harness, routed_harness, wait_until
from tests.integration.traffic import LoadLoop, body_fields

pytestmark = pytest.mark.integration

CATALOG = """\
catalog:
  a:
    image: "erp/demo-svc:1"
    port: 8080
    health: /health
    memory: 32M
    cpus: 0.25
    public: true
    checks:
      - {name: home, path: /, body_contains: "version=1", timeout: 3}
      - {name: health, path: /health, status: 200}
"""


@pytest.fixture
def checked(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any) -> Iterator[Harness]:
    """A routed reconciler whose checks go through the session Traefik's web entrypoint."""
    with routed_harness(owner_id, postgres_url, docker_client, traefik, check_url=traefik.web_url) as h:
        yield h


def domain(h: Harness) -> str:
    return f"acme.{h.owner}.erp.test"


def tenant_yaml(h: Harness, service: str) -> str:
    return f"{CATALOG}tenants:\n  - name: acme\n    domain: {domain(h)}\n    services:\n      a: {service}\n"


def alerts_sent(h: Harness) -> float:
    value = h.rt.metrics.registry.get_sample_value("reconciler_alerts_total", {"outcome": "logged"})
    return value or 0.0


def served_version(h: Harness, traefik: Any) -> str:
    answer = httpx.get(f"{traefik.web_url}/", headers={"Host": domain(h)}, timeout=5, trust_env=False)
    assert answer.status_code == 200, answer.text
    return body_fields(answer.text)["version"]


def test_a_check_failing_on_v2_rolls_the_upgrade_back_alerts_once_and_pins(checked: Harness, traefik: Any) -> None:
    h = checked
    h.import_yaml(tenant_yaml(h, "{replicas: 2}"))
    assert h.apply().ok
    first = {(s.result.check, s.result.outcome, s.result.image, s.result.trigger) for s in latest_results(h.rt.engine)}
    assert first == {("home", "passed", "erp/demo-svc:1", "rollout"), ("health", "passed", "erp/demo-svc:1", "rollout")}
    status = read_status(h.rt.engine, "acme")
    assert status is not None and status.phase == "Ready", status
    passing = status.condition("ChecksPassing")
    assert passing is not None and passing.status == "True", passing
    before = alerts_sent(h)

    h.import_yaml(tenant_yaml(h, '{replicas: 2, image: "erp/demo-svc:2"}'))
    with LoadLoop(traefik.web_url, domain(h)) as loop:
        result = h.apply()
    print(f"upgrade to 2 rolled back by its checks under load: {loop.summary()}")
    # Clients saw 2 for the length of the checks, then 1 again, and no request failed on the way there and back.
    assert loop.failed == [] and loop.last_ok["version"] == "1"

    # The rollout of 2 failed, with the check's figures.
    assert "acme" in result.errors and "checks failed after the upgrade" in result.errors["acme"], result.errors
    upgrade = next(o for o in list_operations(h.rt.engine, "acme") if o.kind == "upgrade")
    assert (upgrade.status, upgrade.to_image) == ("failed", "erp/demo-svc:2")
    assert upgrade.error is not None and "body does not contain 'version=1'" in upgrade.error
    assert upgrade.error.startswith("checks failed after the upgrade: 1 of 2 checks failed: a/home failed on")
    # 1 serves again, both replicas, and the service is pinned to it.
    assert served_version(h, traefik) == "1"
    assert sorted(c.labels["tenant-reconciler.image"] for c in h.running("acme")) == ["erp/demo-svc:1"] * 2
    pins = read_pins(h.rt.engine, "acme")
    assert [(p.service, p.pinned_image, p.failed_image) for p in pins] == [("a", "erp/demo-svc:1", "erp/demo-svc:2")]
    # The results say which version failed and that the restored one passes.
    history = [
        (s.result.check, s.result.outcome, s.result.image, s.result.trigger)
        for s in recent_results(h.rt.engine, "acme")
    ]
    assert ("home", "failed", "erp/demo-svc:2", "upgrade") in history
    assert ("health", "passed", "erp/demo-svc:2", "upgrade") in history
    assert ("home", "passed", "erp/demo-svc:1", "rollback") in history
    assert alerts_sent(h) == before + 1
    rollbacks = h.rt.metrics.registry.get_sample_value("reconciler_check_rollbacks_total")
    assert rollbacks == 1

    # Later passes leave the pin alone: no new attempt, no second alert; the status says why.
    for _ in range(2):
        h.apply()
    assert alerts_sent(h) == before + 1
    assert served_version(h, traefik) == "1"
    status = read_status(h.rt.engine, "acme")
    assert status is not None and status.phase == "Degraded", status
    pinned = status.condition("Pinned")
    assert pinned is not None and "version=1" in pinned.message, pinned
    checks = status.condition("ChecksPassing")
    assert checks is not None and checks.status == "True", checks

    # The CLI shows the verdicts; a failing latest result would exit 1, here all pass on 1.
    shown = h.cli("checks", "acme")
    assert shown.returncode == 0, shown.stderr
    assert "home" in shown.stdout and "erp/demo-svc:1" in shown.stdout
    status_text = h.cli("status").stdout
    assert "ChecksPassing=True" in status_text and "check a/home: passed on erp/demo-svc:1 (rollback" in status_text


def test_a_failing_check_after_a_create_sets_the_condition_and_alerts_once(checked: Harness, traefik: Any) -> None:
    h = checked
    # 2 from the start: nothing to roll back to, so the check's failure is a condition and one alert.
    h.import_yaml(tenant_yaml(h, '{image: "erp/demo-svc:2"}'))
    before = alerts_sent(h)
    assert h.apply().ok
    status = read_status(h.rt.engine, "acme")
    assert status is not None and status.phase == "Degraded", status
    failing = status.condition("ChecksPassing")
    assert failing is not None and failing.status == "False" and "home failed on erp/demo-svc:2" in failing.message
    assert alerts_sent(h) == before + 1
    # A scheduled run finds it still failing: recorded, no second alert.
    assert h.rt.checks is not None
    assert h.rt.checks.run() == []
    assert alerts_sent(h) == before + 1
    triggers = [s.result.trigger for s in recent_results(h.rt.engine, "acme") if s.result.check == "home"]
    assert triggers == ["schedule", "rollout"]
    shown = h.cli("checks", "acme")
    assert shown.returncode == 1 and "failed" in shown.stdout
    metrics = h.rt.metrics.registry.get_sample_value("reconciler_checks_failing", {"tenant": "acme"})
    assert metrics == 1
    # A restarted process reads the verdicts back: the known failure does not alert again.
    h.rt.engine.dispose()
    h.rebuild()
    assert h.rt.checks is not None and h.rt.checks.run() == []
    assert alerts_sent(h) == 0
    # `reconciler checks --run` runs them now (trigger manual) and exits 1 while one fails.
    ran = h.cli("checks", "acme", "--run", "--history", "10")
    assert ran.returncode == 1, ran.stderr
    assert [s.result.trigger for s in recent_results(h.rt.engine, "acme", limit=2)] == ["manual", "manual"]


def test_reconciler_run_checks_on_its_schedule(checked: Harness, tmp_path: Any) -> None:
    h = checked
    h.env["RECONCILER_CHECK_INTERVAL"] = "1"
    h.import_yaml(tenant_yaml(h, "{}"))
    assert h.apply().ok
    h.start_run(log_path=tmp_path / "run.log")

    def scheduled() -> bool:
        return any(s.result.trigger == "schedule" for s in recent_results(h.rt.engine, "acme"))

    wait_until(scheduled, timeout=30, what="a scheduled check run by `reconciler run`")
    assert h.stop_run() == 0
    latest = {(s.result.check, s.result.outcome) for s in latest_results(h.rt.engine, "acme")}
    assert latest == {("home", "passed"), ("health", "passed")}
