"""The raw Docker SDK peer of bench/peers.py: the floor a Python tool on this engine can reach.

Run as its own process (``python bench/peer_sdk.py SPEC.json``, the spec written by ``fleet.sdk_spec``), so it
is timed like the other peers, interpreter start included. It lists the owner's containers, networks and
volumes (three label-filtered list calls), then, 4 tenants at a time (ThreadPoolExecutor), creates what is
missing: network (its own subnet), volume, each container created and started one after the other; a
container that exists but is not running is started. Finally it waits until every container it created or
started reports ``running``. No readiness probe: that is what makes it a floor. Prints what it did as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
from docker.types import IPAMConfig, IPAMPool, LogConfig

THREADS = 4
IMAGE = "erp/demo-svc:1"
MEMORY_BYTES = 32 * 1024 * 1024
NANO_CPUS = 250_000_000
RUNNING_TIMEOUT = 60.0


def ensure_tenant(client: docker.DockerClient, tenant: dict[str, Any], seen: dict[str, set[str]]) -> dict[str, int]:
    done = {"networks": 0, "volumes": 0, "created": 0, "started": 0}
    labels = tenant["labels"]
    if tenant["network"] not in seen["networks"]:
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=tenant["subnet"])])
        client.networks.create(tenant["network"], driver="bridge", ipam=ipam, labels=labels)
        done["networks"] += 1
    if tenant["volume"] not in seen["volumes"]:
        client.volumes.create(tenant["volume"], labels=labels)
        done["volumes"] += 1
    waiting = []
    for spec in tenant["containers"]:
        name = spec["name"]
        if name in seen["running"]:
            continue
        if name not in seen["containers"]:
            container = client.containers.create(
                IMAGE,
                name=name,
                environment=spec["env"],
                labels=labels,
                mem_limit=MEMORY_BYTES,
                nano_cpus=NANO_CPUS,
                network=tenant["network"],
                volumes={tenant["volume"]: {"bind": "/data", "mode": "rw"}},
                restart_policy={"Name": "unless-stopped"},
                pids_limit=512,
                log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
                security_opt=["no-new-privileges"],
            )
            done["created"] += 1
        else:
            container = client.containers.get(name)
        container.start()
        done["started"] += 1
        waiting.append(container)
    for container in waiting:
        wait_running(container)
    return done


def wait_running(container: Any) -> None:
    deadline = time.monotonic() + RUNNING_TIMEOUT
    container.reload()
    while container.status != "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{container.name} not running within {RUNNING_TIMEOUT}s: {container.status}")
        time.sleep(0.02)
        container.reload()


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    client = docker.from_env(timeout=120)
    label = {"label": [f"{spec['owner_label']}={spec['owner']}"]}
    containers = client.containers.list(all=True, filters=label)
    seen = {
        "containers": {c.name for c in containers},
        "running": {c.name for c in containers if c.status == "running"},
        "networks": {n.name for n in client.networks.list(filters=label)},
        "volumes": {v.name for v in client.volumes.list(filters=label)},
    }
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda t: ensure_tenant(client, t, seen), spec["tenants"]))
    totals = {key: sum(r[key] for r in results) for key in results[0]} if results else {}
    print(json.dumps(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
