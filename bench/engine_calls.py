"""Benchmark: wall time of one Docker driver action through the Engine API against the CLI it replaced.

Per repetition, on the real engine, with its own owner id: create a network, run one container (create + start),
stop and remove it; once through ``DockerDriver`` (the Engine API, as the pass does it now) and once through the
python-on-whales CLI calls the driver made before (``docker run``/``stop``/``rm``/``network create`` wrapped in
coreutils ``timeout``, a process per call). The container is erp/demo-svc:1 (deploy/images/build.sh) on its own
/26 of 10.216.0.0/16, 32 MiB, 0.25 CPU. Starting the running container again is a no-op for the engine, so
that row is the client's own cost per call (a process, or a request). Prints the median and p90 per action and
path, with the load average before and after (the machine is shared: read the figures with it). Everything it
made is removed at the end.

    python bench/engine_calls.py          # 20 repetitions
    python bench/engine_calls.py 50
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reconciler.core.resources import DATA_MOUNT, Container, Network, Volume  # noqa: E402
from reconciler.drivers.docker import DockerDriver  # noqa: E402

POOL = ipaddress.ip_network("10.216.0.0/16")
IMAGE = "erp/demo-svc:1"
# Seconds a container runs before it is stopped (not timed): stopped at once, its process may not yet handle
# TERM and the stop waits the whole grace period, which measures the image, not the call.
SETTLE = 1.0


def _free_subnets(driver: DockerDriver, count: int) -> list[str]:
    used = [ipaddress.ip_network(s) for s in driver.used_subnets()]
    free = [str(n) for n in POOL.subnets(new_prefix=26) if not any(n.overlaps(u) for u in used)]
    return free[:count]


def _container(owner: str, name: str, network: str, volume: str, labels: dict[str, str]) -> Container:
    return Container(
        name=name, tenant="bench", service="a", replica=0, image=IMAGE, spec_hash="0" * 16, network=network,
        volume=volume, port=8080, env=(("ERP_TENANT", "bench"),), memory=32 * 1024 * 1024, cpus=0.25,
        labels=tuple(sorted(labels.items())), pids_limit=512, log_max_size="10m", log_max_file=3,
        no_new_privileges=True,
    )  # fmt: skip


def _old_run(driver: DockerDriver, c: Container) -> None:
    """The python-on-whales call the driver made before the Engine API."""
    driver.cli.container.run(
        c.image, name=c.name, detach=True, labels=dict(c.labels), envs=dict(c.env or ()), memory=c.memory,
        cpus=c.cpus, networks=[c.network], volumes=[(c.volume, DATA_MOUNT)], restart="unless-stopped", pull="never",
        pids_limit=c.pids_limit, log_driver="json-file", log_options=["max-size=10m", "max-file=3"],
        security_options=["no-new-privileges"],
    )  # fmt: skip


class Rounds:
    """One repetition of each action on one path; wall seconds collected by ``action/path``."""

    def __init__(self, driver: DockerDriver, labels: dict[str, str]) -> None:
        self.driver = driver
        self.labels = labels
        self.results: dict[str, list[float]] = defaultdict(list)

    def _timed(self, key: str, action: Callable[[], object]) -> None:
        started = time.perf_counter()
        action()
        self.results[key].append(time.perf_counter() - started)

    def api(self, net: Network, c: Container) -> None:
        self._timed("create network/api", lambda: self.driver.create_network(net, self.labels))
        self._timed("run container/api", lambda: self.driver.run_container(c))
        self._timed("start running container/api", lambda: self.driver.start_container(c))
        time.sleep(SETTLE)
        self._timed("stop+remove container/api", lambda: self.driver.remove_container(c))
        self.driver.remove_network(net)

    def cli(self, net: Network, c: Container) -> None:
        cli = self.driver.cli
        self._timed(
            "create network/cli",
            lambda: cli.network.create(net.name, driver="bridge", subnet=net.subnet, labels=self.labels),
        )
        self._timed("run container/cli", lambda: _old_run(self.driver, c))
        self._timed("start running container/cli", lambda: cli.container.start(c.name))
        time.sleep(SETTLE)

        def stop_remove() -> None:
            cli.container.stop(c.name, time=10)
            cli.container.remove(c.name, force=True)

        self._timed("stop+remove container/cli", stop_remove)
        cli.network.remove(net.name)


def main(repetitions: int) -> None:
    owner = f"b{secrets.token_hex(4)}"
    driver = DockerDriver(owner)
    labels = {
        "tenant-reconciler.managed": "true",
        "tenant-reconciler.owner": owner,
        "tenant-reconciler.tenant": "bench",
    }
    volume = Volume(name=f"{owner}-bench-data", tenant="bench")
    driver.create_volume(volume, labels)
    rounds = Rounds(driver, labels)
    load_before = os.getloadavg()
    try:
        subnets = _free_subnets(driver, 2 * repetitions)
        for i in range(repetitions):
            for path in ("api", "cli"):
                net = Network(name=f"{owner}-{path}{i}", tenant="bench", subnet=subnets.pop())
                c = _container(owner, f"{owner}-bench-{path}{i}", net.name, volume.name, labels)
                (rounds.api if path == "api" else rounds.cli)(net, c)
    finally:
        for raw in driver.api.containers(all=True, filters={"label": [f"tenant-reconciler.owner={owner}"]}):
            driver.api.remove_container(raw["Id"], force=True)
        for raw in driver.api.networks(filters={"label": [f"tenant-reconciler.owner={owner}"]}):
            driver.api.remove_network(raw["Id"])
        driver.remove_volume(volume.name, "bench")
    load_after = os.getloadavg()
    print(f"{repetitions} repetitions; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("| action | Engine API median (p90) | CLI median (p90) |")
    print("|---|---|---|")
    for action in ("run container", "stop+remove container", "create network", "start running container"):
        cells = []
        for path in ("api", "cli"):
            values = sorted(rounds.results[f"{action}/{path}"])
            p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
            cells.append(f"{statistics.median(values) * 1000:.0f} ms ({p90 * 1000:.0f})")
        print(f"| {action} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
