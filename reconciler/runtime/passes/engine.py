"""The container engine a pass drives: the small protocol ``passes.reconcile`` and ``passes.executor`` need.

The single Docker engine (``reconciler.drivers.docker.DockerDriver``) implements it today; another engine (Docker
Swarm mode is planned) implements the same methods over its own objects, and the pass does not change. Operations
(backups, migrations), the event watcher and the crash tracker use engine-specific drivers of their own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from reconciler.core.resources import Container, Network, Snapshot, Volume


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
