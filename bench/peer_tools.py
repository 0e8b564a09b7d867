"""The peers of bench/peers.py: the same fleet through the Docker SDK, Docker Compose v2 and the reconciler.

Every peer is driven the same way by peers.py: ``prepare`` (a new owner id, the peer's input files, not
timed), ``converge`` (from empty), ``noop`` (one whole-process re-run per scenario), ``heal`` (one re-run after
peers.py removed a container, or for ``reconciler run`` the wait for it to heal on its own), ``cleanup``.
Every timed step is a whole process started here (the SDK peer too: bench/peer_sdk.py), so interpreter and
CLI start-up count for every peer alike.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import docker
import fleet as fl

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
READY_POLL = 0.05  # seconds between reads of tenant_statuses while `reconciler run` converges
HEAL_POLL = 0.02  # seconds between list calls while `reconciler run` heals on its own
CONVERGE_TIMEOUT = 1800.0


class Peer:
    key: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, client: docker.DockerClient, work: Path, size: int) -> None:
        self.client, self.work, self.size = client, work, size
        self.fleet = fl.Fleet(size, fl.new_owner(self.key))

    def prepare(self) -> None:
        """A fresh owner id and this peer's input for it (not timed)."""
        self.fleet = fl.Fleet(self.size, fl.new_owner(self.key))
        self.dir = self.work / self.fleet.owner
        self.dir.mkdir(parents=True)

    def converge(self) -> float:
        raise NotImplementedError

    def noop(self) -> dict[str, float]:
        """Scenario name → seconds of one whole-process re-run that must change nothing."""
        return {"noop": self.rerun()}

    def heal(self) -> float:
        return self.rerun()

    def rerun(self) -> float:
        return self.converge()

    def cleanup(self) -> None:
        fl.cleanup(self.client, self.fleet.owner)

    def facts(self) -> dict[str, Any]:
        """What this peer's converge was checked to have done (peers.py adds the container count)."""
        return {}


class SdkPeer(Peer):
    key = "sdk"
    title = "SDK, 4 threads (floor)"

    def prepare(self) -> None:
        super().prepare()
        subnets = fl.free_subnets(self.client, self.size)
        spec = fl.sdk_spec(self.fleet, dict(zip(self.fleet.tenants, subnets, strict=True)))
        self.spec = fl.write_json(self.dir / "sdk.json", spec)

    def converge(self) -> float:
        seconds, _ = fl.timed([sys.executable, str(BENCH / "peer_sdk.py"), str(self.spec)])
        return seconds


class ComposePeer(Peer):
    """One compose project per tenant, ``up -d`` (with ``--wait`` and a health check in the --wait variant)."""

    key = "compose-parallel"
    title = "Compose, 4 in parallel"
    parallel = 4
    wait = False

    def prepare(self) -> None:
        super().prepare()
        subnets = fl.free_subnets(self.client, self.size)
        self.files = []
        for tenant, subnet in zip(self.fleet.tenants, subnets, strict=True):
            path = self.dir / f"{tenant}.compose.yaml"  # JSON is YAML
            fl.write_json(path, fl.compose_file(self.fleet, tenant, subnet, healthcheck=self.wait))
            self.files.append((tenant, path))

    def commands(self) -> list[list[str]]:
        extra = ["--wait"] if self.wait else []
        return [
            [fl.compose_binary(), "-f", str(path), "-p", self.fleet.network(tenant), "up", "-d", *extra]
            for tenant, path in self.files
        ]

    def converge(self) -> float:
        return fl.timed_all(self.commands(), self.parallel)

    def facts(self) -> dict[str, Any]:
        # Compose v2 maps deploy.resources.limits onto the container on a single engine: check, don't assume.
        first = next(c for c in fl.owned_containers(self.client, self.fleet.owner) if "-t0-a-" in c.name)
        limits = fl.limits_of(self.client, first.name)
        expected = {"memory": fl.MEMORY_BYTES, "nano_cpus": int(fl.CPUS * 1e9)}
        if limits != expected:
            raise RuntimeError(f"compose container {first.name} has limits {limits}, expected {expected}")
        return {"limits_checked": limits}


class ComposeSerialPeer(ComposePeer):
    key = "compose-serial"
    title = "Compose, one by one"
    parallel = 1


class ComposeWaitPeer(ComposePeer):
    key = "compose-wait"
    title = "Compose, 4 in parallel, `--wait`"
    wait = True


