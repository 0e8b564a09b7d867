"""Group a rendered tenant's containers into Swarm services (pure): the desired side of ``core.service_diff``.

Called by ``planning.placement`` for tenants of the Swarm engine, after ``renderers.containers.render_tenant`` (so
a service runs exactly what a container would: image, env, limits, health check, labels, and the operator's
container defaults: pids limit, log rotation, no-new-privileges). One service per tenant
service and version track, with the track's replica count (0 for a stopped tenant). Stateful services (every
service not named stateless) mount the data volume and are constrained to the tenant's data node; stateless ones
mount nothing and may spread. ``ERP_REPLICA`` becomes Swarm's task slot template, the one per-replica value.
Images are prefixed with the operator's registry (``RECONCILER_SWARM_REGISTRY``) so every node can pull them.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.placement import Need
from reconciler.core.resources import LABEL_REPLICA, LABEL_SPEC_HASH, Container, DesiredTenant
from reconciler.core.services import Service
from renderers.containers import spec_hash

# Swarm fills this in per task: the slot number (1..replicas) of the task.
SLOT_TEMPLATE = "{{.Task.Slot}}"


def registry_image(image: str, registry: str | None) -> str:
    """``image`` as pulled from ``registry``, unless it names a registry already (``host.domain/``, ``host:5000/``)."""
    if not registry:
        return image
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"{registry.rstrip('/')}/{image}"


def _service(first: Container, replicas: int, node: str | None, stateful: bool, registry: str | None) -> Service:
    key = f"{first.service}-{first.track}" if first.track else first.service
    image = registry_image(first.image, registry)
    env = tuple(sorted((k, SLOT_TEMPLATE if k == "ERP_REPLICA" else v) for k, v in (first.env or ())))
    volume = first.volume if stateful else None
    placed = node if stateful else None
    digest = spec_hash({"container": first.spec_hash, "image": image, "volume": volume, "node": placed})
    labels = {k: v for k, v in first.labels if k != LABEL_REPLICA} | {LABEL_SPEC_HASH: digest}
    return Service(
        name=f"{first.network}-{key}",
        tenant=first.tenant,
        service=first.service,
        track=first.track,
        image=image,
        replicas=replicas,
        spec_hash=digest,
        network=first.network,
        volume=volume,
        node=placed,
        port=first.port,
        health=first.health,
        memory=first.memory,
        cpus=first.cpus,
        env=env,
        labels=tuple(sorted(labels.items())),
        healthcheck=first.healthcheck,
        pids_limit=first.pids_limit,
        log_max_size=first.log_max_size,
        log_max_file=first.log_max_file,
        no_new_privileges=first.no_new_privileges,
    )


def render_services(
    tenant: DesiredTenant, *, node: str | None, stateless: frozenset[str], registry: str | None
) -> DesiredTenant:
    """The tenant with its services filled in and its volume on ``node`` (None: no data node chosen yet)."""
    groups: dict[tuple[str, str], list[Container]] = {}
    for container in tenant.containers:
        groups.setdefault((container.service, container.track), []).append(container)
    running = tenant.state == "running"
    services = tuple(
        _service(
            min(group, key=lambda c: c.replica),
            len(group) if running else 0,
            node,
            service not in stateless,
            registry,
        )
        for (service, _), group in sorted(groups.items())
    )
    volume = replace(tenant.volume, node=node) if tenant.volume is not None else None
    return replace(tenant, services=services, volume=volume)


def stateful_need(tenant: DesiredTenant, stateless: frozenset[str]) -> Need:
    """What the tenant's stateful replicas reserve on its data node (what placement must fit)."""
    stateful = [c for c in tenant.containers if c.service not in stateless]
    return Need(sum(c.memory or 0 for c in stateful), sum(c.cpus or 0.0 for c in stateful))
