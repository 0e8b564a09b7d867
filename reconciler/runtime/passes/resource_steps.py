"""The executor's resource steps: networks, volumes, limits set back in place, and Swarm services.

Part of apply, the pipeline's sixth stage; ``passes.executor.Executor`` runs these as phases of their own: the
tenant's network and volume first (a network whose subnet someone took since the snapshot gets another one from
a fresh list), then limits changed behind our back (``docker update``), then Swarm services created or updated
(the engine rolls their tasks; ``_follow`` lets routing follow them), and, in the removal phase, services
removed. Data volumes are never removed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from desired_state.specs import TenantSpec
from reconciler.core.errors import SubnetTaken
from reconciler.core.plan import Action, Change
from reconciler.core.resources import Container, Network, Volume
from reconciler.core.services import Service
from reconciler.core.subnets import allocate_subnet
from reconciler.runtime.passes.apply_actions import ApplyActions
from reconciler.runtime.passes.engine import RouterAttaching

# Concurrent network creation by others can take a subnet between snapshot and create; a few retries suffice.
NETWORK_CREATE_ATTEMPTS = 5


class ResourceSteps(ApplyActions):
    """Phases 1, 2 (services) and 4 (service removal) of ``Executor.apply_tenant`` for what is not a container."""

    def _create_network(self, network: Network, labels: dict[str, str]) -> str | None:
        """Create the network; if its subnet was taken since the snapshot, pick another from a fresh list."""
        for attempt in range(NETWORK_CREATE_ATTEMPTS):
            try:
                self._act(partial(self.docker.create_network, network, labels))
                return network.subnet
            except SubnetTaken:
                if attempt == NETWORK_CREATE_ATTEMPTS - 1:
                    raise
                used = self.docker.used_subnets()
                subnet = allocate_subnet(f"{network.name}#{attempt}", self.pool.pool, self.pool.prefixlen, used)
                network = replace(network, subnet=subnet)
        return network.subnet

    def _network_or_volume(self, tenant: str, change: Change) -> str:
        resource = change.after
        labels = self.naming.base_labels(tenant, getattr(resource, "uid", None))
        if isinstance(resource, Network) and change.action is Action.UPDATE:  # Swarm: the router joined again
            assert isinstance(self.docker, RouterAttaching)
            self._act(partial(self.docker.attach_router, resource))
            return "router attached"
        if isinstance(resource, Network):
            return f"subnet {self._create_network(resource, labels)}"
        assert isinstance(resource, Volume)
        self._act(partial(self.docker.create_volume, resource, labels))
        return ""

    def _remove_service(self, change: Change) -> str:
        assert isinstance(change.before, Service)
        self._act(partial(self.docker.remove_service, change.before))
        return ""

    def _update(self, change: Change) -> str:
        assert isinstance(change.after, Container)
        self._act(partial(self.docker.update_container, change.after))
        return ""

    def _service(self, change: Change) -> str:
        service = change.after
        assert isinstance(service, Service)
        if change.action is Action.CREATE:
            self._act(partial(self.docker.create_service, service))
        else:
            self._act(partial(self.docker.update_service, service))
        return f"{service.replicas} replica(s){f' on {service.node}' if service.node else ''}"

    def _follow(self, spec: TenantSpec | None) -> Callable[[list[Container]], None] | None:
        """Routing that follows a rolling service: its running tasks, published as they change."""
        router = self.router
        if router is None or spec is None or spec.state != "running":
            return None
        return lambda tasks: router.publish(spec, tasks)
