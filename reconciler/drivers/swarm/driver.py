"""``SwarmDriver``: the engine protocol (``runtime.passes.engine``) over a Docker Swarm manager's API.

Built by ``runtime.wiring`` when ``RECONCILER_ENGINE=swarm``; driven by the pass and its executor exactly like the
single-engine driver. Thin: it lists and mutates Swarm objects and translates errors (``errors``); specs are
built in ``spec``, list answers read in ``observe``. Per tenant: an attachable overlay with its own subnet, one
replicated service per tenant service and version track, the data volume on the tenant's data node.

Observation is a fixed number of calls whatever the number of tenants: services, tasks (desired state running),
networks, nodes, plus, when the nodes' own engines are given (``node_hosts``), one volume listing per node, and
with a router container one inspection of it (which overlays it is attached to: a re-created Traefik is joined
again, ``attach_router``). The docker SDK negotiates the manager's API version (1.41 on the lab's 20.10 engines).
``task_deaths`` and ``task_logs`` serve ``reconciler run``'s task watcher (``runtime.service.swarm_tasks``).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace

import docker
import docker.errors
import requests.exceptions
from docker.types import IPAMConfig, IPAMPool

from reconciler.core.errors import PermanentError, ReconcileError
from reconciler.core.resources import (
    LABEL_MANAGED,
    LABEL_OWNER,
    Container,
    ContainerDefaults,
    Network,
    Snapshot,
    Volume,
)
from reconciler.core.services import Service
from reconciler.drivers.swarm.errors import Guard, translate
from reconciler.drivers.swarm.observe import (
    network_from_list,
    node_from_list,
    owned,
    service_from_list,
    task_as_container,
    volume_from_list,
)
from reconciler.drivers.swarm.spec import NO_NEW_PRIVILEGES_API, StopPolicy, service_spec
from reconciler.drivers.swarm.tasks import TaskDeath, task_deaths

# Log lines of a dead task kept for the crash-loop status, and the most characters of them.
TASK_LOG_CHARS = 1500


@dataclass(frozen=True)
class SwarmTimeouts:
    api: float = 60.0  # one list call
    mutation: float = 120.0  # one create, update or remove


class SwarmDriver:
    def __init__(
        self,
        owner: str,
        manager: str | None = None,
        *,
        node_hosts: Mapping[str, str] | None = None,
        timeouts: SwarmTimeouts | None = None,
        stop: StopPolicy | None = None,
        router_container: str | None = None,
    ) -> None:
        self.owner = owner
        # The router's container on the manager (Traefik), joined to every tenant overlay the driver creates so it
        # reaches the tasks by address, and taken off before the overlay is removed.
        self.router_container = router_container
        self.stop = stop or StopPolicy()
        self.timeouts = timeouts or SwarmTimeouts()
        base_url = manager or "unix:///var/run/docker.sock"
        self.api = docker.APIClient(base_url=base_url, version="auto", timeout=self.timeouts.api)
        self.manager = docker.APIClient(base_url=base_url, version=self.api.api_version, timeout=self.timeouts.mutation)
        # Whether service specs carry no-new-privileges here (docs/swarm.md "Hardening").
        self.privileges = docker.utils.version_gte(self.api.api_version, NO_NEW_PRIVILEGES_API)
        # Each node's own engine, by hostname: where data volumes are listed and created (None: read from mounts).
        self._nodes = {
            name: docker.APIClient(base_url=url, version="auto", timeout=self.timeouts.api)
            for name, url in (node_hosts or {}).items()
        }
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        self._count("list")
        try:
            yield
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise translate(exc, "list", what, None) from exc

    def _mutating(self, operation: str, key: str, tenant: str | None) -> Guard:
        self._count("mutate")
        return Guard(operation, key, tenant)

    # --- observe -------------------------------------------------------------------------------------------

    def observe(self, tenant: str | None = None, *, scope: Collection[str] | None = None) -> Snapshot:
        """Services, their running tasks, owned overlays, nodes (and volumes per node): a bounded number of calls."""
        with self._reading("services"):
            raw_services = self.api.services(
                filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={self.owner}"]}
            )
        with self._reading("tasks"):
            raw_tasks = self.api.tasks(filters={"desired-state": "running"})
        with self._reading("networks"):
            raw_networks = self.api.networks()
        with self._reading("nodes"):
            raw_nodes = self.api.nodes()
        nodes = tuple(sorted((node_from_list(n) for n in raw_nodes), key=lambda n: n.name))
        node_names = {n.id: n.name for n in nodes}
        network_names = {n.get("Id", ""): n.get("Name", "") for n in raw_networks}
        used = sorted(
            c["Subnet"] for n in raw_networks for c in (n.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")
        )
        networks = [network_from_list(n) for n in raw_networks if owned(n.get("Labels"), self.owner, tenant)]
        if self.router_container:
            joined = self._router_networks()
            networks = [replace(n, router=n.name in joined or n.id in joined) for n in networks]
        services = [
            service_from_list(s, network_names, privileges=self.privileges)
            for s in raw_services
            if owned((s.get("Spec") or {}).get("Labels"), self.owner, tenant)
        ]
        by_id = {s.id: s for s in services}
        tasks: list[Container] = []
        running: Counter[str] = Counter()
        for raw in raw_tasks:
            service = by_id.get(raw.get("ServiceID"))
            if service is None:
                continue
            task = task_as_container(raw, service, node_names)
            tasks.append(task)
            if task.running:
                running[service.name] += 1
        services = [_with_running(s, running[s.name]) for s in services]
        return Snapshot(
            containers=tuple(sorted(tasks, key=lambda c: c.name)),
            networks=tuple(sorted(networks, key=lambda n: n.name)),
            volumes=tuple(sorted(self._volumes(services, tenant), key=lambda v: v.name)),
            used_subnets=tuple(used),
            services=tuple(sorted(services, key=lambda s: s.name)),
            nodes=nodes,
        )

    def _router_networks(self) -> set[str]:
        """Names and ids of the networks the router's container is attached to (none: it is gone)."""
        try:
            with self._reading("router container"):
                raw = self.api.inspect_container(self.router_container)
        except ReconcileError as exc:
            if not isinstance(exc.__cause__, docker.errors.NotFound):
                raise
            return set()
        attached = ((raw.get("NetworkSettings") or {}).get("Networks") or {}).items()
        return {name for name, _ in attached} | {str(n.get("NetworkID", "")) for _, n in attached}

    def _volumes(self, services: list[Service], tenant: str | None) -> list[Volume]:
        if not self._nodes:
            # No node engines: a data volume is known by the services that mount it.
            seen = {(s.volume, s.tenant, s.node) for s in services if s.volume is not None}
            return [Volume(name=v, tenant=t, node=n) for v, t, n in seen]
        volumes = []
        for node, client in sorted(self._nodes.items()):
            with self._reading(f"volumes on {node}"):
                listed = client.volumes(filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={self.owner}"]})
            for raw in (listed or {}).get("Volumes") or []:
                if owned(raw.get("Labels"), self.owner, tenant):
                    volumes.append(volume_from_list(raw, node))
        return volumes

    def container(self, name: str) -> Container | None:
        """Tasks are not looked up by name (the executor waits on services through ``observe``)."""
        return None

    def used_subnets(self) -> list[str]:
        with self._reading("networks"):
            raw = self.api.networks()
        return [c["Subnet"] for n in raw for c in (n.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]

    def hardening_gaps(self, defaults: ContainerDefaults | None) -> list[str]:
        """The operator's container defaults this manager cannot give a service (said by ``plan`` and at start)."""
        if defaults is None or not defaults.no_new_privileges or self.privileges:
            return []
        return [
            f"no-new-privileges is not applied to Swarm services: this manager speaks Engine API "
            f"{self.api.api_version}, service specs carry it from {NO_NEW_PRIVILEGES_API} (Docker 25); "
            'set it daemon-wide on every node (docs/swarm.md "Hardening")'
        ]

    # --- watch (``runtime.service.swarm_tasks``, outside passes: counted apart from a pass's calls) ---------

    def task_deaths(self) -> list[TaskDeath]:
        """Every task of ours that died and is still in the manager's task history: one list call."""
        self._count("watch")
        try:
            raw = self.api.tasks()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise translate(exc, "list", "tasks", None) from exc
        return task_deaths(raw, self.owner)

    def task_logs(self, task: str, tail: int = 10) -> str:
        """The last lines a task wrote (``docker service logs`` of one task), or "" when they cannot be read."""
        self._count("watch")
        try:
            response = self.api._get(
                self.api._url("/tasks/{0}/logs", task),
                params={"stdout": 1, "stderr": 1, "tail": tail, "follow": 0},
            )
            self.api._raise_for_status(response)
            text = b"".join(self.api._multiplexed_buffer_helper(response)).decode(errors="replace")
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return ""
        return text.strip()[-TASK_LOG_CHARS:]

    # --- act -----------------------------------------------------------------------------------------------

    def create_network(self, network: Network, labels: dict[str, str]) -> None:
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=network.subnet)]) if network.subnet else None
        with self._mutating("create network", network.name, network.tenant):
            self.manager.create_network(
                network.name, driver="overlay", attachable=True, ipam=ipam, labels=labels, check_duplicate=True
            )
        if self.router_container:
            self.attach_router(network)

    def attach_router(self, network: Network) -> None:
        """Join the router's container to a tenant overlay (at creation, and after the router was re-created)."""
        if not self.router_container:
            return
        with self._mutating("attach router", network.name, network.tenant):
            self.manager.connect_container_to_network(self.router_container, network.name)

    def remove_network(self, network: Network) -> None:
        if self.router_container:
            with (
                self._mutating("detach router", network.name, network.tenant),
                contextlib.suppress(docker.errors.NotFound, docker.errors.APIError),
            ):
                self.manager.disconnect_container_from_network(self.router_container, network.id or network.name)
        with (
            self._mutating("remove network", network.name, network.tenant),
            contextlib.suppress(docker.errors.NotFound),
        ):
            self.manager.remove_network(network.id or network.name)

    def create_volume(self, volume: Volume, labels: dict[str, str]) -> None:
        """On the data node's engine when it is known; otherwise the first task's mount creates it there."""
        client = self._nodes.get(volume.node or "")
        if client is None:
            return
        with self._mutating("create volume", volume.name, volume.tenant):
            client.create_volume(volume.name, driver="local", labels=labels)

    def create_service(self, service: Service) -> None:
        with self._mutating("create service", service.name, service.tenant):
            self.manager.create_service(**service_spec(service, self.stop, privileges=self.privileges))

    def update_service(self, service: Service) -> None:
        if service.id is None or service.version is None:
            raise translate(RuntimeError("no observed id"), "update service", service.name, service.tenant)
        with self._mutating("update service", service.name, service.tenant):
            self.manager.update_service(
                service.id,
                service.version,
                fetch_current_spec=False,
                **service_spec(service, self.stop, privileges=self.privileges),
            )

    def remove_service(self, service: Service) -> None:
        with (
            self._mutating("remove service", service.name, service.tenant),
            contextlib.suppress(docker.errors.NotFound),
        ):
            self.manager.remove_service(service.id or service.name)

    # The single engine's per-container actions: a Swarm plan never holds container changes.
    def run_container(self, container: Container) -> None:
        raise _not_here(container)

    def start_container(self, container: Container) -> None:
        raise _not_here(container)

    def stop_container(self, container: Container) -> None:
        raise _not_here(container)

    def update_container(self, container: Container) -> None:
        raise _not_here(container)

    def remove_container(self, container: Container) -> None:
        raise _not_here(container)


def _with_running(service: Service, running: int) -> Service:
    return replace(service, running=running)


def _not_here(container: Container) -> PermanentError:
    return PermanentError(
        f"container {container.name}: the Swarm engine runs services; a task is never acted on by itself",
        tenant=container.tenant,
        system="swarm",
        operation="container",
        key=container.name,
    )
