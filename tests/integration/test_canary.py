"""Issue 15, canary analysis: real Traefik (its Prometheus metrics), Docker and PostgreSQL.

A canary whose image answers 500 on half of the requests (``ERP_ERROR_SHARE`` of the demo image, version 2 only)
is backed out by ``reconciler run``'s analysis job to weight 0 at its first judged window, pinned, alerted once,
with the figures in the status, and no client request fails after that; a healthy canary is promoted step by
step to 100 %, each step in the history; and ``reconciler plan`` shows the analysis's weights as a route change
with its reason. Run with ``pytest -s`` for the counts.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import devstack
import httpx
import pytest
from prometheus_client import CollectorRegistry

from desired_state.canaries import CanaryPolicyResolved, read_canaries
from desired_state.operations import list_operations
from desired_state.pins import read_pins
from desired_state.status import read_status
from reconciler.core.canary import Thresholds
from reconciler.core.errors import PermanentError, TransientError
from reconciler.drivers.traefik_metrics import PrometheusCountersReader, TraefikMetricsReader
from reconciler.runtime.operations.canary import CanaryAnalysis, CanaryMetrics
from tests.integration.canary_support import domain, rebuild_demo_images, traefik_members
from tests.integration.harness import Harness, routed_harness, wait_until
from tests.integration.traffic import LoadLoop

pytestmark = pytest.mark.integration

WINDOW = 3  # seconds per analysis window in these tests
CATALOG = """\
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25, public: true}
"""


def tenant_yaml(h: Harness, *, bad: bool, weights: tuple[int, int] = (50, 50)) -> str:
    env = '        env: {ERP_ERROR_SHARE: "50", ERP_ERROR_VERSION: "2"}\n' if bad else ""
    return (
        f"{CATALOG}tenants:\n  - name: acme\n    domain: {domain(h)}\n    services:\n      a:\n{env}"
        "        versions:\n"
        f'          - {{image: "erp/demo-svc:1", weight: {weights[0]}}}\n'
        f'          - {{image: "erp/demo-svc:2", weight: {weights[1]}}}\n'
    )


@pytest.fixture
def routed(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any) -> Iterator[Harness]:
    rebuild_demo_images()
    with routed_harness(
        owner_id,
        postgres_url,
        docker_client,
        traefik,
        canary_window=str(WINDOW),
        canary_min_requests="10",
    ) as h:
        yield h


def converge(h: Harness) -> None:
    result = h.apply()
    assert result.ok, result.errors
    status = read_status(h.rt.engine, "acme")
    assert status is not None and status.condition("RouteReady") is not None
    assert status.condition("RouteReady").status == "True", status  # type: ignore[union-attr]


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_plan_shows_the_analysis_weights_as_a_route_change_with_its_reason(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, bad=False))
    converge(routed)
    assert traefik_members(traefik, routed) == {"a": 50, "b": 50}
    # What the analysis job writes when it backs a canary out (state row first, the pass reads it).
    routed.execute_sql(
        "INSERT INTO tenant_canaries (tenant, service, stable_image, canary_image, state, weight, step, reason,"
        " requests, errors, error_rate, window_seconds) VALUES ('acme', 'a', 'erp/demo-svc:1', 'erp/demo-svc:2',"
        " 'backed-out', 0, 0, 'error rate 50.0% (60 of 120 requests) over 30 s: more than the 5.0% allowed',"
        " 120, 60, 0.5, 30)"
    )
    shown = routed.cli("plan")
    assert shown.returncode == 2, shown.stderr  # 2: changes pending
    print(shown.stdout)
    assert f"~ route {routed.owner}-acme.yml" in shown.stdout
    assert "canary erp/demo-svc:2 of a backed out: error rate 50.0% (60 of 120 requests) over 30 s" in shown.stdout
    assert "weights a=100" in shown.stdout
    with LoadLoop(traefik.web_url, domain(routed)) as loop:
        time.sleep(0.3)
        converge(routed)
        after = loop.ok
        wait_until(lambda: loop.ok >= after + 100, timeout=20, what="100 answers after the back-out")
    print(f"back-out through the plan under load: {loop.summary()}")
    assert loop.failed == []
    assert traefik_members(traefik, routed) == {"a": 100}
    assert loop.last_ok["version"] == "1"
    assert routed.apply().plan.empty  # the weights hold: nothing left to change
    status = read_status(routed.rt.engine, "acme")
    assert status is not None
    canary = status.condition("Canary")
    assert canary is not None and (canary.status, canary.reason) == ("False", "BackedOut"), canary
    assert "(60 of 120 requests) over 30 s" in canary.message


def test_a_canary_answering_500_on_half_of_requests_is_backed_out(
    routed: Harness, traefik: Any, tmp_path: Path
) -> None:
    routed.import_yaml(tenant_yaml(routed, bad=True))
    converge(routed)
    log = tmp_path / "run.log"
    with LoadLoop(traefik.web_url, domain(routed)) as loop:
        routed.start_run(log_path=log)

        def backed_out() -> bool:
            # Weight 0 is when Traefik serves it (the state row is written just before the pass that routes it).
            rows = read_canaries(routed.rt.engine, "acme")
            done = bool(rows) and rows[0].canary.state == "backed-out"
            return done and traefik_members(traefik, routed) == {"a": 100}

        wait_until(backed_out, timeout=8 * WINDOW + 20, interval=0.2, what="the canary backed out")
        before = loop.total
        failed_before = len(loop.failed)
        wait_until(lambda: loop.total >= before + 300, timeout=30, what="300 requests after the back-out")
        # Two more windows: the analysis of a backed-out canary stays quiet (one alert, one history row).
        time.sleep(2 * WINDOW)
    routed.stop_run()
    after_failures = loop.failed[failed_before:]
    print(f"bad canary under load: {loop.summary()}; after the back-out: {loop.total - before} requests")
    assert failed_before > 0  # the canary did fail clients before the analysis judged it
    assert after_failures == [], after_failures[:5]

    record = read_canaries(routed.rt.engine, "acme")[0]
    assert record.figures is not None and record.figures.requests >= 10
    assert 0.3 <= record.figures.error_rate <= 0.7
    # Backed out at its first or second judged window (counted from the run's log, not timed).
    verdicts = [m for m in log_lines(log) if "canary erp/demo-svc:2 of a:" in m]
    print("\n".join(verdicts))
    judged_until_back_out = next(i for i, m in enumerate(verdicts) if ": failing:" in m) + 1
    assert judged_until_back_out <= 2, verdicts
    assert traefik_members(traefik, routed) == {"a": 100}

    status = read_status(routed.rt.engine, "acme")
    assert status is not None
    canary = status.condition("Canary")
    assert canary is not None and (canary.status, canary.reason) == ("False", "BackedOut")
    assert "error rate" in canary.message and "requests) over" in canary.message and "pinned to" in canary.message
    assert status.phase == "Degraded"
    pins = read_pins(routed.rt.engine, "acme")
    assert [(p.service, p.pinned_image, p.failed_image) for p in pins] == [("a", "erp/demo-svc:1", "erp/demo-svc:2")]
    history = list_operations(routed.rt.engine, "acme", kind="canary")
    assert [(o.status, o.to_image) for o in history] == [("failed", "erp/demo-svc:2")]
    assert history[0].error is not None and "error rate" in history[0].error
    alerts = [m for m in log_lines(log) if "alert: " in m and "backed out" in m]
    assert len(alerts) == 1, alerts


def test_a_healthy_canary_is_promoted_step_by_step(routed: Harness, traefik: Any, tmp_path: Path) -> None:
    routed.import_yaml(tenant_yaml(routed, bad=False, weights=(90, 10)))
    # The catalog's policy: promotion in three steps, thresholds from the database.
    routed.execute_sql(
        "INSERT INTO canary_policies (service, tenant, max_error_rate, min_requests, steps, enabled)"
        " VALUES ('a', NULL, 0.01, 10, '[25, 50, 100]', true)"
    )
    converge(routed)
    log = tmp_path / "run.log"
    seen: list[dict[str, float]] = []
    with LoadLoop(traefik.web_url, domain(routed)) as loop:
        routed.start_run(log_path=log)

        def promoted() -> bool:
            members = traefik_members(traefik, routed)
            if not seen or seen[-1] != members:
                seen.append(members)
            rows = read_canaries(routed.rt.engine, "acme")
            return bool(rows) and rows[0].canary.state == "promoted" and members == {"b": 100}

        wait_until(promoted, timeout=10 * WINDOW + 30, interval=0.1, what="the canary promoted to 100%")
        time.sleep(0.5)
    routed.stop_run()
    print(f"promotion under load: {loop.summary()}; Traefik's splits seen: {seen}")
    assert loop.failed == []
    assert loop.last_ok["version"] == "2"
    assert {"a": 75, "b": 25} in seen and {"a": 50, "b": 50} in seen
    history = list_operations(routed.rt.engine, "acme", kind="canary")
    outputs = [o.output or "" for o in history]
    print("\n".join(outputs))
    assert [o.status for o in history] == ["succeeded"] * 3
    assert outputs[0].startswith("canary at 25% (step 1)")
    assert outputs[1].startswith("canary at 50% (step 2) after a healthy window: error rate 0.0%")
    assert outputs[2].startswith("canary promoted to 100% after a healthy window")
    status = read_status(routed.rt.engine, "acme")
    assert status is not None
    canary = status.condition("Canary")
    assert canary is not None and canary.reason == "Promoted" and status.phase == "Ready"
    assert read_pins(routed.rt.engine, "acme") == []


def test_the_metrics_reader_against_the_real_traefik(traefik: Any) -> None:
    reader = TraefikMetricsReader(f"{traefik.api_url}/metrics")
    assert isinstance(reader.read(), dict)  # the session Traefik has metrics on (deploy/devstack.py)
    wrong = TraefikMetricsReader(f"{traefik.api_url}/no-metrics-here")
    with pytest.raises(PermanentError, match=r"404; enable metrics\.prometheus"):
        wrong.read()
    nobody = TraefikMetricsReader(f"http://127.0.0.1:{devstack.free_port()}/metrics", timeout=2)
    with pytest.raises(TransientError, match="Traefik metrics at"):
        nobody.read()
    for r in (reader, wrong, nobody):
        r.close()


class _Answer(http.server.BaseHTTPRequestHandler):
    """A backend answering 200 on /ok and 500 elsewhere."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_prometheus_scraping_traefik_gives_the_same_counters(traefik: Any, prometheus: Any, owner_id: str) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = f"{owner_id}-probe"
    probe = Path(traefik.dynamic_dir) / f"{name}.yml"
    probe.write_text(
        f'http:\n  routers:\n    {name}: {{rule: "Host(`{name}.test`)", entryPoints: [web], service: {name}}}\n'
        f"  services:\n    {name}:\n      loadBalancer:\n"
        f'        servers: [{{url: "http://127.0.0.1:{server.server_address[1]}"}}]\n'
    )
    try:
        api_port = traefik.api_url.rsplit(":", 1)[1]
        prometheus.reload(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: traefik\n    static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]\n"
        )
        with httpx.Client(base_url=traefik.web_url, trust_env=False) as client:
            wait_until(lambda: client.get("/ok", headers={"Host": f"{name}.test"}).status_code == 200, timeout=10)
            for path in ["/ok"] * 6 + ["/bad"] * 4:
                client.get(path, headers={"Host": f"{name}.test"})
        direct = TraefikMetricsReader(f"{traefik.api_url}/metrics").read()[name]
        scraped = PrometheusCountersReader(prometheus.url)
        seen = wait_until(lambda: scraped.read().get(name) == direct, timeout=20, what="Prometheus to scrape Traefik")
        assert seen and direct.errors == 4 and direct.requests >= 10
    finally:
        probe.unlink(missing_ok=True)
        server.shutdown()
        server.server_close()


