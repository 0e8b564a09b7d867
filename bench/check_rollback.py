"""Benchmark: an upgrade that fails its checks, rolled back through a real Traefik, under client load.

Starts its own PostgreSQL and Traefik (deploy/devstack.py, free 127.0.0.1 ports), uses the demo images and runs the
reconciler in-process with its own owner id and ``RECONCILER_CHECK_URL`` on Traefik's web entrypoint. The tenant has
two replicas of ``erp/demo-svc:1`` and the catalog's checks ``home`` (``GET /`` contains ``version=1``) and
``health``. Each run switches the desired image to ``:2`` (one pass): its checks fail, the route goes back to the
replicas of 1 and the new ones are removed. A client loops requests the whole time. Per run it measures the pass,
the window during which clients were answered by 2 (first to last answer from 2), and the failed requests; then
the desired image goes back to 1 and the stale pin is lifted, ready for the next run.

Everything it created is removed at the end. Usage::

    python bench/check_rollback.py [--runs 10]    # prints markdown-ready figures for docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "deploy"))

import devstack  # noqa: E402
import docker  # noqa: E402
import httpx  # noqa: E402

from desired_state.database import upgrade  # noqa: E402
from desired_state.load import load_desired_state  # noqa: E402
from desired_state.pins import read_pins  # noqa: E402
from desired_state.yaml_io import import_yaml  # noqa: E402
from reconciler.runtime.settings import Settings  # noqa: E402
from reconciler.runtime.wiring import build_runtime  # noqa: E402

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
      - {name: health, path: /health}
"""


def tenant_yaml(host: str, image: str) -> str:
    service = f'{{replicas: 2, image: "{image}"}}'
    return f"{CATALOG}tenants:\n  - name: shop\n    domain: {host}\n    services:\n      a: {service}\n"


class Load(threading.Thread):
    """Loops GETs; keeps (monotonic time, version or failure) of every answer."""

    def __init__(self, url: str, host: str) -> None:
        super().__init__(daemon=True)
        self.url, self.host = url, host
        self.answers: list[tuple[float, str]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=5.0) as client:
            while not self.stop_event.is_set():
                try:
                    response = client.get("/", headers={"Host": self.host})
                except httpx.HTTPError as exc:
                    self.answers.append((time.monotonic(), f"failed {type(exc).__name__}"))
                    continue
                if response.status_code != 200:
                    self.answers.append((time.monotonic(), f"failed HTTP {response.status_code}"))
                    continue
                version = dict(p.split("=", 1) for p in response.text.split() if "=" in p).get("version", "?")
                self.answers.append((time.monotonic(), version))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    owner = f"b{secrets.token_hex(4)}"
    client = docker.from_env(timeout=120)
    passes: list[float] = []
    windows: list[float] = []
    failed = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        pg = devstack.Postgres(Path(tmp) / "pg")
        traefik = devstack.Traefik(Path(tmp) / "traefik")
        try:
            pg.start()
            traefik.start()
            url = pg.create_database()
            upgrade(url)
            env = {
                "RECONCILER_DATABASE_URL": url,
                "RECONCILER_OWNER_ID": owner,
                "RECONCILER_NAME_PREFIX": owner,
                "RECONCILER_TRAEFIK_DYNAMIC_DIR": str(traefik.dynamic_dir),
                "RECONCILER_TRAEFIK_API_URL": traefik.api_url,
                "RECONCILER_CHECK_URL": traefik.web_url,
                "RECONCILER_METRICS_ADDR": "127.0.0.1:0",
            }
            os.environ.update(env)
            runtime = build_runtime(Settings())
            host = f"shop.{owner}.erp.test"
            import_yaml(runtime.engine, tenant_yaml(host, "erp/demo-svc:1"))
            assert runtime.reconciler.run_pass(scope=["shop"]).ok
            guard = runtime.reconciler.operations
            assert guard is not None
            for _ in range(args.runs):
                load = Load(traefik.web_url, host)
                load.start()
                time.sleep(0.5)
                import_yaml(runtime.engine, tenant_yaml(host, "erp/demo-svc:2"))
                started = time.monotonic()
                result = runtime.reconciler.run_pass(scope=["shop"])
                passes.append(time.monotonic() - started)
                time.sleep(0.5)
                load.stop_event.set()
                load.join(timeout=10)
                assert "shop" in result.errors and [p.failed_image for p in read_pins(runtime.engine)] == [
                    "erp/demo-svc:2"
                ], result.errors
                on_two = [t for t, v in load.answers if v == "2"]
                windows.append(on_two[-1] - on_two[0] if on_two else 0.0)
                assert load.answers[-1][1] == "1", load.answers[-5:]
                failed += sum(1 for _, v in load.answers if v.startswith("failed"))
                total += len(load.answers)
                # Back to 1 as the desired image: the pin is stale and lifted, so the next run tries 2 again.
                import_yaml(runtime.engine, tenant_yaml(host, "erp/demo-svc:1"))
                assert runtime.reconciler.run_pass(scope=["shop"]).ok
                guard.clear_stale_pins(load_desired_state(runtime.engine))  # type: ignore[attr-defined]
        finally:
            label = [f"tenant-reconciler.owner={owner}"]
            for container in client.containers.list(all=True, filters={"label": label}):
                container.remove(force=True)
            for network in client.networks.list(filters={"label": label}):
                network.remove()
            for volume in client.volumes.list(filters={"label": label}):
                volume.remove(force=True)
            traefik.stop()
            pg.remove()

    print(f"upgrade to a version failing its checks, rolled back, 2 replicas under load, {len(passes)} runs:")
    print(
        f"  pass (start 2, route, checks, route back to 1, remove 2): median {statistics.median(passes):.2f} s, "
        f"p95 {percentile(passes, 0.95):.2f} s, max {max(passes):.2f} s"
    )
    print(
        f"  clients answered by 2 (first to last such answer): median {statistics.median(windows):.2f} s, "
        f"p95 {percentile(windows, 0.95):.2f} s, max {max(windows):.2f} s"
    )
    print(f"  requests {total}, failed {failed}")
    print(f"  load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
