"""Benchmark: HTTP API latency of listing every tenant with its status, and of a plan preview.

Starts a throwaway PostgreSQL (deploy/devstack.py) unless RECONCILER_DATABASE_URL names a PostgreSQL database,
imports N tenants (default 500) with a Ready status each, and serves the API (``reconciler.api.app``) with uvicorn
on a free 127.0.0.1 port in this process. Then it times, from a client on one keep-alive connection:

- ``GET /api/v1/tenants`` (every tenant with its status), ROUNDS times;
- ``POST /api/v1/tenants/<t>/preview`` of a replicas change (validation, one desired-state load, a Docker
  observation of this owner's objects on the real engine, route files not configured, ``plan_pass``), ROUNDS times.

Usage::

    python bench/api_latency.py [--tenants 500] [--rounds 50]    # prints a markdown table for docs/benchmarks.md
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "deploy"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from desired_state.access import create_token  # noqa: E402
from desired_state.database import make_engine, upgrade  # noqa: E402
from desired_state.model import Condition, TenantStatus  # noqa: E402
from desired_state.status import write_statuses  # noqa: E402
from desired_state.yaml_io import import_yaml  # noqa: E402
from reconciler.api.app import create_app  # noqa: E402
from reconciler.runtime.settings import Settings  # noqa: E402

CATALOG = 'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}\n'


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered)) - 1)]


@contextmanager
def database(stack: ExitStack) -> Iterator[str]:
    url = os.environ.get("RECONCILER_DATABASE_URL", "")
    if url.startswith("postgres"):
        yield url
        return
    import devstack

    pg = stack.enter_context(devstack.Postgres(Path(tempfile.mkdtemp(prefix="api-bench-")) / "postgres"))
    yield pg.create_database()


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def timed(call: Callable[[], httpx.Response], rounds: int) -> list[float]:
    call()  # warm-up: first connection, first plan (cold caches)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = call()
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    owner = f"b{secrets.token_hex(4)}"
    with ExitStack() as stack:
        url = stack.enter_context(database(stack))
        upgrade(url)
        engine = make_engine(url)
        names = [f"t{i:04d}" for i in range(args.tenants)]
        body = "".join(
            f"  - name: {n}\n    domain: {n}.erp.test\n    services:\n      a: {{replicas: 1}}\n" for n in names
        )
        import_yaml(engine, f"{CATALOG}tenants:\n{body}")
        ready = (Condition("Ready", "True", "AllReplicasRunning"),)
        write_statuses(engine, [TenantStatus(n, "Ready", ready, observed_generation=1) for n in names])
        token = create_token(engine, "bench", "viewer")[1]
        settings = Settings(database_url=url, owner_id=owner, name_prefix=owner, usage_interval=0)
        base = stack.enter_context(serving(settings))
        client = stack.enter_context(
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        )
        listing = timed(lambda: client.get("/api/v1/tenants"), args.rounds)
        assert len(client.get("/api/v1/tenants").json()) == args.tenants
        change = {"patch": {"services": {"a": {"replicas": 2}}}}
        preview = timed(lambda: client.post(f"/api/v1/tenants/{names[0]}/preview", json=change), args.rounds)
        engine.dispose()
    load = os.getloadavg()
    print(f"tenants {args.tenants}, rounds {args.rounds}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("| request | p50 | p95 | max |\n|---|---:|---:|---:|")
    for label, values in ((f"GET /api/v1/tenants ({args.tenants} with status)", listing), ("plan preview", preview)):
        print(
            f"| {label} | {statistics.median(values) * 1000:.0f} ms | {percentile(values, 0.95) * 1000:.0f} ms "
            f"| {max(values) * 1000:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
