"""Swarm list results as the core's values: services, their tasks (as containers), overlays, nodes, volumes.

Called by ``driver.SwarmDriver.observe`` with the raw answers of its list calls. The list of services returns
each full spec, so image, replicas, env, limits, placement, log rotation and privileges are read without any
inspection, and drift made by hand is seen on every pass. Tasks are reported as ``Container`` values (the task's
slot as replica, its address on the tenant overlay as ``ip``, its node), so routing and status read them like
containers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.resources import (
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    LABEL_TENANT_UID,
    LABEL_TRACK,
    Container,
    Network,
    Volume,
)
from reconciler.core.services import Node, Service
from reconciler.drivers.swarm.spec import LOG_DRIVER, NODE_CONSTRAINT

NS = 1_000_000_000
_CONSTRAINT_PREFIX = NODE_CONSTRAINT.format("")


def owned(labels: Mapping[str, str] | None, owner: str, tenant: str | None = None) -> bool:
    labels = labels or {}
    if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_OWNER) != owner:
        return False
    return tenant is None or labels.get(LABEL_TENANT) == tenant


def _image(ref: str) -> str:
    # Swarm pins the digest it resolved (``image:tag@sha256:...``); the spec names the tag.
    return ref.split("@", 1)[0]


def _log_rotation(template: Mapping[str, Any]) -> tuple[str | None, int | None]:
    driver = template.get("LogDriver") or {}
    options = driver.get("Options") or {}
    if driver.get("Name") != LOG_DRIVER or not options.get("max-size"):
        return None, None
    try:
        return str(options["max-size"]), int(options.get("max-file") or 1)
    except ValueError:
        return str(options["max-size"]), None


def service_from_list(raw: Mapping[str, Any], network_names: Mapping[str, str], *, privileges: bool = False) -> Service:
    """``privileges``: the manager's API carries ``Privileges.NoNewPrivileges`` (otherwise it is not known: None)."""
    spec = raw.get("Spec") or {}
    labels: dict[str, str] = spec.get("Labels") or {}
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    limits = (template.get("Resources") or {}).get("Limits") or {}
    env = tuple(sorted(tuple(item.split("=", 1)) for item in container.get("Env") or [] if "=" in item))
    networks = [network_names.get(n.get("Target", ""), n.get("Target", "")) for n in template.get("Networks") or []]
    mounts = [m.get("Source") for m in container.get("Mounts") or [] if m.get("Type") == "volume"]
    constraints = (template.get("Placement") or {}).get("Constraints") or []
    nodes = [c.removeprefix(_CONSTRAINT_PREFIX) for c in constraints if c.startswith(_CONSTRAINT_PREFIX)]
    replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0)
    nano = limits.get("NanoCPUs")
    env_map = dict(env)
    log_size, log_files = _log_rotation(template)
    no_new = bool((container.get("Privileges") or {}).get("NoNewPrivileges")) if privileges else None
    return Service(
        name=spec.get("Name", ""),
        tenant=labels.get(LABEL_TENANT, ""),
        service=labels.get(LABEL_SERVICE, ""),
        track=labels.get(LABEL_TRACK, ""),
        image=_image(container.get("Image", "")),
        replicas=int(replicas),
        spec_hash=labels.get(LABEL_SPEC_HASH, ""),
        network=networks[0] if networks else "",
        volume=mounts[0] if mounts else None,
        node=nodes[0] if nodes else None,
        port=int(env_map.get("ERP_PORT", "0") or 0),
        memory=limits.get("MemoryBytes") or None,
        cpus=nano / NS if nano else None,
        env=env,
        labels=tuple(sorted(labels.items())),
        pids_limit=limits.get("Pids") or None,
        log_max_size=log_size,
        log_max_file=log_files,
        no_new_privileges=no_new,
        id=raw.get("ID"),
        version=(raw.get("Version") or {}).get("Index"),
    )


def task_as_container(raw: Mapping[str, Any], service: Service, node_names: Mapping[str, str]) -> Container:
    spec = raw.get("Spec") or {}
    container = spec.get("ContainerSpec") or {}
    labels: dict[str, str] = container.get("Labels") or {}
    ip = None
    networks = []
    for attachment in raw.get("NetworksAttachments") or []:
        name = ((attachment.get("Network") or {}).get("Spec") or {}).get("Name", "")
        networks.append(name)
        if name == service.network and attachment.get("Addresses"):
            ip = attachment["Addresses"][0].split("/", 1)[0]
    slot = int(raw.get("Slot") or 0)
    task_id = str(raw.get("ID", ""))
    return Container(
        name=f"{service.name}.{slot}.{task_id}",
        tenant=service.tenant,
        service=service.service,
        replica=slot,
        image=_image(container.get("Image", "")),
        spec_hash=labels.get(LABEL_SPEC_HASH, ""),
        network=service.network,
        volume=service.volume or "",
        port=service.port,
        state=str((raw.get("Status") or {}).get("State", "")),
        labels=tuple(sorted(labels.items())),
        track=service.track,
        id=task_id,
        ip=ip,
        networks=tuple(networks),
        node=node_names.get(raw.get("NodeID", "")),
    )


def network_from_list(raw: Mapping[str, Any]) -> Network:
    labels = raw.get("Labels") or {}
    subnets = [c.get("Subnet") for c in (raw.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
    return Network(
        name=raw["Name"],
        tenant=labels.get(LABEL_TENANT, ""),
        subnet=subnets[0] if subnets else None,
        id=raw.get("Id"),
        uid=labels.get(LABEL_TENANT_UID),
    )


def node_from_list(raw: Mapping[str, Any]) -> Node:
    spec = raw.get("Spec") or {}
    description = raw.get("Description") or {}
    return Node(
        name=description.get("Hostname", ""),
        id=raw.get("ID", ""),
        availability=spec.get("Availability", "active"),
        state=(raw.get("Status") or {}).get("State", "unknown"),
        labels=tuple(sorted((spec.get("Labels") or {}).items())),
        memory=int((description.get("Resources") or {}).get("MemoryBytes") or 0),
        cpus=int((description.get("Resources") or {}).get("NanoCPUs") or 0) / NS,
    )


def volume_from_list(raw: Mapping[str, Any], node: str) -> Volume:
    labels = raw.get("Labels") or {}
    return Volume(name=raw["Name"], tenant=labels.get(LABEL_TENANT, ""), uid=labels.get(LABEL_TENANT_UID), node=node)
