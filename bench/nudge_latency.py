"""Benchmark: from a desired-state change plus a RabbitMQ nudge to the start of the tenant's reconcile.

Starts a throwaway PostgreSQL and RabbitMQ (deploy/devstack.py) unless RECONCILER_DATABASE_URL and
RECONCILER_RABBITMQ_URL are set, one tenant with one container on the real engine, and a real `reconciler run`
(JSON logs at DEBUG, resync every 60 s so only the nudge can start a pass). Each round changes the tenant's
environment in the database (a real change: its container is replaced), publishes a nudge on a long-lived
connection and takes the time from just before publishing to the "reconcile started" line of that tenant in
the reconciler's log (same clock: one machine). It then waits for the change to be converged and for a quiet
spell (1.5 s: a tenant starts at most once a second) before the next round. Everything it created is removed at
the end. Usage:

    python bench/nudge_latency.py [ROUNDS]        # default 20; prints a markdown table for docs/benchmarks.md

``measure`` is shared with tests/integration/test_nudges.py.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

STARTED = "reconcile started"
CATALOG = 'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}\n'


def tenant_yaml(tenant: str) -> str:
    return f"{CATALOG}tenants:\n  - name: {tenant}\n    domain: {tenant}.erp.test\n    services:\n      a: {{}}\n"


def reconcile_starts(log_path: Path, tenant: str) -> list[float]:
    """Unix times of the "reconcile started" lines of ``tenant`` in a JSON log (RECONCILER_LOG_JSON)."""
    starts = []
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if STARTED not in line or not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("tenant") == tenant and STARTED in record.get("msg", ""):
                starts.append(datetime.fromisoformat(record["ts"]).timestamp())
    return starts


def change_desired_state(engine: Engine, tenant: str, round_no: int) -> int:
    """What the web UI does on Deploy: new environment for the tenant's service, generation bumped."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE tenant_services SET env = :env WHERE tenant_id = (SELECT id FROM tenants WHERE name = :t)"),
            {"env": json.dumps({"BENCH_ROUND": str(round_no)}), "t": tenant},
        )
        connection.execute(text("UPDATE tenants SET generation = generation + 1 WHERE name = :t"), {"t": tenant})
        generation = connection.execute(text("SELECT generation FROM tenants WHERE name = :t"), {"t": tenant}).scalar()
    return int(generation or 0)


def converged(engine: Engine, tenant: str, generation: int) -> bool:
    from desired_state.status import read_status

    status = read_status(engine, tenant)
    return status is not None and status.phase == "Ready" and (status.observed_generation or 0) >= generation


def _wait(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def measure(
    engine: Engine,
    tenant: str,
    log_path: Path,
    publish: Callable[[str], None],
    rounds: int,
    *,
    quiet: float = 1.5,
    timeout: float = 30.0,
) -> list[float]:
    """Latency in seconds of each round: change + nudge → the tenant's reconcile starts."""
    latencies = []
    for round_no in range(rounds):
        generation = change_desired_state(engine, tenant, round_no)
        sent = time.time()
        publish(tenant)
        found: list[float] = []

        def started(sent: float = sent, found: list[float] = found) -> bool:
            found[:] = [t for t in reconcile_starts(log_path, tenant) if t >= sent - 0.002]
            return bool(found)

        _wait(started, timeout, f"round {round_no}: the reconcile of {tenant} to start")
        latencies.append(max(0.0, found[0] - sent))
        _wait(lambda g=generation: converged(engine, tenant, g), timeout, f"round {round_no}: convergence")
        time.sleep(quiet)
    return latencies


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


@contextmanager
def _services(stack: ExitStack, tmp: Path) -> Iterator[dict[str, str]]:
    sys.path.insert(0, str(REPO_ROOT / "deploy"))
    import devstack

    env = {}
    if os.environ.get("RECONCILER_DATABASE_URL", "").startswith("postgres"):
        env["RECONCILER_DATABASE_URL"] = os.environ["RECONCILER_DATABASE_URL"]
    else:
        pg = stack.enter_context(devstack.Postgres(tmp / "postgres"))
        env["RECONCILER_DATABASE_URL"] = pg.create_database()
    if os.environ.get("RECONCILER_RABBITMQ_URL"):
        env["RECONCILER_RABBITMQ_URL"] = os.environ["RECONCILER_RABBITMQ_URL"]
    else:
        env["RECONCILER_RABBITMQ_URL"] = stack.enter_context(devstack.RabbitMQ(tmp / "rabbitmq")).url
    yield env


def run(rounds: int) -> list[float]:
    import docker

    from desired_state.database import make_engine, upgrade
    from desired_state.yaml_io import import_yaml
    from reconciler.runtime.service.nudges import Nudge, Topology, nudge_publisher

    subprocess.run(["bash", str(REPO_ROOT / "deploy/images/build.sh")], check=True, capture_output=True)
    owner = f"n{secrets.token_hex(4)}"
    tenant = "latency"
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        services = stack.enter_context(_services(stack, tmp))
        env = {
            **os.environ,
            **services,
            "RECONCILER_OWNER_ID": owner,
            "RECONCILER_NAME_PREFIX": owner,
            "RECONCILER_RABBITMQ_EXCHANGE": f"{owner}.bench",
            "RECONCILER_RABBITMQ_QUEUE": f"{owner}.bench.nudges",
            "RECONCILER_RESYNC_INTERVAL": "60",
            "RECONCILER_METRICS_ADDR": "127.0.0.1:0",
            "RECONCILER_LOG_JSON": "true",
            "RECONCILER_LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(REPO_ROOT),
        }
        upgrade(services["RECONCILER_DATABASE_URL"])
        engine = make_engine(services["RECONCILER_DATABASE_URL"])
        import_yaml(engine, tenant_yaml(tenant))
        log_path = tmp / "run.log"
        with open(log_path, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler.cli", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            _wait(lambda: converged(engine, tenant, 1), 60, "the tenant to converge")
            topology = Topology(env["RECONCILER_RABBITMQ_EXCHANGE"], env["RECONCILER_RABBITMQ_QUEUE"])
            with nudge_publisher(services["RECONCILER_RABBITMQ_URL"], topology) as publisher:
                time.sleep(1.0)
                return measure(engine, tenant, log_path, lambda t: publisher.publish(Nudge(t, "bench")), rounds)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            engine.dispose()
            client = docker.from_env()
            label = {"label": [f"tenant-reconciler.owner={owner}"]}
            for container in client.containers.list(all=True, filters=label):
                container.remove(force=True)
            for network in client.networks.list(filters=label):
                network.remove()
            for volume in client.volumes.list(filters=label):
                volume.remove(force=True)


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 20
    latencies = run(rounds)
    ms = [v * 1000 for v in latencies]
    print("| nudges | median | p95 | max | mean |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {len(ms)} | {statistics.median(ms):.0f} ms | {p95(ms):.0f} ms | {max(ms):.0f} ms "
        f"| {statistics.mean(ms):.0f} ms |"
    )
    return 0 if p95(latencies) < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
