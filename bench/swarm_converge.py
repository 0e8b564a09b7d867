"""Converge time of fleet-N on the three-node Swarm lab: the reconciler's Swarm engine against ``docker stack
deploy`` of per-tenant Compose files (``reconciler render compose``), in the same run (issue 13).

    scripts/swarm.sh up && python bench/swarm_converge.py [--tenants 20] [--reps 1] [--json FILE]

The fleet is bench/fleet.py's: tenants t0..tN-1, services a..f on erp/demo-svc:1, a with 2 replicas (7 tasks per
tenant, 140 for fleet-20), 32M each but 0.01 CPU (the lab's 6 CPUs cannot reserve 0.25 for 140 tasks), and no health
check (140 checks a second would be the benchmark).
Both peers start from an empty swarm and run under an owner id of their own; each timing ends when every task of
the fleet runs (one task listing every 0.5 s), and the stack peer's command time is shown too.

- ``reconciler``: ``python -m reconciler.cli apply`` with ``RECONCILER_ENGINE=swarm`` on a SQLite file into which
  the fleet was imported (not timed): overlays, services, data nodes chosen and recorded; it returns once every
  service runs its replicas.
- ``stack``: the same fleet rendered by ``reconciler render compose --out DIR`` (not timed; images prefixed with the
  lab registry), then ``docker stack deploy`` of the 20 files, 4 at a time. Stack deploy places nothing: its
  services spread; the reconciler keeps each tenant's stateful services on its data node.

Cleanup removes the peer's services, waits until no node lists its networks, removes its volumes on every node.
Only objects labelled with the peer's owner id are touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[1]
MANAGER = "unix:///run/trsw/n1.sock"
NODES = {n: f"unix:///run/trsw/{n}.sock" for n in ("n1", "n2", "n3")}
REGISTRY = "10.232.7.11:5000"
SERVICES = ("a", "b", "c", "d", "e", "f")
OWNER = "tenant-reconciler.owner"
# Reservations equal limits (both peers), and each lab node offers the host's 2 CPUs: 140 tasks at bench/fleet.py's
# 0.25 CPU would reserve 35 CPUs, which the lab's 6 cannot give ("no suitable node"). 0.01 CPU each fits.
CPUS = 0.01


def fleet_yaml(count: int) -> str:
    catalog = "".join(
        f"  {s}: {{image: erp/demo-svc:1, port: 8080, health: /health, memory: 32M, cpus: {CPUS}}}\n" for s in SERVICES
    )
    services = "".join(f"      {s}: {{replicas: 2}}\n" if s == "a" else f"      {s}: {{}}\n" for s in SERVICES)
    tenants = "".join(f"  - name: t{i}\n    domain: t{i}.erp.test\n    services:\n{services}" for i in range(count))
    return f"catalog:\n{catalog}tenants:\n{tenants}"


def env_for(owner: str, db: Path, pool: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RECONCILER_DATABASE_URL": f"sqlite:///{db}",
        "RECONCILER_OWNER_ID": owner,
        "RECONCILER_NAME_PREFIX": owner,
        "RECONCILER_SUBNET_POOL": pool,
        "RECONCILER_ENGINE": "swarm",
        "RECONCILER_DOCKER_HOST": MANAGER,
        "RECONCILER_SWARM_REGISTRY": REGISTRY,
        "RECONCILER_SWARM_NODE_HOSTS": ",".join(f"{n}={u}" for n, u in NODES.items()),
        "RECONCILER_READY_TIMEOUT": "900",
        "RECONCILER_MASS_DELETE_MIN": "1000",
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"reconciler {' '.join(args)} failed: {done.stderr[-800:]}")
    return done


def running(api: docker.APIClient, owner: str) -> int:
    ours = {s["ID"] for s in api.services(filters={"label": [f"{OWNER}={owner}"]})}
    tasks = api.tasks(filters={"desired-state": "running"})
    return sum(1 for t in tasks if t.get("ServiceID") in ours and t["Status"]["State"] == "running")


def wait_running(api: docker.APIClient, owner: str, expected: int, started: float, limit: float = 1800) -> float:
    while running(api, owner) < expected:
        if time.monotonic() - started > limit:
            raise SystemExit(f"{owner}: not every task running after {limit:.0f}s")
        time.sleep(0.5)
    return time.monotonic() - started


def cleanup(api: docker.APIClient, owner: str) -> None:
    for service in api.services(filters={"label": [f"{OWNER}={owner}"]}):
        api.remove_service(service["ID"])
    deadline = time.monotonic() + 300
    clients = {n: docker.APIClient(base_url=u, version="auto") for n, u in NODES.items()}
    while time.monotonic() < deadline:
        left = 0
        for client in clients.values():
            for network in client.networks(filters={"label": [f"{OWNER}={owner}"]}):
                left += 1
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_network(network["Id"])
        if not left:
            break
        time.sleep(1)
    for client in clients.values():
        for volume in (client.volumes(filters={"label": [f"{OWNER}={owner}"]}) or {}).get("Volumes") or []:
            for _ in range(60):
                try:
                    client.remove_volume(volume["Name"])
                    break
                except docker.errors.APIError:
                    time.sleep(1)  # its task container is still being removed


def reconciler_peer(api: docker.APIClient, count: int, work: Path) -> dict[str, float]:
    owner = f"bsr{secrets.token_hex(3)}"
    db = work / f"{owner}.sqlite3"
    env = env_for(owner, db, "10.213.0.0/16")
    (work / "fleet.yaml").write_text(fleet_yaml(count))
    cli(env, "db", "upgrade")
    cli(env, "tenants", "import", str(work / "fleet.yaml"))
    try:
        started = time.monotonic()
        cli(env, "apply")
        returned = time.monotonic() - started
        converged = wait_running(api, owner, count * 7, started)
        return {"command": returned, "converged": converged}
    finally:
        cleanup(api, owner)


def stack_peer(api: docker.APIClient, count: int, work: Path) -> dict[str, float]:
    owner = f"bst{secrets.token_hex(3)}"
    db = work / f"{owner}.sqlite3"
    env = env_for(owner, db, "10.214.0.0/16")
    (work / "fleet.yaml").write_text(fleet_yaml(count))
    cli(env, "db", "upgrade")
    cli(env, "tenants", "import", str(work / "fleet.yaml"))
    out = work / owner
    cli(env, "render", "compose", "--out", str(out))
    files = sorted(out.glob("*.compose.yaml"))
    for path in files:
        path.write_text(path.read_text().replace("image: erp/demo-svc:1", f"image: {REGISTRY}/erp/demo-svc:1"))

    def deploy(path: Path) -> None:
        stack = f"{owner}-{path.name.split('.')[0]}"
        subprocess.run(
            ["docker", "-H", MANAGER, "stack", "deploy", "--detach=true", "-c", str(path), stack],
            check=True,
            capture_output=True,
            text=True,
        )

    try:
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(deploy, files))
        returned = time.monotonic() - started
        converged = wait_running(api, owner, count * 7, started)
        return {"command": returned, "converged": converged}
    finally:
        cleanup(api, owner)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    api = docker.APIClient(base_url=MANAGER, version="auto", timeout=120)
    samples: dict[str, list[dict[str, float]]] = {"reconciler": [], "stack": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            # Alternating which peer goes first, so neither always finds the workers' image caches warm.
            peers = (("reconciler", reconciler_peer), ("stack", stack_peer))
            for name, peer in peers if rep % 2 == 0 else peers[::-1]:
                result = peer(api, args.tenants, Path(tmp))
                samples[name].append(result)
                print(
                    f"rep {rep + 1} {name}: {json.dumps({k: round(v, 1) for k, v in result.items()})}", file=sys.stderr
                )
    facts: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "tenants": args.tenants,
        "tasks": args.tenants * 7,
        "samples": samples,
    }
    print(json.dumps(facts, indent=2))
    if args.json:
        args.json.write_text(json.dumps(facts, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