def test_the_analysis_job_in_process_alerts_once_and_exports_its_verdicts(routed: Harness, traefik: Any) -> None:
    routed.import_yaml(tenant_yaml(routed, bad=True))
    converge(routed)
    registry = CollectorRegistry()
    alerts: list[tuple[str, str]] = []
    analysis = CanaryAnalysis(
        routed.rt.engine,
        TraefikMetricsReader(f"{traefik.api_url}/metrics"),
        routed.rt.reconciler,
        CanaryPolicyResolved(Thresholds(0.05, 1.0, 10), (), enabled=True),
        lambda tenant, message: alerts.append((tenant, message)),
        metrics=CanaryMetrics(registry),
    )
    assert analysis.run_once() == []  # the first reading starts the canary (analysing: no weight imposed)
    with LoadLoop(traefik.web_url, domain(routed)) as loop:
        wait_until(lambda: len(loop.failed) >= 20, timeout=30, what="20 failed requests")
        assert analysis.run_once() == ["acme"]
        after = loop.total
        wait_until(lambda: loop.total >= after + 100, timeout=30, what="100 requests after the back-out")
    assert analysis.run_once() == [] and analysis.run_once() == []  # final: no second back-out, no second alert
    assert len(alerts) == 1 and alerts[0][0] == "acme" and "backed out to weight 0" in alerts[0][1]
    assert registry.get_sample_value("reconciler_canary_windows_total", {"outcome": "failing"}) == 1
    assert registry.get_sample_value("reconciler_canary_weight_percent", {"tenant": "acme", "service": "a"}) == 0
    assert traefik_members(traefik, routed) == {"a": 100}
