"""Resource value types shared by the desired side (renderers) and the observed side (drivers).

One frozen type per kind, so the diff compares like with like. Fields the Docker list API cannot report
cheaply (env, limits) are ``None`` on observed values and the diff relies on the spec-hash label for those,
except on containers the driver inspected (``inspected``: memory, CPUs, pids limit and networks are then what the
engine has now, so drift the label cannot show is seen). Pure values, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    # Swarm values (``core.services``) sit in the snapshot beside containers; that module imports this one.
    from reconciler.core.services import Node, Service

LABEL_PREFIX = "tenant-reconciler"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_OWNER = f"{LABEL_PREFIX}.owner"
LABEL_TENANT = f"{LABEL_PREFIX}.tenant"
LABEL_SERVICE = f"{LABEL_PREFIX}.service"
LABEL_REPLICA = f"{LABEL_PREFIX}.replica"
LABEL_TRACK = f"{LABEL_PREFIX}.track"
LABEL_SPEC_HASH = f"{LABEL_PREFIX}.spec-hash"
LABEL_IMAGE = f"{LABEL_PREFIX}.image"
# The tenant's stable uid (``tenants.uid``): who the object belongs to when a name is reused.
LABEL_TENANT_UID = f"{LABEL_PREFIX}.tenant-uid"
# Where a tenant's data volume is mounted in its containers (and in backup and migration helpers).
DATA_MOUNT = "/data"

DesiredRun = Literal["running", "stopped"]


@dataclass(frozen=True)
class Network:
    name: str
    tenant: str
    subnet: str | None = None
    id: str | None = None  # observed only
    # The tenant uid label (desired: given at creation; observed: None for networks made before uids).
    uid: str | None = field(default=None, compare=False)
    # Observed only, Swarm engine with a router container: whether the router (Traefik) is attached to it (None: no
    # router to attach). Compared, so a router that lost it invalidates the converged cache (``core.diff``).
    router: bool | None = None

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Volume:
    name: str
    tenant: str
    # The tenant uid label, set when the volume is created and never changed (observed: None on older volumes).
    uid: str | None = field(default=None, compare=False)
    # Swarm only: the node that holds (desired: should hold) the volume; None on the single engine.
    node: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class HealthCheck:
    """A Docker health check (``--health-cmd``, run with the container's shell). As a setting, ``{port}`` and
    ``{health}`` in the command stand for the service's port and health path; rendered, they are filled in."""

    command: str
    interval: float = 10.0
    timeout: float = 3.0
    retries: int = 3
    start_period: float = 10.0


@dataclass(frozen=True)
class ContainerDefaults:
    """Settings every tenant container gets (``Settings.container_*``); part of the spec hash when rendered.

    ``pids_limit`` None: no limit; ``log_max_size`` None: the engine's log options; ``log_max_file`` only with it.
    """

    pids_limit: int | None = 512
    log_max_size: str | None = "10m"
    log_max_file: int = 3
    no_new_privileges: bool = True


@dataclass(frozen=True)
class Container:
    """One replica of one tenant service."""

    name: str
    tenant: str
    service: str
    replica: int
    image: str
    spec_hash: str
    network: str
    volume: str
    port: int
    health: str = "/health"
    env: tuple[tuple[str, str], ...] | None = None
    memory: int | None = None
    cpus: float | None = None
    # Desired: "running" or "stopped". Observed: Docker's state (running, exited, created, restarting, ...).
    state: str = "running"
    labels: tuple[tuple[str, str], ...] = ()
    # Which version of a two-version (weighted) service: "" for the first, "b" for the second.
    track: str = ""
    # Desired only: the Docker health check to give the container (None: the image's own, if any).
    healthcheck: HealthCheck | None = None
    # Desired: the operator's defaults (``ContainerDefaults``); observed: the pids limit when ``inspected``.
    pids_limit: int | None = None
    log_max_size: str | None = None
    log_max_file: int | None = None
    no_new_privileges: bool = False
    # Observed only. ``inspected``: memory, cpus, pids_limit and networks were read by inspecting the container.
    inspected: bool = False
    id: str | None = None
    ip: str | None = None
    networks: tuple[str, ...] = ()
    health_status: str | None = None  # healthy | unhealthy | starting | None (no health check)
    # Swarm only: the node a task runs on (a task is reported as a container: routing reads its address).
    node: str | None = None

    @property
    def slot(self) -> tuple[str, str, str, int]:
        """What a replica is: tenant, service, track, index. Several containers may briefly fill one slot."""
        return (self.tenant, self.service, self.track, self.replica)

    @property
    def key(self) -> str:
        return self.name

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class DesiredTenant:
    """Everything one valid tenant should have, as rendered from its spec."""

    tenant: str
    network: Network | None
    volume: Volume | None
    containers: tuple[Container, ...]
    state: Literal["running", "stopped", "absent"] = "running"
    # On an engine that schedules replicas itself: the containers grouped into services (``renderers.services``).
    services: tuple[Service, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The observed world in one pass: only objects carrying our labels, plus every subnet in use."""

    containers: tuple[Container, ...] = ()
    networks: tuple[Network, ...] = ()
    volumes: tuple[Volume, ...] = ()
    used_subnets: tuple[str, ...] = field(default_factory=tuple)
    # Swarm only (``core.services``): owned services, and every node of the swarm (not per tenant).
    services: tuple[Service, ...] = ()
    nodes: tuple[Node, ...] = ()

    def tenants(self) -> frozenset[str]:
        return frozenset(self._by_tenant)

    def for_tenant(self, tenant: str) -> Snapshot:
        """The objects of one tenant (in the order of the whole snapshot), from an index built on the first call,
        so planning every tenant costs one scan of the snapshot instead of one per tenant."""
        part = self._by_tenant.get(tenant)
        if part is None:
            return Snapshot(used_subnets=self.used_subnets, nodes=self.nodes)
        return part

    @cached_property
    def _by_tenant(self) -> dict[str, Snapshot]:
        # A frozen value never changes, so the index is computed once; cached_property writes the instance's
        # __dict__ directly, which a frozen dataclass allows, and it is not a field (no effect on == or repr).
        containers: dict[str, list[Container]] = {}
        networks: dict[str, list[Network]] = {}
        volumes: dict[str, list[Volume]] = {}
        services: dict[str, list[Service]] = {}
        for s in self.services:
            services.setdefault(s.tenant, []).append(s)
        for c in self.containers:
            containers.setdefault(c.tenant, []).append(c)
        for n in self.networks:
            networks.setdefault(n.tenant, []).append(n)
        for v in self.volumes:
            volumes.setdefault(v.tenant, []).append(v)
        return {
            tenant: Snapshot(
                containers=tuple(containers.get(tenant, ())),
                networks=tuple(networks.get(tenant, ())),
                volumes=tuple(volumes.get(tenant, ())),
                used_subnets=self.used_subnets,
                services=tuple(services.get(tenant, ())),
                nodes=self.nodes,
            )
            for tenant in {*containers, *networks, *volumes, *services}
        }
