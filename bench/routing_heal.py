"""Benchmark: routing heal time end to end, and failed requests during upgrades, through a real Traefik.

Starts its own PostgreSQL and Traefik (deploy/devstack.py, free 127.0.0.1 ports), builds the demo images if
needed, and runs the reconciler as ``reconciler run`` (a real process reacting to Docker events) with its own
owner id. Two measurements:

- heal: a tenant with one replica; its container is removed (``docker rm -f``); the time from the removal until
  the tenant's URL answers again through Traefik from the replacement container. The clock runs on four clients
  polling the URL, so it covers the Docker event, the pass, the new container's start and readiness, the file
  rewrite and Traefik's reload.
- upgrade: a tenant with two replicas behind a client looping requests; its image is switched between
  ``erp/demo-svc:1`` and ``:2`` several times (one pass each, in-process); every request is counted.

Everything it created is removed at the end. Usage::

    python bench/routing_heal.py [--heals 10] [--upgrades 6]    # prints markdown for docs/benchmarks.md
    python bench/routing_heal.py --log run.log                  # keeps the log of `reconciler run` (heal part)
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "deploy"))

import devstack  # noqa: E402
import docker  # noqa: E402
import httpx  # noqa: E402

from desired_state.database import upgrade  # noqa: E402
from desired_state.yaml_io import import_yaml  # noqa: E402
from reconciler.runtime.passes.routing import TraefikRouter  # noqa: E402
from reconciler.runtime.settings import Settings  # noqa: E402
from reconciler.runtime.wiring import build_runtime  # noqa: E402

CATALOG = (
    'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25, public: true}\n'
)


def tenant_yaml(name: str, host: str, service: str) -> str:
    return f"{CATALOG}tenants:\n  - name: {name}\n    domain: {host}\n    services:\n      a: {service}\n"


def fields(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


class Load(threading.Thread):
    def __init__(self, url: str, host: str) -> None:
        super().__init__(daemon=True)
        self.url, self.host = url, host
        self.counts: Counter[str] = Counter()
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=5.0) as client:
            while not self.stop_event.is_set():
                try:
                    status = client.get("/", headers={"Host": self.host}).status_code
                    self.counts["ok" if status == 200 else f"http {status}"] += 1
                except httpx.HTTPError as exc:
                    self.counts[type(exc).__name__] += 1


def wait_serving(url: str, host: str, not_from: str | None, timeout: float = 60.0, every: float = 0.025) -> str:
    """Poll until the host answers 200 from a container other than ``not_from``; returns the answering host.

    Open loop: a new request every ``every`` seconds, whatever is still in flight, as a stream of clients sends
    them. A request sent to a dead backend waits up to a second (two 500 ms dials, then 502); closed-loop pollers
    all fall into step behind such requests, and then see the replacement only when they are done, up to a second
    after Traefik began serving it (the heal figures of 2026-12-07 before this change were quantised at ~1.2 s).
    """
    found: list[str] = []
    done = threading.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)

    def poll(client: httpx.Client) -> None:
        try:
            response = client.get("/", headers={"Host": host})
        except (httpx.HTTPError, RuntimeError):  # RuntimeError: the client closed once an answer was found
            return
        answered = fields(response.text).get("host", "") if response.status_code == 200 else ""
        if answered and answered != not_from and not done.is_set():
            found.append(answered)
            done.set()

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, trust_env=False, timeout=5.0, limits=limits) as client:
        while not done.wait(every):
            if time.monotonic() > deadline:
                done.set()
                raise RuntimeError(f"{host} not served within {timeout}s")
            # Bounded: at most one request per `every` for at most `timeout` seconds, each bounded by 5 s.
            threading.Thread(target=poll, args=(client,), daemon=True).start()
    return found[0]


def wait_leading(log_path: Path, owner: str, run: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until `reconciler run` logs that it leads for ``owner``, then 2 s for its loop to start watching Docker
    events and finish its first resync (the loop logs nothing when it starts)."""
    deadline = time.monotonic() + timeout
    while f"applies changes for owner {owner}" not in log_path.read_text(errors="replace"):
        if run.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"reconciler run did not start leading; its log:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heals", type=int, default=10)
    parser.add_argument("--upgrades", type=int, default=6)
    parser.add_argument("--log", type=Path, help="write the log of `reconciler run` and each removal's time here")
    args = parser.parse_args()

    subprocess.run(["bash", str(REPO / "deploy/images/build.sh")], check=True, capture_output=True)
    owner = f"b{secrets.token_hex(4)}"
    client = docker.from_env(timeout=120)
    with tempfile.TemporaryDirectory() as tmp:
        pg = devstack.Postgres(Path(tmp) / "pg")
        traefik = devstack.Traefik(Path(tmp) / "traefik")
        run: subprocess.Popen[bytes] | None = None
        try:
            pg.start()
            traefik.start()
            env = {
                "RECONCILER_DATABASE_URL": pg.create_database(),
                "RECONCILER_OWNER_ID": owner,
                "RECONCILER_NAME_PREFIX": owner,
                "RECONCILER_TRAEFIK_DYNAMIC_DIR": str(traefik.dynamic_dir),
                "RECONCILER_TRAEFIK_API_URL": traefik.api_url,
                "RECONCILER_RESYNC_INTERVAL": "30",
                "RECONCILER_METRICS_ADDR": "127.0.0.1:0",
                "RECONCILER_BACKUP_DIR": str(Path(tmp) / "backups"),
            }
            os.environ.update(env)
            settings = Settings()
            upgrade(settings.database_url)
            runtime = build_runtime(settings)

            # --- heal ------------------------------------------------------------------------------------------
            heal_host = f"heal.{owner}.erp.test"
            import_yaml(runtime.engine, tenant_yaml("heal", heal_host, "{replicas: 1}"))
            assert runtime.reconciler.run_pass().ok
            log_path = args.log or Path(tmp) / "run.log"
            log_file = log_path.open("a")
            run = subprocess.Popen(
                [sys.executable, "-m", "reconciler.cli", "run"],
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            # The first removal must find `reconciler run` leading and watching events, not still starting.
            wait_leading(log_path, owner, run)
            current = wait_serving(traefik.web_url, heal_host, None)
            heals = []
            for _ in range(args.heals):
                label = [f"tenant-reconciler.owner={owner}", "tenant-reconciler.tenant=heal"]
                (container,) = client.containers.list(filters={"label": label})
                started = time.monotonic()
                print(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')},{int(time.time() * 1000) % 1000:03d} BENCH removing "
                    f"{container.name}",
                    file=log_file,
                    flush=True,
                )
                container.remove(force=True)
                current = wait_serving(traefik.web_url, heal_host, current)
                heals.append(time.monotonic() - started)
                print(f"BENCH served again after {heals[-1]:.2f} s", file=log_file, flush=True)
                time.sleep(1.0)
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=60)
            run = None
            log_file.close()

            # --- upgrades under load ---------------------------------------------------------------------------
            up_host = f"upgrade.{owner}.erp.test"
            import_yaml(runtime.engine, tenant_yaml("upgrade", up_host, "{replicas: 2}"))
            assert runtime.reconciler.run_pass().ok
            wait_serving(traefik.web_url, up_host, None)
            # Time each publish that changed the file: write + Traefik reload + confirmation through the API.
            router = runtime.reconciler.router
            assert isinstance(router, TraefikRouter)
            confirmations: list[float] = []
            plain_publish = router.publish

            def timed_publish(spec: Any, backends: Any) -> None:
                writes, started = router.driver.writes, time.monotonic()
                plain_publish(spec, backends)
                if router.driver.writes > writes:
                    confirmations.append(time.monotonic() - started)

            router.publish = timed_publish  # type: ignore[method-assign]
            load = Load(traefik.web_url, up_host)
            load.start()
            upgrade_times = []
            for i in range(args.upgrades):
                image = "erp/demo-svc:2" if i % 2 == 0 else "erp/demo-svc:1"
                import_yaml(runtime.engine, tenant_yaml("upgrade", up_host, f'{{replicas: 2, image: "{image}"}}'))
                started = time.monotonic()
                result = runtime.reconciler.run_pass(scope=["upgrade"])
                upgrade_times.append(time.monotonic() - started)
                assert result.ok, result.errors
                time.sleep(0.5)
            load.stop_event.set()
            load.join(timeout=10)
        finally:
            if run is not None:
                run.kill()
                run.wait()
            for container in client.containers.list(all=True, filters={"label": [f"tenant-reconciler.owner={owner}"]}):
                container.remove(force=True)
            for network in client.networks.list(filters={"label": [f"tenant-reconciler.owner={owner}"]}):
                network.remove()
            for volume in client.volumes.list(filters={"label": [f"tenant-reconciler.owner={owner}"]}):
                volume.remove(force=True)
            traefik.stop()
            pg.remove()

    total = sum(load.counts.values())
    failed = total - load.counts["ok"]
    print(f"heal (container removed -> URL served by its replacement), {len(heals)} runs:")
    print(f"  median {statistics.median(heals):.2f} s, min {min(heals):.2f} s, max {max(heals):.2f} s")
    print(f"  all: {', '.join(f'{h:.2f}' for h in heals)}")
    print(f"upgrades of a 2-replica service under load, {len(upgrade_times)} runs:")
    print(f"  pass duration median {statistics.median(upgrade_times):.2f} s, max {max(upgrade_times):.2f} s")
    print(f"  requests {total}, failed {failed} ({failed / total:.3%}); by outcome {dict(load.counts)}")
    print(
        f"  file written -> confirmed by Traefik's API: {len(confirmations)} publishes, "
        f"median {statistics.median(confirmations) * 1000:.0f} ms, max {max(confirmations) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
