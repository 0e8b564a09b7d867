"""Where the API's host and log figures come from when the platform's observability stack is configured: host
capacity from a real node exporter scraped by a real Prometheus (devstack), logs from Loki's HTTP API (a stand-in
speaking Loki's documented query API: Loki cannot be installed here, see fake_loki.py)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from desired_state.yaml_io import import_yaml
from tests.integration.api_support import CATALOG, api_server
from tests.integration.fake_loki import fake_loki
from tests.integration.harness import wait_until
from tests.integration.runs import free_port

pytestmark = pytest.mark.integration

RESET = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs: []\n"


def _meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_capacity_is_the_hosts_own_figures_from_the_node_exporter(
    postgres_url: str, owner_id: str, docker_client: Any, prometheus: Any, node_exporter: Any
) -> None:
    prometheus.reload(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        + node_exporter.scrape_job(f"node-{owner_id}")
    )
    try:
        with api_server(postgres_url, owner_id, prometheus_url=prometheus.url) as api:
            tenants = "tenants:\n  - {name: acme, domain: acme.erp.test, services: {a: {replicas: 2}}}\n"
            import_yaml(api.engine, CATALOG + tenants)
            with api.client("viewer") as http:
                # rate() needs two samples a few seconds apart: until then the engine's figures are given.
                found = wait_until(
                    lambda: (answer := http.get("/api/v1/capacity").json())["source"] == "prometheus" and answer,
                    timeout=60,
                    what="capacity from Prometheus",
                )
            with httpx.Client(base_url=api.base, timeout=60) as browser:
                form = browser.get("/login").text
                csrf = re.search(r'name="csrf" value="([^"]+)"', form)
                assert csrf is not None
                browser.post("/login", data={"csrf": csrf.group(1), "token": api.tokens["viewer"]})
                listing = browser.get("/tenants").text
        assert found["memory_total_bytes"] == _meminfo_total() and found["cpus_total"] == os.cpu_count()
        # The host's own use (no tenant runs, so the tables would say 0), below its total.
        assert 0 < found["memory_used_bytes"] < found["memory_total_bytes"]
        assert 0 < found["cpus_used"] <= found["cpus_total"]
        # Reserved stays what the running tenants' limits promise: a is 16M x 2 at 0.1 CPUs.
        assert found["memory_reserved_bytes"] == 32 * 2**20 and found["cpus_reserved"] == 0.2
        assert found["tenants_running"] == 1
        line = re.search(r'<p id="capacity">(.*?)</p>', listing, re.S)
        assert line is not None and "GiB in use" in line.group(1) and "from Prometheus" in line.group(1)
    finally:
        prometheus.reload(RESET)


def test_capacity_falls_back_to_the_engine_when_prometheus_does_not_answer(
    postgres_url: str, owner_id: str, docker_client: Any
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with api_server(postgres_url, owner_id, prometheus_url=nobody) as api, api.client("viewer") as http:
        found = http.get("/api/v1/capacity").json()
    info = docker_client.info()
    assert found["source"] == "engine"
    assert (found["memory_total_bytes"], found["cpus_total"]) == (info["MemTotal"], info["NCPU"])


def test_logs_come_from_loki_when_configured_tail_and_follow(postgres_url: str, owner_id: str) -> None:
    with fake_loki() as loki, api_server(postgres_url, owner_id, loki_url=loki.url) as api:
        tenants = "tenants:\n  - {name: acme, domain: acme.erp.test, services: {a: {replicas: 1}}}\n"
        import_yaml(api.engine, CATALOG + tenants)
        mine = {"owner": owner_id, "tenant": "acme", "service": "a", "container": f"{owner_id}-acme-a-1"}
        base = time.time_ns() - 10 * 10**9
        for i in range(5):
            loki.push(mine, f"line {i}", base + i * 10**6)
        loki.push({**mine, "tenant": "other", "container": "x"}, "secret-of-other", base + 7 * 10**6)
        loki.push({**mine, "owner": "someone-else"}, "another owner's", base + 8 * 10**6)
        loki.push({"tenant": "acme", "component": "reconciler"}, "the reconciler about acme", base + 9 * 10**6)
        with api.client("viewer") as http:
            tail = http.get("/api/v1/tenants/acme/logs", params={"tail": 3}).json()
            assert [line["text"].split(" ", 1)[1] for line in tail] == ["line 2", "line 3", "line 4"]
            assert {line["container"] for line in tail} == {f"{owner_id}-acme-a-1"}
            assert tail[0]["text"].split(" ", 1)[0].endswith(f".{(base + 2 * 10**6) % 10**9:09d}Z")
            assert loki.queries[-1]["query"] == f'{{owner="{owner_id}", tenant="acme"}}'
            with http.stream(
                "GET", "/api/v1/tenants/acme/logs", params={"follow": "true", "tail": 1, "max_seconds": 4}
            ) as streamed:
                lines = []
                for line in streamed.iter_lines():
                    lines.append(line)
                    if len(lines) == 1:
                        loki.push(mine, "line 5")
                        loki.push(mine, "line 6")
                    if len(lines) == 3:
                        # Reaches Loki after line 6 but is older (another container, Promtail's batching).
                        loki.push({**mine, "container": "b-1"}, "late", time.time_ns() - 2 * 10**9)
        texts = [line.split(" | ", 1)[1].split(" ", 1)[1] for line in lines if line]
        assert texts == ["line 4", "line 5", "line 6", "late"]


def test_logs_say_which_loki_did_not_answer(postgres_url: str, owner_id: str) -> None:
    nobody = f"http://reader:hunter2@127.0.0.1:{free_port()}"
    with api_server(postgres_url, owner_id, loki_url=nobody) as api:
        tenants = "tenants:\n  - {name: acme, domain: acme.erp.test, services: {a: {replicas: 1}}}\n"
        import_yaml(api.engine, CATALOG + tenants)
        with api.client("viewer") as http:
            answer = http.get("/api/v1/tenants/acme/logs")
    assert answer.status_code == 502
    assert "logs not read from Loki at http://127.0.0.1:" in answer.json()["message"]
    assert "hunter2" not in answer.text
