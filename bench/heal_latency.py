"""Benchmark: how fast `reconciler run` heals a removed container: to running, and to serving through Traefik.

Starts its own Traefik (deploy/devstack.py, free 127.0.0.1 ports) unless given one, and runs `reconciler run`
as a process on a SQLite file of its own, with its own owner id. One tenant with one public single-replica
service (erp/demo-svc:1, 32M, 0.25 CPU). Each run removes the tenant's container (``docker rm -f``) and takes
two times from just before the removal (wall clock, the engine's clock is the same):

- **running**: the engine's ``start`` event of the replacement (its ``timeNano``; read from an event stream
  filtered by the owner's label, opened before the first run);
- **serving**: a client sending a request through Traefik every 25 ms (open loop: whatever is still in flight)
  gets 200 from a container other than the removed one (its hostname, i.e. a new container id).

Then 1 s of quiet (a tenant starts at most once per second). Prints p50 / p95 / max of both; ``--json`` too.
Everything it created is removed at the end. Usage::

    python bench/heal_latency.py [--runs 20] [--json out.json] [--log run.log]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "deploy"))

import devstack  # noqa: E402
import docker  # noqa: E402
import fleet as fl  # noqa: E402
from peer_tools import reconciler_env, stop_process  # noqa: E402
from routing_heal import wait_leading, wait_serving  # noqa: E402

QUIET = 1.0  # seconds between runs: more than the one-start-per-second rate limit of a tenant
EVENT_WAIT = 30.0


def tenant_yaml(host: str) -> str:
    return (
        "catalog:\n"
        f'  a: {{image: "{fl.IMAGE}", port: {fl.PORT}, health: /health, memory: {fl.MEMORY}, cpus: {fl.CPUS}, '
        "public: true}\n"
        f"tenants:\n  - name: heal\n    domain: {host}\n    services:\n      a: {{replicas: 1}}\n"
    )


class Starts(threading.Thread):
    """The engine's start events of the owner's containers, as (engine time in seconds, container name)."""

    def __init__(self, client: docker.DockerClient, owner: str) -> None:
        super().__init__(daemon=True)
        label = f"{fl.RECONCILER_OWNER_LABEL}={owner}"
        self.stream = client.events(decode=True, filters={"type": "container", "event": "start", "label": [label]})
        self.seen: list[tuple[float, str]] = []

    def run(self) -> None:
        try:
            for event in self.stream:
                self.seen.append((event["timeNano"] / 1e9, event["Actor"]["Attributes"].get("name", "")))
        except Exception:  # the stream ends with an error when stop() closes it
            return

    def first_after(self, moment: float, timeout: float = EVENT_WAIT) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t, _ in self.seen if t > moment]
            if later:
                return min(later)
            time.sleep(0.01)
        raise RuntimeError(f"no start event within {timeout}s of the removal")

    def stop(self) -> None:
        self.stream.close()


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: p95 of 20 values is the 19th smallest."""
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "max": max(values)}


def measure(runs: int, work: Path, traefik: Any | None = None, log: Path | None = None) -> dict[str, Any]:
    """``runs`` heals under one `reconciler run`; its own Traefik unless ``traefik`` (a devstack.Traefik) is given."""
    client = docker.from_env(timeout=120)
    own = traefik is None
    traefik = traefik or devstack.Traefik(work / "traefik")
    owner = fl.new_owner("heal")
    host = f"heal.{owner}.erp.test"
    database = work / f"{owner}.sqlite3"
    env = reconciler_env(owner, database, traefik.env())
    process: subprocess.Popen[bytes] | None = None
    starts: Starts | None = None
    try:
        if own:
            traefik.start()
        tenants = work / f"{owner}.yaml"
        tenants.write_text(tenant_yaml(host))
        for args in (["db", "upgrade"], ["tenants", "import", str(tenants)], ["apply"]):
            fl.timed([sys.executable, "-m", "reconciler.cli", *args], env)
        log_path = log or work / f"{owner}-run.log"
        with log_path.open("ab") as out:
            process = _popen(env, out)
        wait_leading(log_path, owner, process)
        current = wait_serving(traefik.web_url, host, None)
        starts = Starts(client, owner)
        starts.start()
        running, serving = [], []
        for _ in range(runs):
            (container,) = fl.owned_containers(client, owner, all=False)
            removed_at = time.time()
            container.remove(force=True)
            current = wait_serving(traefik.web_url, host, current)
            serving.append(time.time() - removed_at)
            running.append(starts.first_after(removed_at) - removed_at)
            time.sleep(QUIET)
        return {
            "runs": runs,
            "running": summary(running),
            "serving": summary(serving),
            "samples": {"running": running, "serving": serving},
        }
    finally:
        if starts is not None:
            starts.stop()
        if process is not None:
            stop_process(process)
        fl.cleanup(client, owner)
        for path in traefik.dynamic_dir.glob(f"{owner}-*.yml"):
            path.unlink()
        if own:
            traefik.stop()


def _popen(env: dict[str, str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run"], env=env, stdout=out, stderr=out)


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"| heal under `reconciler run` ({result['runs']} runs) | p50 | p95 | max |",
        "|---|---:|---:|---:|",
    ]
    for key, what in (("running", "`docker rm -f` → replacement running"), ("serving", "→ serving through Traefik")):
        s = result[key]
        rows.append(f"| {what} | {s['p50']:.2f} s | {s['p95']:.2f} s | {s['max']:.2f} s |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--log", type=Path, help="keep the log of `reconciler run` here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.runs, Path(tmp), log=args.log)
    result["load"] = {"before": load_before, "after": os.getloadavg()}
    print(markdown(result))
    print(f"load average before {load_before[0]:.2f}, after {result['load']['after'][0]:.2f}")
    if args.json:
        fl.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
