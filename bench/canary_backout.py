"""Benchmark: time from a bad canary's first errors to weight 0, through a real Traefik and its metrics.

Starts its own PostgreSQL and Traefik (deploy/devstack.py, free 127.0.0.1 ports, Prometheus metrics on) and builds
the demo images if needed. The canary analysis (``runtime.operations.canary``) runs in a thread every ``--window``
seconds, as ``reconciler run``'s scheduler runs it. Each run creates a new tenant whose service has two versions
at 50/50, the second answering 500 on half of its requests (``ERP_ERROR_SHARE=50``, ``ERP_ERROR_VERSION=2``),
converges it, then starts a client looping requests through Traefik. The clock starts at the client's first 500
and stops when Traefik's API serves the tenant's split without the canary (weight 0: what the routing stage
waits for). Requests failing after that moment are counted too (expected: 0). The analysis needs one reading to
start a canary and one window to judge it, so the time lies between one and two windows plus a pass.
Everything it created is removed at the end (by its own owner id). Usage::

    python bench/canary_backout.py [--runs 10] [--window 5]    # prints markdown for docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "deploy"))

import devstack  # noqa: E402
import docker  # noqa: E402
import httpx  # noqa: E402

from desired_state.canaries import CanaryPolicyResolved  # noqa: E402
from desired_state.database import upgrade  # noqa: E402
from desired_state.yaml_io import import_yaml  # noqa: E402
from reconciler.core.canary import Thresholds  # noqa: E402
from reconciler.drivers.traefik_metrics import TraefikMetricsReader  # noqa: E402
from reconciler.runtime.operations.canary import CanaryAnalysis  # noqa: E402
from reconciler.runtime.settings import Settings  # noqa: E402
from reconciler.runtime.wiring import build_runtime  # noqa: E402

CATALOG = (
    'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25, public: true}\n'
)


def tenant_yaml(name: str, host: str, state: str = "running") -> str:
    return (
        f"{CATALOG}tenants:\n  - name: {name}\n    domain: {host}\n    state: {state}\n    services:\n      a:\n"
        '        env: {ERP_ERROR_SHARE: "50", ERP_ERROR_VERSION: "2"}\n'
        "        versions:\n"
        '          - {image: "erp/demo-svc:1", weight: 50}\n'
        '          - {image: "erp/demo-svc:2", weight: 50}\n'
    )


class Client(threading.Thread):
    """Loops GETs for one host; keeps the time of the first 500 and of every failure."""

    def __init__(self, url: str, host: str) -> None:
        super().__init__(daemon=True)
        self.url, self.host = url, host
        self.first_error: float | None = None
        self.failures: list[float] = []
        self.total = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=5.0) as client:
            while not self.stop_event.is_set():
                try:
                    status = client.get("/", headers={"Host": self.host}).status_code
                except httpx.HTTPError:
                    status = 0
                self.total += 1
                if status != 200:
                    now = time.monotonic()
                    self.failures.append(now)
                    if self.first_error is None:
                        self.first_error = now


def canary_gone(api_url: str, service: str) -> bool:
    services = httpx.get(f"{api_url}/api/http/services", params={"per_page": 1000}, timeout=5).json()
    found = next((s for s in services if s["name"] == f"{service}@file"), None)
    if found is None:
        return False
    members = [m["name"] for m in found.get("weighted", {}).get("services", [])]
    return bool(members) and not any(m.startswith(f"{service}.b") for m in members)


def one_run(runtime: Any, traefik: Any, owner: str, index: int) -> tuple[float, int, int]:
    name = f"c{index}"
    host = f"{name}.{owner}.erp.test"
    # Other checkouts on a shared machine may have rebuilt the demo images from an older erp-serve (no
    # ERP_ERROR_SHARE) meanwhile: make sure this run's containers come from ours (a no-op when they do).
    build_images()
    import_yaml(runtime.engine, tenant_yaml(name, host))
    result = runtime.reconciler.run_pass([name])
    assert result.ok, result.errors
    client = Client(traefik.web_url, host)
    client.start()
    deadline = time.monotonic() + 120
    while not canary_gone(traefik.api_url, f"{owner}-{name}.a"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the canary was not backed out within 120 s")
        time.sleep(0.02)
    gone = time.monotonic()
    time.sleep(2.0)  # keep the client going: nothing may fail once the canary is out
    client.stop_event.set()
    client.join(timeout=10)
    assert client.first_error is not None
    after = sum(1 for t in client.failures if t > gone)
    # The bench's own tenant, and its only one: the mass-delete guard would otherwise refuse removing all of it.
    import_yaml(runtime.engine, tenant_yaml(name, host, state="absent"))
    runtime.reconciler.run_pass([name], allow_mass_delete=True)
    return gone - client.first_error, after, client.total


def build_images() -> None:
    subprocess.run(["bash", str(REPO / "deploy/images/build.sh")], check=True, capture_output=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--window", type=float, default=5.0, help="seconds per analysis window")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("reconciler.canary").setLevel(logging.INFO)

    build_images()
    owner = f"b{secrets.token_hex(4)}"
    client = docker.from_env(timeout=120)
    times: list[float] = []
    late_failures = 0
    requests = 0
    with tempfile.TemporaryDirectory() as tmp:
        pg = devstack.Postgres(Path(tmp) / "pg")
        traefik = devstack.Traefik(Path(tmp) / "traefik")
        stop = threading.Event()
        try:
            pg.start()
            traefik.start()
            os.environ.update(
                {
                    "RECONCILER_DATABASE_URL": pg.create_database(),
                    "RECONCILER_OWNER_ID": owner,
                    "RECONCILER_NAME_PREFIX": owner,
                    "RECONCILER_TRAEFIK_DYNAMIC_DIR": str(traefik.dynamic_dir),
                    "RECONCILER_TRAEFIK_API_URL": traefik.api_url,
                    "RECONCILER_METRICS_ADDR": "127.0.0.1:0",
                }
            )
            settings = Settings()
            upgrade(settings.database_url)
            runtime = build_runtime(settings, schedule=False)
            defaults = CanaryPolicyResolved(Thresholds(0.05, 1.0, 20), (), enabled=True)
            analysis = CanaryAnalysis(
                runtime.engine,
                TraefikMetricsReader(f"{traefik.api_url}/metrics"),
                runtime.reconciler,
                defaults,
                lambda tenant, message: None,
            )

            def analyse() -> None:
                while not stop.wait(args.window):
                    try:
                        analysis.run_once()
                    except Exception:  # as the scheduler does (``service.scheduler``): log, and the next window runs
                        logging.getLogger("bench").exception("canary analysis failed")

            threading.Thread(target=analyse, daemon=True).start()
            for index in range(args.runs):
                took, after, total = one_run(runtime, traefik, owner, index)
                times.append(took)
                late_failures += after
                requests += total
                print(f"run {index}: {took:.2f} s, {after} failures after weight 0, {total} requests", file=sys.stderr)
        finally:
            stop.set()
            labels = {"label": [f"tenant-reconciler.owner={owner}"]}
            for container in client.containers.list(all=True, filters=labels):
                container.remove(force=True)
            for network in client.networks.list(filters=labels):
                network.remove()
            for volume in client.volumes.list(filters=labels):
                volume.remove(force=True)
            traefik.stop()
            pg.remove()

    load = os.getloadavg()
    print(f"canary back-out, window {args.window:g} s, {len(times)} runs (first 500 to weight 0 in Traefik):")
    print(
        f"  p50 {statistics.median(times):.2f} s, p95 {percentile(times, 0.95):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s"
    )
    print(f"  all: {', '.join(f'{t:.2f}' for t in times)}")
    print(f"  requests failed after weight 0: {late_failures} of {requests} requests in all runs")
    print(f"  load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