class ReconcilerPeer(Peer):
    """``reconciler apply`` as a process on a SQLite file of its own; ``stack`` adds routing and DNS."""

    key = "apply"
    title = "`apply`, containers"

    def __init__(self, client: docker.DockerClient, work: Path, size: int, stack: dict[str, str] | None = None) -> None:
        super().__init__(client, work, size)
        self.stack = stack

    def prepare(self) -> None:
        super().prepare()
        owner = self.fleet.owner
        self.database = self.dir / "reconciler.sqlite3"
        self.env = reconciler_env(owner, self.database, self.stack)
        parent = f"{owner}.test" if self.stack else f"{owner}.erp.test"
        if self.stack:
            self.env["RECONCILER_POWERDNS_ZONES"] = json.dumps([f"{parent}."])
        tenants = self.dir / "tenants.yaml"
        tenants.write_text(fl.reconciler_yaml(self.fleet, parent))
        self.cli("db", "upgrade")
        self.cli("tenants", "import", str(tenants))

    def cli(self, *args: str) -> float:
        seconds, _ = fl.timed([sys.executable, "-m", "reconciler.cli", *args], self.env)
        return seconds

    def converge(self) -> float:
        return self.cli("apply")

    def noop(self) -> dict[str, float]:
        # `plan` exits 2 when a change is pending: fl.timed raises then.
        return {"noop": self.cli("apply"), "noop-plan": self.cli("plan")}

    def cleanup(self) -> None:
        super().cleanup()
        if self.stack:
            for path in Path(self.stack["RECONCILER_TRAEFIK_DYNAMIC_DIR"]).glob(f"{self.fleet.owner}-*.yml"):
                path.unlink()


class ReconcilerLayersPeer(ReconcilerPeer):
    key = "apply-layers"
    title = "`apply`, + routes, DNS"


class ReconcilerRunPeer(ReconcilerPeer):
    """``reconciler run`` from empty: timed from its start until every tenant's status row says Ready."""

    key = "run"
    title = "`run`, containers"
    process: subprocess.Popen[bytes] | None = None

    def converge(self) -> float:
        log = (self.dir / "run.log").open("wb")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while ready_tenants(self.database) < self.size:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"reconciler run did not converge:\n{(self.dir / 'run.log').read_text()[-2000:]}")
            time.sleep(READY_POLL)
        return time.perf_counter() - started

    def noop(self) -> dict[str, float]:
        return {}

    def heal(self) -> float:
        """peers.py removed a container just before: the time until every container runs again, unattended
        (from just after the removal returned; bench/heal_latency.py measures it from before, with events)."""
        started = time.perf_counter()
        deadline = time.monotonic() + 120
        while fl.running_count(self.client, self.fleet.owner) < self.fleet.containers:
            if time.monotonic() > deadline:
                raise RuntimeError("reconciler run did not heal within 120 s")
            time.sleep(HEAL_POLL)
        return time.perf_counter() - started

    def cleanup(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        super().cleanup()


def reconciler_env(owner: str, database: Path, stack: dict[str, str] | None) -> dict[str, str]:
    """The environment of a reconciler process: this checkout's code, this owner, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    # As installed (pip writes bytecode): PYTHONDONTWRITEBYTECODE, set on some machines, would make every start
    # compile the project from source (about 0.15 s here), a cost no installed peer pays (bench/cli_start.py too).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "PYTHONPATH": str(REPO),
        "RECONCILER_DATABASE_URL": f"sqlite:///{database}",
        "RECONCILER_OWNER_ID": owner,
        "RECONCILER_NAME_PREFIX": owner,
        "RECONCILER_METRICS_ADDR": "127.0.0.1:0",
    }
    return env | (stack or {})


def ready_tenants(database: Path) -> int:
    """Tenants whose status row says Ready: written by the pass that applied their plan, after it did."""
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1.0)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM tenant_statuses WHERE phase = 'Ready'").fetchone()
    except sqlite3.OperationalError:
        return 0  # the writer holds the lock this instant
    return int(count)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


PEERS: dict[str, type[Peer]] = {
    p.key: p
    for p in (
        SdkPeer,
        ComposePeer,
        ComposeSerialPeer,
        ReconcilerPeer,
        ReconcilerLayersPeer,
        ReconcilerRunPeer,
        # Last in each round: its health checks (an exec per container a second) load the machine for a while
        # after its containers are gone, which would fall on whichever peer came next.
        ComposeWaitPeer,
    )
}
