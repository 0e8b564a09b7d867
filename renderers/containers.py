"""Render a tenant's spec into the Docker resources it should have: network, data volume, containers (pure).

Called by the runtime for every valid tenant before the diff. Names derive from tenant, service, version track,
replica and the spec hash, so a replacement container can start next to the one it replaces. Every object carries our
labels (with the tenant's uid when it has one); the spec-hash label is how the diff detects changed env or limits
without inspecting containers. The
operator's container defaults (pids limit, log rotation, no-new-privileges) are rendered into every container
and its hash when given.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from desired_state.specs import ServiceSpec, TenantSpec, VersionSpec
from reconciler.core.resources import (
    DATA_MOUNT,
    LABEL_IMAGE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    LABEL_TENANT_UID,
    LABEL_TRACK,
    Container,
    ContainerDefaults,
    DesiredTenant,
    HealthCheck,
    Network,
    Volume,
)

# Where every service finds the tenant's data volume.
# Environment the platform injects so a service knows who it serves (the demo image prints them).
INJECTED_ENV = ("ERP_TENANT", "ERP_SERVICE", "ERP_REPLICA", "ERP_PORT")


@dataclass(frozen=True)
class Naming:
    """How names and ownership labels are made; ``owner`` lets several reconcilers share one engine."""

    prefix: str = "erp"
    owner: str = "default"

    def network(self, tenant: str) -> str:
        return f"{self.prefix}-{tenant}"

    def volume(self, tenant: str) -> str:
        return f"{self.prefix}-{tenant}-data"

    def container(self, tenant: str, service: str, replica: int, spec_hash: str, track: str = "") -> str:
        # The first track keeps the plain name, so turning a service into two versions leaves it running.
        middle = f"{service}-{track}" if track else service
        return f"{self.prefix}-{tenant}-{middle}-{replica}-{spec_hash[:8]}"

    def base_labels(self, tenant: str, uid: str | None = None) -> dict[str, str]:
        labels = {LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_TENANT: tenant}
        if uid:
            labels[LABEL_TENANT_UID] = uid
        return labels


def container_env(tenant: TenantSpec, service: ServiceSpec, replica: int) -> tuple[tuple[str, str], ...]:
    env = dict(service.env)
    env.update(
        {
            "ERP_TENANT": tenant.name,
            "ERP_SERVICE": service.name,
            "ERP_REPLICA": str(replica),
            "ERP_PORT": str(service.port),
        }
    )
    return tuple(sorted(env.items()))


# What ``json.dumps(fields, sort_keys=True, separators=(",", ":"))`` builds on every call, built once: the same text
# (the spec hash must not change), without an encoder per container.
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def spec_hash(fields: dict[str, object]) -> str:
    payload = _HASH_ENCODER.encode(fields)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def render_healthcheck(template: HealthCheck, service: ServiceSpec) -> HealthCheck:
    command = template.command.replace("{port}", str(service.port)).replace("{health}", service.health)
    return replace(template, command=command)


def render_container(
    tenant: TenantSpec,
    service: ServiceSpec,
    replica: int,
    naming: Naming,
    version: VersionSpec | None = None,
    *,
    healthcheck: HealthCheck | None = None,
    defaults: ContainerDefaults | None = None,
    uid: str | None = None,
) -> Container:
    version = version or service.tracks()[0]
    network = naming.network(tenant.name)
    volume = naming.volume(tenant.name)
    env = container_env(tenant, service, replica)
    check = render_healthcheck(healthcheck, service) if healthcheck is not None else None
    fields: dict[str, object] = {
        "image": version.image,
        "env": env,
        "memory": service.memory,
        "cpus": service.cpus,
        "port": service.port,
        "health": service.health,
        "network": network,
        "volume": volume,
        "mount": DATA_MOUNT,
    }
    if check is not None:
        # Only when configured, so turning the setting on replaces containers and leaving it off changes nothing.
        fields["healthcheck"] = [check.command, check.interval, check.timeout, check.retries, check.start_period]
    if defaults is not None:
        # Always part of the hash when given (the runtime always gives them): changing a default replaces every
        # container once, and so does the upgrade that introduced them (docs/runtime.md).
        fields["defaults"] = [
            defaults.pids_limit,
            defaults.log_max_size,
            defaults.log_max_file,
            defaults.no_new_privileges,
        ]
    digest = spec_hash(fields)
    # The uid label is not in the hash: giving an existing tenant its uid replaces no container.
    labels = naming.base_labels(tenant.name, uid) | {
        LABEL_SERVICE: service.name,
        LABEL_REPLICA: str(replica),
        LABEL_SPEC_HASH: digest,
        LABEL_IMAGE: version.image,
    }
    if version.track:
        labels[LABEL_TRACK] = version.track
    return Container(
        name=naming.container(tenant.name, service.name, replica, digest, version.track),
        tenant=tenant.name,
        service=service.name,
        replica=replica,
        image=version.image,
        spec_hash=digest,
        network=network,
        volume=volume,
        port=service.port,
        health=service.health,
        env=env,
        memory=service.memory,
        cpus=service.cpus,
        state="stopped" if tenant.state == "stopped" else "running",
        labels=tuple(sorted(labels.items())),
        track=version.track,
        healthcheck=check,
        pids_limit=defaults.pids_limit if defaults else None,
        log_max_size=defaults.log_max_size if defaults else None,
        log_max_file=defaults.log_max_file if defaults and defaults.log_max_size else None,
        no_new_privileges=defaults.no_new_privileges if defaults else False,
    )


def render_tenant(
    tenant: TenantSpec,
    naming: Naming,
    *,
    healthcheck: HealthCheck | None = None,
    defaults: ContainerDefaults | None = None,
    uid: str | None = None,
) -> DesiredTenant:
    """``uid``: the tenant's stable uid (``DesiredState.uids``), labelled on what is created for it."""
    if tenant.state == "absent":
        return DesiredTenant(tenant=tenant.name, network=None, volume=None, containers=(), state="absent")
    containers = tuple(
        render_container(tenant, service, replica, naming, version, healthcheck=healthcheck, defaults=defaults, uid=uid)
        for service in tenant.services
        for version in service.tracks()
        for replica in range(version.replicas)
    )
    return DesiredTenant(
        tenant=tenant.name,
        network=Network(name=naming.network(tenant.name), tenant=tenant.name, uid=uid),
        volume=Volume(name=naming.volume(tenant.name), tenant=tenant.name, uid=uid),
        containers=containers,
        state=tenant.state,
    )
