"""Swarm services as resource values: what an orchestrating engine runs instead of one container per replica.

Used by both sides of the diff when the engine schedules replicas itself (``RECONCILER_ENGINE=swarm``): the
planner groups a tenant's rendered containers into one ``Service`` per tenant service and version track
(``renderers.services``), the Swarm driver reports each owned Swarm service as one (``drivers.swarm``), and
``core.service_diff`` compares them, so ``reconciler plan`` shows ``+ service``, ``~ service`` and ``- service``
like any other layer. ``Node`` is a Swarm node as the placement step sees it (``core.placement``). Pure values.

Why a value of its own (docs/swarm.md "How the core sees a Swarm service"): the engine, not the reconciler, owns
the replicas of a Swarm service, their start-first replacement and their rollback; diffing per-replica containers
would make the reconciler fight the scheduler. The service's tasks are still reported as ``Container`` values
(observed only), so routing and status read task addresses the way they read container addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.core.resources import HealthCheck


@dataclass(frozen=True)
class Service:
    """One Swarm service: a tenant service's version track with its replicas (desired and observed alike).

    ``node``: the hostname the service is constrained to (a stateful service, on the tenant's data node), None
    for a stateless one that may spread. ``volume``: the data volume it mounts (None: stateless, no mount).
    """

    name: str
    tenant: str
    service: str
    track: str
    image: str
    replicas: int
    spec_hash: str
    network: str
    volume: str | None
    node: str | None
    port: int
    health: str = "/health"
    memory: int | None = None
    cpus: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    healthcheck: HealthCheck | None = field(default=None, compare=False)
    # The operator's container defaults (``ContainerDefaults``), as the Docker engine's containers get them. Not
    # compared: the spec hash covers a change of the defaults; ``core.service_drift`` names edits made by hand.
    # Observed ``no_new_privileges`` None: the manager's API cannot carry it (docs/swarm.md "Hardening").
    pids_limit: int | None = field(default=None, compare=False)
    log_max_size: str | None = field(default=None, compare=False)
    log_max_file: int | None = field(default=None, compare=False)
    no_new_privileges: bool | None = field(default=False, compare=False)
    # Observed only: the Swarm service's id and spec version (an update names the version it replaces), and how
    # many of its tasks run now. Not compared: they change without the spec changing.
    id: str | None = field(default=None, compare=False)
    version: int | None = field(default=None, compare=False)
    running: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        return self.name

    @property
    def replica(self) -> int:
        """Plan ordering treats a service like its first replica."""
        return 0


@dataclass(frozen=True)
class Node:
    """One Swarm node: its hostname, whether the scheduler may use it, its labels and memory."""

    name: str
    id: str
    availability: str = "active"  # active | pause | drain
    state: str = "ready"  # ready | down | unknown | disconnected
    labels: tuple[tuple[str, str], ...] = ()
    memory: int = 0
    cpus: float = 0.0  # 0: not known (not checked)

    @property
    def usable(self) -> bool:
        return self.availability == "active" and self.state == "ready"
