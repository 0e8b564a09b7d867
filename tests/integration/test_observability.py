"""Issue 7 on the real stack: a real Prometheus scrapes `reconciler run`, per-tenant usage reaches the metrics and
the UI table within one collection interval, /metrics passes `promtool check metrics`, /readyz covers the
database, Docker and leadership, JSON logs carry the fields Loki needs, and the reconciler's image builds from a
locally bootstrapped Debian base and applies a tenant against the host's engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import devstack
import httpx
import pytest
import yaml

from desired_state.database import make_engine, upgrade
from desired_state.usage import read_usages
from desired_state.yaml_io import import_yaml
from reconciler.core.usage import ServiceUsage
from reconciler.drivers.usage import UsageSampler
from reconciler.runtime.service.run import readiness_checks
from reconciler.runtime.settings import Settings
from reconciler.runtime.telemetry.metrics import HealthServer
from reconciler.runtime.telemetry.usage import PrometheusUsageReader, UsageCollector
from reconciler.runtime.wiring import build_runtime
from tests.integration.harness import REPO_ROOT, Harness, wait_until
from tests.unit.test_deploy_bundle import exported_metric_names, queried_metric_names

pytestmark = pytest.mark.integration

TENANT = "obs"
TENANT_YAML = f"""
catalog:
  a: {{image: "erp/demo-svc:1", port: 8080, health: /health, memory: 64M, cpus: 0.25}}
  b: {{image: "erp/demo-svc:1", port: 8080, memory: 32M, cpus: 0.1}}
tenants:
  - name: {TENANT}
    domain: {TENANT}.erp.test
    services:
      a: {{replicas: 2}}
      b: {{}}
"""
USAGE_INTERVAL = 2.0
IMAGE_TAG = "local/tenant-reconciler:ci"


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _scrape_config(job: str, target: str) -> str:
    return f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    static_configs:
      - targets: ["{target}"]
"""


