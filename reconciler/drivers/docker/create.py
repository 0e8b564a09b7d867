"""What the Engine API is given to create a tenant's container, network and volume (docker SDK ``APIClient``).

The same objects ``docker run -d --pull never``, ``docker network create`` and ``docker volume create`` made when
the driver went through the CLI, option for option: tests/integration/test_docker_driver_api.py creates one each
way and compares ``docker inspect``. No I/O here; ``drivers.docker.driver`` makes the calls.
"""

from __future__ import annotations

from typing import Any

import docker
from docker.types import Healthcheck, IPAMConfig, IPAMPool, LogConfig

from reconciler.core.resources import DATA_MOUNT, Container, HealthCheck, Network

# Docker's unit for durations (health check) and for CPUs (NanoCpus): nanoseconds, billionths of a CPU.
NANO = 1_000_000_000
# The restart policy of every tenant container: back after a daemon restart, not after `docker stop`.
RESTART_POLICY = {"Name": "unless-stopped", "MaximumRetryCount": 0}
# What the CLI sends for options we leave unset (empty lists, not null), so `docker inspect` reads the same as for
# a container made by `docker run`: people and scripts comparing the two see no difference.
CLI_EMPTY_HOST_OPTIONS: dict[str, Any] = {
    "BlkioDeviceReadBps": [],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteBps": [],
    "BlkioDeviceWriteIOps": [],
    "BlkioWeightDevice": [],
    "Devices": [],
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "PortBindings": {},
    "Ulimits": [],
}


def container_create(api: docker.APIClient, container: Container) -> dict[str, Any]:
    """``APIClient.create_container`` arguments for a tenant container (detached, the image's own command)."""
    options: dict[str, Any] = {
        "image": container.image,
        "name": container.name,
        "detach": True,
        "labels": dict(container.labels),
        "environment": [f"{key}={value}" for key, value in container.env or ()],
        "host_config": CLI_EMPTY_HOST_OPTIONS | api.create_host_config(**_host_options(container)),
        "networking_config": api.create_networking_config({container.network: api.create_endpoint_config()}),
    }
    if container.healthcheck is not None:
        options["healthcheck"] = _healthcheck(container.healthcheck)
    return options


def _host_options(container: Container) -> dict[str, Any]:
    options: dict[str, Any] = {
        "binds": [f"{container.volume}:{DATA_MOUNT}"],
        "network_mode": container.network,
        "restart_policy": RESTART_POLICY,
    }
    if container.memory is not None:
        # No swap limit given: the engine sets twice the memory, as it did for `docker run --memory`.
        options["mem_limit"] = container.memory
    if container.cpus is not None:
        options["nano_cpus"] = round(container.cpus * NANO)
    if container.pids_limit is not None:
        options["pids_limit"] = container.pids_limit
    if container.log_max_size is not None:
        config = {"max-size": container.log_max_size, "max-file": str(container.log_max_file or 1)}
        options["log_config"] = LogConfig(type=LogConfig.types.JSON, config=config)
    if container.no_new_privileges:
        options["security_opt"] = ["no-new-privileges"]
    return options


def _healthcheck(check: HealthCheck) -> Healthcheck:
    """``--health-cmd`` and friends; the command runs with the container's shell (``CMD-SHELL``)."""
    return Healthcheck(
        test=["CMD-SHELL", check.command],
        interval=round(check.interval * NANO),
        timeout=round(check.timeout * NANO),
        retries=check.retries,
        start_period=round(check.start_period * NANO),
    )


def network_create(network: Network, labels: dict[str, str]) -> dict[str, Any]:
    """``APIClient.create_network`` arguments: a bridge with the tenant's subnet. ``check_duplicate``: engines
    before API 1.44 otherwise create a second network of the same name (the CLI always asked for the check)."""
    pools = [IPAMPool(subnet=network.subnet)] if network.subnet else []
    return {
        "name": network.name,
        "driver": "bridge",
        # Options as the CLI sends them (empty, not null; the SDK drops an empty dict).
        "ipam": IPAMConfig(driver="default", pool_configs=pools) | {"Options": {}},
        "labels": labels,
        "check_duplicate": True,
    }


def container_limits(container: Container) -> dict[str, Any]:
    """The body of ``POST /containers/{name}/update`` (``docker update``): memory, CPUs, pids limit."""
    body: dict[str, Any] = {}
    if container.cpus is not None:
        body["NanoCpus"] = round(container.cpus * NANO)
    if container.memory is not None:
        # `docker run --memory M` gives swap 2M; keep that, or a raised memory limit exceeds the swap limit.
        body |= {"Memory": container.memory, "MemorySwap": 2 * container.memory}
    if container.pids_limit is not None:
        body["PidsLimit"] = container.pids_limit
    return body
