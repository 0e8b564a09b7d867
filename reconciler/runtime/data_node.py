"""Helper containers on the node that holds a tenant's data (Swarm engine): backups and migrations run there.

Built by ``runtime.engine_choice`` when ``RECONCILER_ENGINE=swarm`` and ``RECONCILER_SWARM_NODE_HOSTS`` are set, and
given to the operations (``runtime.operations``) in place of the manager's Docker driver. A helper carries the
tenant's label; its tenant's data node is read from ``tenant_placements`` at that moment, and the helper is run by
that node's own engine, where the data volume is. The same goes for the volume check before a backup. A tenant
without a recorded node (or a node without a configured engine) uses the manager's engine, as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Engine

from desired_state.placements import read_placements
from reconciler.core.resources import LABEL_TENANT, Snapshot
from reconciler.drivers.docker import DockerDriver
from reconciler.drivers.docker.helpers import HelperResult


class DataNodeDocker(DockerDriver):
    def __init__(self, database: Engine, nodes: Mapping[str, DockerDriver], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._database = database
        self._node_drivers = dict(nodes)

    def _on_node(self, tenant: str | None) -> DockerDriver | None:
        if not tenant:
            return None
        node = read_placements(self._database).get(tenant)
        return self._node_drivers.get(node) if node is not None else None

    def tenant_engine(self, tenant: str) -> DockerDriver | None:
        """The engine of the tenant's data node, or None (no recorded node, or no engine given for it)."""
        return self._on_node(tenant)

    def node_engine(self, node: str) -> DockerDriver | None:
        """The engine of the node of that hostname (a data move works on two nodes at once), or None."""
        return self._node_drivers.get(node)

    def observe(self, tenant: str | None = None, *, scope: Collection[str] | None = None) -> Snapshot:
        driver = self._on_node(tenant)
        if driver is None:
            return super().observe(tenant, scope=scope)
        return driver.observe(tenant, scope=scope)

    def run_helper(self, image: str, command: list[str], **kwargs: Any) -> HelperResult:
        driver = self._on_node(kwargs.get("labels", {}).get(LABEL_TENANT))
        if driver is None:
            return super().run_helper(image, command, **kwargs)
        return driver.run_helper(image, command, **kwargs)
