"""The Docker driver's network and volume actions: create and remove a tenant's network and data volume.

Part of apply, the pipeline's sixth stage: the executor (``runtime.passes.executor``) calls them through
``DockerDriver``, a network's removal in its last phase; a data volume is only removed on an explicit, logged
instruction (``runtime.operations.purge``; the restore test removes its own scratch volume). Each is one Engine API
request bounded by ``DockerTimeouts.mutation``; a subnet someone else took since the snapshot is ``SubnetTaken``, so
the caller can pick another. What the engine is sent is built in ``drivers.docker.create``.
"""

from __future__ import annotations

import contextlib

from docker.errors import NotFound

from reconciler.core.errors import SubnetTaken, TransientError
from reconciler.core.resources import Network, Volume
from reconciler.drivers.docker.connection import DockerConnection
from reconciler.drivers.docker.create import network_create
from reconciler.drivers.docker.errors import SYSTEM


class ResourceActions(DockerConnection):
    """Networks and volumes (``calls["mutate"]``, one each)."""

    def create_network(self, network: Network, labels: dict[str, str]) -> None:
        try:
            with self._request("create network", network.name, network.tenant):
                self.engine.create_network(**network_create(network, labels))
        except TransientError as exc:
            # The engine's text for a pool overlap: "Pool overlaps with other one on this address space".
            if "overlaps" in str(exc):
                raise SubnetTaken(
                    exc.message, tenant=network.tenant, system=SYSTEM, operation="create network", key=network.name
                ) from exc
            raise

    def remove_network(self, network: Network) -> None:
        with self._request("remove network", network.name, network.tenant), contextlib.suppress(NotFound):
            self.engine.remove_network(network.name)

    def create_volume(self, volume: Volume, labels: dict[str, str]) -> None:
        with self._request("create volume", volume.name, volume.tenant):
            self.engine.create_volume(volume.name, driver="local", labels=labels)

    def remove_volume(self, name: str, tenant: str) -> None:
        with self._request("remove volume", name, tenant), contextlib.suppress(NotFound):
            self.engine.remove_volume(name)
