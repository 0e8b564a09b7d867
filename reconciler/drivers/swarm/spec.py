"""The Swarm service spec for a ``Service`` value (docker SDK types), and the labels of its data volume.

Called by ``driver.SwarmDriver`` for create and update (an update re-asserts the whole spec, which heals any edit
made by hand). What every tenant service gets: its image from the operator's registry, env, the ownership labels
on the service and its tasks' containers, limits and equal reservations (the scheduler never over-commits a node),
the health check, ``update_config`` start-first with parallelism 1 and automatic rollback, restart policy "any",
the tenant overlay with ``endpoint_mode: dnsrr`` (task addresses: no IPVS here), the data volume mounted when the
service is stateful, and a placement constraint on the tenant's data node. And the operator's container defaults,
as the Docker engine's containers get them: pids limit, json-file log rotation, and no-new-privileges where the
manager's API carries it (``ContainerSpec.Privileges.NoNewPrivileges``, Engine API 1.44 and later; docs/swarm.md
"Hardening" says what older managers do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Healthcheck,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RestartPolicy,
    RollbackConfig,
    ServiceMode,
    TaskTemplate,
    UpdateConfig,
)

from reconciler.core.resources import DATA_MOUNT, LABEL_MANAGED, LABEL_OWNER, LABEL_TENANT, LABEL_TENANT_UID
from reconciler.core.services import Service

NS = 1_000_000_000
# Swarm's own monitor after each task update: a new task failing within it rolls the service back.
UPDATE_MONITOR = 10 * NS
RESTART_DELAY = 5 * NS
NODE_CONSTRAINT = "node.hostname=={}"
# The first Engine API whose service spec takes no-new-privileges (Docker 25: moby pull request 46386).
NO_NEW_PRIVILEGES_API = "1.44"
LOG_DRIVER = "json-file"


def volume_labels(service: Service) -> dict[str, str]:
    labels = dict(service.labels)
    keep = (LABEL_MANAGED, LABEL_OWNER, LABEL_TENANT, LABEL_TENANT_UID)
    return {k: v for k, v in labels.items() if k in keep}


def _healthcheck(service: Service) -> Healthcheck | None:
    check = service.healthcheck
    if check is None:
        return None
    return Healthcheck(
        test=["CMD-SHELL", check.command],
        interval=int(check.interval * NS),
        timeout=int(check.timeout * NS),
        retries=check.retries,
        start_period=int(check.start_period * NS),
    )


def _resources(service: Service) -> Resources:
    cpus = round(service.cpus * NS) if service.cpus is not None else None
    resources = Resources(
        cpu_limit=cpus, mem_limit=service.memory, cpu_reservation=cpus, mem_reservation=service.memory
    )
    if service.pids_limit is not None:
        # API 1.41 knows Limits.Pids; the SDK's Resources has no argument for it.
        resources.setdefault("Limits", {})["Pids"] = service.pids_limit
    return resources


@dataclass(frozen=True)
class StopPolicy:
    """How Swarm stops a task it replaces: ``signal`` first, SIGKILL after ``grace`` seconds. Routing takes the task
    out within about a second of the engine deciding to stop it (``runtime.passes.service_step``), so a service that
    keeps serving a moment after the signal (drains, or ignores it) loses no request (docs/swarm.md "Routing")."""

    signal: str = "SIGTERM"
    grace: float = 10.0


def _log_driver(service: Service) -> DriverConfig | None:
    if service.log_max_size is None:
        return None  # the node engine's own log options
    return DriverConfig(LOG_DRIVER, {"max-size": service.log_max_size, "max-file": str(service.log_max_file or 1)})


def service_spec(service: Service, stop: StopPolicy | None = None, *, privileges: bool = False) -> dict[str, Any]:
    """Keyword arguments for the SDK's ``create_service`` / ``update_service``. ``privileges``: the manager's API
    takes ``Privileges.NoNewPrivileges`` (older ones drop fields they do not know, silently)."""
    stop = stop or StopPolicy()
    labels = dict(service.labels)
    mounts = []
    if service.volume is not None:
        mounts.append(Mount(target=DATA_MOUNT, source=service.volume, type="volume", labels=volume_labels(service)))
    container = ContainerSpec(
        image=service.image,
        env=[f"{k}={v}" for k, v in service.env],
        labels=labels,
        mounts=mounts,
        healthcheck=_healthcheck(service),
        stop_signal=stop.signal,
        stop_grace_period=int(stop.grace * NS),
    )
    if privileges and service.no_new_privileges:
        # The SDK's Privileges type predates the field: set it in the spec's own words.
        container["Privileges"] = {"NoNewPrivileges": True}
    template = TaskTemplate(
        container_spec=container,
        resources=_resources(service),
        restart_policy=RestartPolicy(condition="any", delay=RESTART_DELAY),
        placement=Placement(constraints=[NODE_CONSTRAINT.format(service.node)]) if service.node else None,
        networks=[NetworkAttachmentConfig(target=service.network)],
        log_driver=_log_driver(service),
    )
    return {
        "task_template": template,
        "name": service.name,
        "labels": labels,
        "mode": ServiceMode("replicated", replicas=service.replicas),
        "update_config": UpdateConfig(
            parallelism=1, order="start-first", failure_action="rollback", monitor=UPDATE_MONITOR
        ),
        "rollback_config": RollbackConfig(parallelism=1, order="start-first", monitor=UPDATE_MONITOR),
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }
