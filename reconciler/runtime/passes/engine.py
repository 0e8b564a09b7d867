"""The container engine a pass drives: the small protocol ``passes.reconcile`` and ``passes.executor`` need.

The single Docker engine (``reconciler.drivers.docker.DockerDriver``) and Docker Swarm mode
(``reconciler.drivers.swarm.SwarmDriver``) implement it; the pass does not know which one runs. An engine that
schedules replicas itself reports services in its snapshot and is given service changes (``core.services``); the
single engine never is (its ``*_service`` methods refuse). Operations
(backups, migrations), the event watcher and the crash tracker use engine-specific drivers of their own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol, runtime_checkable

from reconciler.core.resources import Container, Network, Snapshot, Volume
from reconciler.core.services import Service


class ContainerEngine(Protocol):
    @property
    def calls(self) -> Mapping[str, int]:
        """Calls made so far by kind (list, inspect, mutate, ...), for metrics and the no-op pass bound."""

    def observe(self, tenant: str | None = None, *, scope: Collection[str] | None = None) -> Snapshot:
        """Every owned network, volume and container (a bounded number of calls, whatever the fleet's size)."""

    def container(self, name: str) -> Container | None: ...

    def used_subnets(self) -> list[str]: ...

    def create_network(self, network: Network, labels: dict[str, str]) -> None:
        """Raises ``SubnetTaken`` (a ``TransientError``) when the subnet was taken since the snapshot."""

    def remove_network(self, network: Network) -> None: ...

    def create_volume(self, volume: Volume, labels: dict[str, str]) -> None: ...

    def run_container(self, container: Container) -> None: ...

    def start_container(self, container: Container) -> None: ...

    def stop_container(self, container: Container) -> None: ...

    def update_container(self, container: Container) -> None:
        """Put the container's limits back in place (no restart)."""

    def remove_container(self, container: Container) -> None: ...

    def create_service(self, service: Service) -> None:
        """Create a replicated service (engines that schedule replicas themselves)."""

    def update_service(self, service: Service) -> None:
        """Re-assert the whole spec of the observed service ``service.id`` at ``service.version``."""

    def remove_service(self, service: Service) -> None: ...


@runtime_checkable
class RouterAttaching(Protocol):
    """An engine whose router must be joined to each tenant network (Swarm: Traefik in a container on the manager).
    Planned as ``~ network ... router not attached`` when the router lost a network (re-created by hand)."""

    def attach_router(self, network: Network) -> None: ...
