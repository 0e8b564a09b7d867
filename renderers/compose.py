"""Render a tenant's desired state as a Compose file (pure): one project per tenant.

Called by ``reconciler render compose`` (``reconciler.runtime.render_compose``) with the ``DesiredTenant`` that
``renderers.containers.render_tenant`` made for the pass, so the file says what the reconciler would run, not a
second reading of the spec. The file follows the Compose specification and is meant for both ``docker compose up``
on one engine and ``docker stack deploy`` on a Swarm (issue 13): a network with the tenant's subnet, the data
volume, and one service per tenant service and version track with its replicas, limits, health check, rolling
update and restart policy. Routing stays with Traefik's file provider, so no Traefik labels and no published ports.

What a Compose service cannot say: every replica of one service gets the same environment, so ``ERP_REPLICA``
(a per-container value in the single-engine renderer) is left out; container names are the engine's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from reconciler.core.diff import SubnetPool
from reconciler.core.resources import (
    DATA_MOUNT,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    LABEL_TENANT_UID,
    Container,
    DesiredTenant,
)
from reconciler.core.subnets import allocate_subnet

# Keys a Compose file uses for the tenant's network and volume inside the project (their engine names are ours).
NETWORK_KEY = "tenant"
VOLUME_KEY = "data"
# Per-container values: replicas of a Compose service are identical, so these cannot be said per replica.
PER_REPLICA_ENV = frozenset({"ERP_REPLICA"})
PER_REPLICA_LABELS = frozenset({LABEL_REPLICA, LABEL_SPEC_HASH})
# What ``--redact`` writes instead of a value the tenant's spec gave (platform-injected values stay).
REDACTED = "<redacted>"
INJECTED_ENV = frozenset({"ERP_TENANT", "ERP_SERVICE", "ERP_PORT"})
# The Swarm update the ARCHITECTURE's replacement order asks for: new task first, one at a time, roll back on failure.
UPDATE_CONFIG = {"parallelism": 1, "order": "start-first", "failure_action": "rollback"}
ROLLBACK_CONFIG = {"parallelism": 1, "order": "start-first"}
# The single engine runs tenant containers with ``--restart unless-stopped``; Swarm's nearest is "any".
RESTART_POLICY = {"condition": "any", "delay": "5s"}
# ``docker stack deploy`` validates against its own schemas by this version (3.8 refuses ``limits.pids``);
# ``docker compose`` ignores it.
STACK_VERSION = "3.9"


def compose_subnets(
    rendered: Mapping[str, DesiredTenant], pool: SubnetPool, used: Iterable[str] = ()
) -> dict[str, str]:
    """Each tenant's subnet, chosen as the planner chooses it (``core.subnets``): tenants in name order, each
    avoiding ``used`` (the engine's subnets, when known) and the subnets given to the tenants before it."""
    taken = list(used)
    subnets: dict[str, str] = {}
    for name, tenant in sorted(rendered.items()):
        if tenant.network is None:
            continue
        subnet = tenant.network.subnet or allocate_subnet(tenant.network.name, pool.pool, pool.prefixlen, taken)
        taken.append(subnet)
        subnets[name] = subnet
    return subnets


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _service_key(container: Container) -> str:
    return f"{container.service}-{container.track}" if container.track else container.service


def _env(container: Container, redact: bool) -> dict[str, str]:
    env = {k: v for k, v in (container.env or ()) if k not in PER_REPLICA_ENV}
    if redact:
        env = {k: v if k in INJECTED_ENV else REDACTED for k, v in env.items()}
    return env


def _resources(container: Container) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if container.cpus is not None:
        limits["cpus"] = f"{container.cpus:g}"
    if container.memory is not None:
        limits["memory"] = f"{container.memory}b"
    # Reservations equal to limits: the scheduler never places more on a node than it can hold.
    resources: dict[str, Any] = {"limits": dict(limits), "reservations": dict(limits)}
    if container.pids_limit is not None:
        resources["limits"]["pids"] = container.pids_limit
    return resources


def _service(container: Container, replicas: int, redact: bool) -> dict[str, Any]:
    labels = {k: v for k, v in container.labels if k not in PER_REPLICA_LABELS}
    service: dict[str, Any] = {
        "image": container.image,
        "environment": _env(container, redact),
        "labels": labels,
        "networks": [NETWORK_KEY],
        "volumes": [f"{VOLUME_KEY}:{DATA_MOUNT}"],
        "deploy": {
            "replicas": replicas,
            # Task addresses, not a virtual IP: routing reaches tasks by address, and this kernel has no IPVS.
            "endpoint_mode": "dnsrr",
            "labels": dict(labels),
            "resources": _resources(container),
            "update_config": dict(UPDATE_CONFIG),
            "rollback_config": dict(ROLLBACK_CONFIG),
            "restart_policy": dict(RESTART_POLICY),
        },
    }
    check = container.healthcheck
    if check is not None:
        service["healthcheck"] = {
            "test": ["CMD-SHELL", check.command],
            "interval": _seconds(check.interval),
            "timeout": _seconds(check.timeout),
            "retries": check.retries,
            "start_period": _seconds(check.start_period),
        }
    if container.log_max_size is not None:
        options = {"max-size": container.log_max_size, "max-file": str(container.log_max_file or 1)}
        service["logging"] = {"driver": "json-file", "options": options}
    if container.no_new_privileges:
        service["security_opt"] = ["no-new-privileges:true"]
    return service


def _services(tenant: DesiredTenant, redact: bool) -> dict[str, Any]:
    groups: dict[str, list[Container]] = {}
    for container in tenant.containers:
        groups.setdefault(_service_key(container), []).append(container)
    running = tenant.state == "running"
    return {
        key: _service(min(group, key=lambda c: c.replica), len(group) if running else 0, redact)
        for key, group in sorted(groups.items())
    }


def _object_labels(tenant: DesiredTenant) -> dict[str, str]:
    first = tenant.containers[0].labels if tenant.containers else ()
    keep = {LABEL_MANAGED, LABEL_OWNER, LABEL_TENANT, LABEL_TENANT_UID}
    labels = {k: v for k, v in first if k in keep} or {LABEL_MANAGED: "true", LABEL_TENANT: tenant.tenant}
    if tenant.network is not None and tenant.network.uid:
        labels[LABEL_TENANT_UID] = tenant.network.uid
    return labels


def render_compose(tenant: DesiredTenant, subnet: str, *, redact: bool = False) -> dict[str, Any]:
    """The Compose document for one tenant that is not absent; ``subnet`` from ``compose_subnets``.

    A stopped tenant keeps its network, volume and services with zero replicas. ``redact`` replaces the values
    of the tenant's own environment variables (the file then cannot deploy them; see docs/swarm.md).
    """
    if tenant.state == "absent" or tenant.network is None or tenant.volume is None:
        raise ValueError(f"tenant {tenant.tenant!r} is absent: it has no Compose file")
    labels = _object_labels(tenant)
    return {
        "version": STACK_VERSION,
        "services": _services(tenant, redact),
        "networks": {
            NETWORK_KEY: {"name": tenant.network.name, "labels": dict(labels), "ipam": {"config": [{"subnet": subnet}]}}
        },
        "volumes": {VOLUME_KEY: {"name": tenant.volume.name, "labels": dict(labels)}},
    }


def holds_secrets(tenant: DesiredTenant) -> bool:
    """Whether the tenant's services carry environment values of their own (which may be secrets)."""
    return any(k not in INJECTED_ENV | PER_REPLICA_ENV for c in tenant.containers for k, _ in (c.env or ()))


def compose_text(document: Mapping[str, Any], tenant: str) -> str:
    header = f"# Compose file for tenant {tenant}, written by `reconciler render compose` (do not edit: re-render)\n"
    return header + yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=120)
