"""Issue 15 follow-up, the canary reads the checks per version: real Traefik, Docker and PostgreSQL.

The service's check ``home`` expects ``version=1`` in the body. Through the tenant's route it passes or fails by
the luck of the weighted split; through the version header (``X-Reconciler-Version``, one router per version
rendered by ``renderers.traefik``) it passes on the stable version and fails on the canary every time. The canary
answers no 5xx and is fast, so its metrics alone say healthy: the analysis backs it out for the check, with the
check's result in the status, the history and the one alert. A canary whose checks pass is promoted, and the
history says its checks passed. Run with ``pytest -s`` for the figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from desired_state.canaries import CanaryPolicyResolved, read_canaries
from desired_state.operations import list_operations
from desired_state.pins import read_pins
from desired_state.status import read_status
from reconciler.core.canary import Thresholds
from reconciler.drivers.traefik_metrics import TraefikMetricsReader
from reconciler.runtime.operations.canary import CanaryAnalysis
from reconciler.runtime.operations.canary_checks import CanaryChecker
from tests.integration.canary_support import domain, traefik_members
from tests.integration.harness import Harness, routed_harness, wait_until
from tests.integration.traffic import LoadLoop

pytestmark = pytest.mark.integration


def tenant_yaml(h: Harness, expected: str) -> str:
    return (
        "catalog:\n"
        '  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25, public: true,\n'
        f'      checks: [{{name: home, path: /, body_contains: "{expected}", timeout: 3}}]}}\n'
        f"tenants:\n  - name: acme\n    domain: {domain(h)}\n    services:\n      a:\n"
        "        versions:\n"
        '          - {image: "erp/demo-svc:1", weight: 50}\n'
        '          - {image: "erp/demo-svc:2", weight: 50}\n'
    )


@pytest.fixture
def routed(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any) -> Iterator[Harness]:
    with routed_harness(owner_id, postgres_url, docker_client, traefik) as h:
        yield h


def analysis_of(h: Harness, traefik: Any, alerts: list[tuple[str, str]], steps: tuple[int, ...] = ()) -> CanaryAnalysis:
    return CanaryAnalysis(
        h.rt.engine,
        TraefikMetricsReader(f"{traefik.api_url}/metrics"),
        h.rt.reconciler,
        CanaryPolicyResolved(Thresholds(0.05, 1.0, 10), steps, enabled=True),
        lambda tenant, message: alerts.append((tenant, message)),
        checks=CanaryChecker(traefik.web_url),
    )


def versions_behind_the_header(traefik: Any, h: Harness, label: str) -> set[str]:
    """The versions that answer 20 requests sent with the version header ``label``."""
    seen = set()
    with httpx.Client(base_url=traefik.web_url, trust_env=False, timeout=5) as client:
        for _ in range(20):
            answer = client.get("/", headers={"Host": domain(h), "X-Reconciler-Version": label})
            assert answer.status_code == 200, answer.text
            seen.add(answer.text.split("version=")[1].split()[0])
    return seen


def test_a_check_failing_on_the_canary_version_alone_backs_it_out(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "version=1"))
    result = routed.apply()
    assert result.ok, result.errors
    # Each version's own router answers with that version only; the plain route mixes both.
    assert versions_behind_the_header(traefik, routed, "a") == {"1"}
    assert versions_behind_the_header(traefik, routed, "b") == {"2"}
    alerts: list[tuple[str, str]] = []
    analysis = analysis_of(routed, traefik, alerts)
    assert analysis.run_once() == []  # the first reading starts the window
    with LoadLoop(traefik.web_url, domain(routed)) as loop:
        wait_until(lambda: loop.versions["2"] >= 20, timeout=30, what="20 answers of the canary")
        assert analysis.run_once() == ["acme"]
        served = loop.total
        wait_until(lambda: loop.total >= served + 50, timeout=30, what="50 requests after the back-out")
    assert analysis.run_once() == []
    print(f"canary failing its check: {loop.summary()}")
    assert loop.failed == []  # its metrics were clean: only the check saw it
    assert traefik_members(traefik, routed) == {"a": 100}
    assert versions_behind_the_header(traefik, routed, "b") == {"1"}  # its router left with it: the split answers

    record = read_canaries(routed.rt.engine, "acme")[0]
    print(f"reason: {record.canary.reason}")
    assert record.canary.state == "backed-out"
    assert record.canary.reason.startswith("check a/home failed on erp/demo-svc:2 in ")
    assert "body does not contain 'version=1'" in record.canary.reason
    assert record.figures is not None and record.figures.errors == 0 and record.figures.requests >= 10
    status = read_status(routed.rt.engine, "acme")
    assert status is not None
    condition = status.condition("Canary")
    assert condition is not None and (condition.status, condition.reason) == ("False", "BackedOut")
    assert "check a/home failed on erp/demo-svc:2" in condition.message
    pins = read_pins(routed.rt.engine, "acme")
    assert [(p.pinned_image, p.failed_image) for p in pins] == [("erp/demo-svc:1", "erp/demo-svc:2")]
    history = list_operations(routed.rt.engine, "acme", kind="canary")
    assert [o.status for o in history] == ["failed"]
    assert history[0].error is not None and history[0].error.startswith("check a/home failed on erp/demo-svc:2")
    assert len(alerts) == 1 and "check a/home failed on erp/demo-svc:2" in alerts[0][1]


def test_a_canary_whose_checks_pass_is_promoted_and_the_history_says_so(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, "tenant=acme"))
    result = routed.apply()
    assert result.ok, result.errors
    alerts: list[tuple[str, str]] = []
    analysis = analysis_of(routed, traefik, alerts, steps=(50, 100))
    assert analysis.run_once() == ["acme"]  # the first step, 50 %, starts the window
    with LoadLoop(traefik.web_url, domain(routed)) as loop:
        wait_until(lambda: loop.versions["2"] >= 20, timeout=30, what="20 answers of the canary")
        assert analysis.run_once() == ["acme"]
        wait_until(lambda: traefik_members(traefik, routed) == {"b": 100}, timeout=30, what="the canary at 100%")
    assert loop.failed == [] and alerts == []
    record = read_canaries(routed.rt.engine, "acme")[0]
    assert record.canary.state == "promoted"
    history = list_operations(routed.rt.engine, "acme", kind="canary")
    outputs = [o.output or "" for o in history]
    print("\n".join(outputs))
    assert outputs[-1].startswith("canary promoted to 100% after a healthy window: error rate 0.0%")
    assert outputs[-1].endswith("; 1 check passed on the canary")