@pytest.fixture
def observed(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> Iterator[tuple[Harness, str]]:
    """A harness whose `reconciler run` serves metrics on a fixed free port and collects usage every 2 s."""
    port = devstack.free_port()
    h = Harness.create(
        owner_id,
        postgres_url,
        docker_client,
        metrics_addr=f"127.0.0.1:{port}",
        usage_interval=str(USAGE_INTERVAL),
    )
    try:
        yield h, f"127.0.0.1:{port}"
    finally:
        h.stop_run()
        h.rt.engine.dispose()


def _start(h: Harness, address: str, log: Path) -> None:
    h.import_yaml(TENANT_YAML)
    h.start_run(log_path=log)
    wait_until(lambda: _get(f"http://{address}/healthz", timeout=1)[0] == 200, 30, what=f"/healthz ({log})")


def test_prometheus_scrapes_reconciler_run_and_reads_usage_back(
    observed: tuple[Harness, str], prometheus: devstack.Prometheus, tmp_path: Path
) -> None:
    h, address = observed
    job = f"reconciler-{h.owner}"
    prometheus.reload(_scrape_config(job, address))
    _start(h, address, tmp_path / "run.log")

    # A reconciler metric, read back through Prometheus's query API (the first sample takes ~5 s).
    passes = wait_until(
        lambda: _query(prometheus.url, f'reconciler_passes_total{{job="{job}", result="ok"}}'),
        60,
        0.5,
        what="reconciler_passes_total in Prometheus",
    )
    assert float(passes[0]["value"][1]) >= 1
    assert _query(prometheus.url, f'up{{job="{job}"}}')[0]["value"][1] == "1"

    # Per-tenant usage: in Prometheus, per service, with the memory limits of the catalog (2 x 64M for a).
    wait_until(
        lambda: _query(prometheus.url, f'sum(reconciler_tenant_containers{{job="{job}", tenant="{TENANT}"}}) == 3'),
        60,
        0.5,
        what="the tenant's 3 containers in Prometheus",
    )
    memory = _query(prometheus.url, f'reconciler_tenant_memory_bytes{{job="{job}", tenant="{TENANT}"}}')
    assert {m["metric"]["service"] for m in memory} == {"a", "b"}
    assert all(float(m["value"][1]) > 0 for m in memory)
    limits = _query(prometheus.url, f'reconciler_tenant_memory_limit_bytes{{job="{job}", service="a"}}')
    assert float(limits[0]["value"][1]) == 2 * 64 * 1024 * 1024
    wait_until(
        lambda: _query(prometheus.url, f'reconciler_tenant_cpu_cores{{job="{job}", tenant="{TENANT}"}}'),
        30,
        0.5,
        what="tenant CPU in Prometheus",
    )

    # The same figures, read back the way the collector does when RECONCILER_PROMETHEUS_URL is set.
    memory_avg, cpu_avg = PrometheusUsageReader(prometheus.url, 60).averages()
    assert {(TENANT, "a"), (TENANT, "b")} <= set(memory_avg)
    assert {(TENANT, "a"), (TENANT, "b")} <= set(cpu_avg)
    assert all(value >= 0 for value in cpu_avg.values())

    # The collector's rows with read-back on: Prometheus's averages where it has the series, the local figures
    # for the others, and for all of them while Prometheus does not answer.
    sampler = UsageSampler(h.owner)
    try:
        local = [
            *UsageCollector(sampler, None, USAGE_INTERVAL).collect_once(),
            ServiceUsage("new", "a", 7, None, None, 1),
        ]
        reader = PrometheusUsageReader(prometheus.url, 60)
        rows = {r.tenant + "/" + r.service: r for r in UsageCollector(sampler, None, 1, prometheus=reader).rows(local)}
        memory_avg, _ = reader.averages()
        for service in ("a", "b"):
            assert rows[f"{TENANT}/{service}"].memory_bytes == pytest.approx(memory_avg[(TENANT, service)], rel=0.2)
        assert (rows["new/a"].memory_bytes, rows["new/a"].cpu_cores) == (7, None)
        down = PrometheusUsageReader(f"http://127.0.0.1:{devstack.free_port()}", 60)
        fallback = UsageCollector(sampler, None, 1, prometheus=down).rows(local)
        assert [(r.memory_bytes, r.cpu_cores) for r in fallback] == [(u.memory_bytes, u.cpu_cores) for u in local]
    finally:
        sampler.close()


def test_alert_rules_evaluate_on_live_metrics_and_a_broken_tenant_goes_pending(
    observed: tuple[Harness, str], prometheus: devstack.Prometheus, tmp_path: Path
) -> None:
    """The rules of deploy/prometheus/alerts.yml, loaded into a real Prometheus scraping `reconciler run`: every rule
    evaluates without error on real series (vector matching is only checked then), and an invalid tenant makes
    TenantDegraded pending."""
    h, address = observed
    job = f"reconciler-{h.owner}"
    rules = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
    prometheus.reload(_scrape_config(job, address) + f'rule_files:\n  - "{rules}"\n')
    h.import_yaml(TENANT_YAML + "  - name: broken\n    domain: broken.erp.test\n    services:\n      b: {}\n")
    h.execute_sql(
        "UPDATE tenant_services SET memory = 'lots' WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'broken')"
    )
    _start(h, address, tmp_path / "run.log")

    def pending() -> list[dict[str, Any]]:
        return _query(prometheus.url, 'ALERTS{alertname="TenantDegraded", alertstate="pending"}')

    alerts = wait_until(pending, 60, 0.5, what="TenantDegraded pending for the broken tenant")
    assert {a["metric"]["tenant"] for a in alerts} == {"broken"}

    groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    evaluated = [rule for group in groups for rule in group["rules"]]
    assert len(evaluated) == len([r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]]), (
        "Prometheus did not load every rule"
    )
    assert [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"] == []


def test_usage_reaches_the_ui_table_within_one_interval(observed: tuple[Harness, str], tmp_path: Path) -> None:
    h, address = observed
    _start(h, address, tmp_path / "run.log")
    running = wait_until(lambda: len(h.running(TENANT)) == 3, 60, what="3 running containers")
    assert running
    seen_running = time.monotonic()
    rows = wait_until(
        lambda: (r := read_usages(h.rt.engine, TENANT)) and sum(u.containers for u in r) == 3 and r,
        USAGE_INTERVAL * 2 + 5,
        0.1,
        what="usage rows for all 3 containers",
    )
    delay = time.monotonic() - seen_running
    assert delay <= USAGE_INTERVAL + 2.5, f"rows appeared {delay:.1f}s after the containers ran"
    by_service = {u.service: u for u in rows}
    assert set(by_service) == {"a", "b"}
    assert by_service["a"].containers == 2
    assert by_service["a"].memory_limit_bytes == 2 * 64 * 1024 * 1024
    assert by_service["b"].memory_limit_bytes == 32 * 1024 * 1024
    for usage in rows:
        assert usage.memory_bytes > 0
        assert usage.cpu_cores is not None and usage.cpu_cores >= 0

    # Stopped services drop out of the table and the gauges at the next collection.
    h.execute_sql(f"UPDATE tenants SET state = 'stopped', generation = generation + 1 WHERE name = '{TENANT}'")
    wait_until(lambda: not read_usages(h.rt.engine, TENANT), 60, what="usage rows gone after stop")
    _, metrics = _get(f"http://{address}/metrics")
    assert f'reconciler_tenant_memory_bytes{{service="a",tenant="{TENANT}"}}' not in metrics


def test_metrics_pass_promtool_and_cover_dashboard_and_alert_queries(
    observed: tuple[Harness, str], tmp_path: Path
) -> None:
    h, address = observed
    _start(h, address, tmp_path / "run.log")

    def with_tenant_series() -> str | None:
        text = _get(f"http://{address}/metrics")[1]
        wanted = (
            f'reconciler_tenant_phase{{phase="Ready",tenant="{TENANT}"}} 1.0',
            f'reconciler_tenant_condition{{condition="ContainersReady",status="True",tenant="{TENANT}"}} 1.0',
            f'reconciler_tenant_memory_bytes{{service="a",tenant="{TENANT}"}}',
        )
        return text if all(w in text for w in wanted) else None

    text = wait_until(with_tenant_series, 60, 0.5, what="per-tenant series on /metrics")
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (apt-get install prometheus)"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    exported = exported_metric_names(text)
    for where, names in queried_metric_names().items():
        assert names - exported == set(), f"{where} queries metrics `reconciler run` does not export"


def test_readyz_covers_database_docker_and_leadership(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> None:
    ports = [devstack.free_port(), devstack.free_port()]
    leader = Harness.create(owner_id, postgres_url, docker_client, metrics_addr=f"127.0.0.1:{ports[0]}")
    standby = Harness.create(owner_id, postgres_url, docker_client, metrics_addr=f"127.0.0.1:{ports[1]}")
    try:
        leader.start_run(log_path=tmp_path / "leader.log")
        wait_until(lambda: "leader: ok" in _get(f"http://127.0.0.1:{ports[0]}/readyz", 1)[1], 30, what="leader")
        standby.start_run(log_path=tmp_path / "standby.log")
        wait_until(lambda: _get(f"http://127.0.0.1:{ports[1]}/healthz", 1) == (200, "ok\n"), 30, what="standby up")
        status, body = _get(f"http://127.0.0.1:{ports[1]}/readyz")
        assert (status, body) == (200, "database: ok\ndocker: ok\nleader: standby\n")
        status, body = _get(f"http://127.0.0.1:{ports[0]}/readyz")
        assert (status, body) == (200, "database: ok\ndocker: ok\nleader: ok\n")
    finally:
        standby.stop_run()
        leader.stop_run()
        for h in (leader, standby):
            h.rt.engine.dispose()

    # A database that does not answer makes the instance not ready (503), naming the failing check.
    dead = f"postgresql+psycopg2://nobody:none@127.0.0.1:{devstack.free_port()}/nothing"
    runtime = build_runtime(Settings(database_url=dead, owner_id=owner_id), with_stages=False)
    server = HealthServer(runtime.metrics, "127.0.0.1:0", lambda: readiness_checks(runtime))
    server.start()
    try:
        status, body = _get(f"http://127.0.0.1:{server.port}/readyz")
        assert status == 503
        assert "database: unreachable: OperationalError" in body
        assert "docker: ok" in body
        assert _get(f"http://127.0.0.1:{server.port}/healthz") == (200, "ok\n")
    finally:
        server.stop()
        runtime.engine.dispose()


def test_json_logs_carry_tenant_service_action_and_reason(harness: Harness) -> None:
    harness.import_yaml(TENANT_YAML)
    harness.env["RECONCILER_LOG_JSON"] = "true"
    result = harness.cli("apply")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records, result.stderr
    created = [r for r in records if r.get("kind") == "container" and r.get("action") == "create"]
    assert {r["service"] for r in created} == {"a", "b"}
    for record in created:
        assert record["tenant"] == TENANT
        assert record["reason"]
        assert {"ts", "level", "logger", "msg"} <= set(record)
    network = [r for r in records if r.get("kind") == "network"]
    assert network and all(r["tenant"] == TENANT and "service" not in r for r in network)


def test_reconciler_image_builds_and_applies_against_the_host_engine(
    owner_id: str, docker_client: Any, demo_images: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "build-image.sh"), IMAGE_TAG],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - started
    assert build.returncode == 0, build.stdout + build.stderr
    print(f"image build: {took:.0f}s\n" + "\n".join(s for s in build.stdout.splitlines() if "[build-image]" in s))

    version = docker_client.containers.run(IMAGE_TAG, ["--version"], remove=True).decode()
    assert version.startswith("tenant-reconciler ")

    data = tmp_path / "data"
    data.mkdir()
    engine = make_engine(f"sqlite:///{data / 'reconciler.sqlite3'}")
    upgrade(engine)
    import_yaml(engine, TENANT_YAML.replace("a: {replicas: 2}", "a: {replicas: 1}"))
    engine.dispose()
    output = docker_client.containers.run(
        IMAGE_TAG,
        ["apply"],
        environment={
            "RECONCILER_DATABASE_URL": "sqlite:////data/reconciler.sqlite3",
            "RECONCILER_OWNER_ID": owner_id,
            "RECONCILER_NAME_PREFIX": owner_id,
            "RECONCILER_READY_TIMEOUT": "30",
        },
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(data): {"bind": "/data", "mode": "rw"},
        },
        network_mode="host",
        remove=True,
        stdout=True,
        stderr=True,
    ).decode()
    assert "0 tenants failed" in output, output
    containers = docker_client.containers.list(
        filters={"label": [f"tenant-reconciler.owner={owner_id}", f"tenant-reconciler.tenant={TENANT}"]}
    )
    assert sorted(c.labels["tenant-reconciler.service"] for c in containers) == ["a", "b"]
    assert all(c.status == "running" for c in containers)
