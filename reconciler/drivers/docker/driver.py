"""Docker driver: observe and act through the Engine API (docker SDK ``APIClient``); helpers and pulls via the CLI.

Observation is one snapshot per pass with a constant number of list calls (containers, networks, volumes),
whatever the number of tenants; the results are converted at once into the core's frozen values. Containers
marked in ``inspections`` (``drivers.docker.inspect``) are inspected on top, one API call each, counted apart as
``calls["inspect"]``. The pass's mutations (create and start, stop, remove, update, networks, volumes) are HTTP
requests on the engine's socket, a few milliseconds each, bounded by ``DockerTimeouts.mutation`` (the client's
timeout); what they send is built in ``drivers.docker.create``. Image pulls, helper containers (backups, restores,
migrations, with their own long timeouts) stay on the CLI through python-on-whales. Library errors become the
project's errors (``drivers.docker.errors``). Thread-safe: the executor calls one driver from several workers at
once. Called by the runtime's executor, loop and operations.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO

import docker
import docker.errors
import requests.exceptions
from docker.errors import ImageNotFound, NotFound

from reconciler.core.errors import PermanentError, SubnetTaken, TransientError
from reconciler.core.resources import (
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_TENANT,
    LABEL_TENANT_UID,
    Container,
    Network,
    Snapshot,
    Volume,
)
from reconciler.core.services import Service
from reconciler.drivers.docker.create import container_create, container_limits, network_create
from reconciler.drivers.docker.errors import SYSTEM, ApiMutation, Mutation, docker_error
from reconciler.drivers.docker.events import DockerEvent, EventStream
from reconciler.drivers.docker.helpers import HelperResult, HelperRun, run_helper
from reconciler.drivers.docker.inspect import InspectionMarks, container_from_list, observed_limits

if TYPE_CHECKING:
    # python-on-whales (with rich, click, pygments) only for pulls, helpers and events: imported on first use,
    # so a one-shot command whose pass mutates nothing never loads it (docs/benchmarks.md, "CLI start").
    from python_on_whales import DockerClient

log = logging.getLogger(__name__)

# Seconds a container gets to stop gracefully before SIGKILL; a service that needs longer is misbehaving.
STOP_TIMEOUT = 10
# Seconds `timeout` waits after TERM before it KILLs a CLI call that ran past its bound.
KILL_AFTER = 5
# Connections the SDK keeps open per pool (it keeps one pool per request URL): the same request made at once by
# the executor's workers (about 8) and the loop (observations, the event stream holding one while open) needs
# that many; with fewer, each extra one is opened, then thrown away with a warning.
POOL_SIZE = 16


@dataclass(frozen=True)
class DockerTimeouts:
    """Upper bounds, in seconds, of one Docker call (``Settings.docker_*_timeout``)."""

    api: float = 60.0  # one docker SDK request (list, inspect, logs)
    mutation: float = 120.0  # one mutation (create, start, stop, rm, update, network, volume); stop adds its grace
    pull: float = 600.0  # one image pull
    events_read: float = 60.0  # the event stream is reopened after this long without an event


def _label_filter(owner: str, *extra: str) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={owner}", *extra]}


def _bounded(docker_cmd: list[str], seconds: float) -> list[str]:
    return ["timeout", "--kill-after", str(KILL_AFTER), f"{seconds:g}", *docker_cmd]


class DockerDriver:
    def __init__(
        self,
        owner: str,
        docker_host: str | None = None,
        client_call: list[str] | None = None,
        *,
        timeouts: DockerTimeouts | None = None,
        pull: str = "missing",
        inspections: InspectionMarks | None = None,
    ) -> None:
        self.owner = owner
        self.timeouts = timeouts or DockerTimeouts()
        # "missing": pull an image the engine lacks (bounded by the pull timeout); "never": a missing image is a
        # permanent error at once (nodes that cannot reach a registry).
        self.pull = pull
        self.inspections = inspections if inspections is not None else InspectionMarks()
        base_url = docker_host or "unix:///var/run/docker.sock"
        self.api = docker.APIClient(
            base_url=base_url, version="auto", timeout=self.timeouts.api, max_pool_size=POOL_SIZE
        )
        # Mutations get their own bound; the API version is the one just negotiated (no second round trip).
        self.engine = docker.APIClient(
            base_url=base_url, version=self.api.api_version, timeout=self.timeouts.mutation, max_pool_size=POOL_SIZE
        )
        self._docker_host = docker_host
        self._client_call = client_call or ["docker"]
        # Counted by kind so tests and bench/ can show a no-op pass makes only reads.
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    # Helpers bring their own timeout (a backup may take an hour); every other CLI call gets a bound.
    @cached_property
    def helper_cli(self) -> DockerClient:
        return self._docker_cli(self._client_call)

    @cached_property
    def cli(self) -> DockerClient:
        return self._docker_cli(_bounded(self._client_call, self.timeouts.mutation))

    @cached_property
    def pull_cli(self) -> DockerClient:
        return self._docker_cli(_bounded(self._client_call, self.timeouts.pull))

    def _docker_cli(self, call: list[str]) -> DockerClient:
        from python_on_whales import DockerClient

        return DockerClient(host=self._docker_host, client_call=call)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    @property
    def mutations(self) -> int:
        return self.calls["mutate"]

    # --- observe -------------------------------------------------------------------------------------------

    def _api_error(self, exc: Exception, operation: str, key: str) -> TransientError:
        error = docker_error(
            f"{operation} {key} failed: {exc}", permanent=False, operation=operation, key=key, tenant=None
        )
        assert isinstance(error, TransientError)
        return error

    def ping(self) -> None:
        try:
            self.api.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise TransientError(f"Docker engine not reachable: {exc}", system=SYSTEM, operation="ping") from exc

    def _list(self, call: str, **kwargs: Any) -> Any:
        self._count("list")
        try:
            return getattr(self.api, call)(**kwargs)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise self._api_error(exc, "list", call) from exc

    def _inspect_marked(self, containers: list[Container], scope: Collection[str] | None) -> list[Container]:
        """The marked containers of tenants in ``scope`` with their real limits (one inspect call each)."""
        due = self.inspections.due((c.name for c in containers), scope)
        if not due:
            return containers
        result = []
        for container in containers:
            if container.name in due:
                self._count("inspect")
                try:
                    container = observed_limits(container, self.api.inspect_container(container.id or container.name))
                except docker.errors.NotFound:
                    pass  # removed since the list call: the next pass sees it gone
                except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                    raise self._api_error(exc, "inspect", container.name) from exc
            result.append(container)
        return result

    def observe(self, tenant: str | None = None, *, scope: Collection[str] | None = None) -> Snapshot:
        """One snapshot: 3 list calls, whatever the number of tenants (or of one tenant's objects), plus one
        inspect call per container marked for inspection whose tenant is in ``scope`` (None: any tenant)."""
        extra = (f"{LABEL_TENANT}={tenant}",) if tenant else ()
        containers = self._list("containers", all=True, filters=_label_filter(self.owner, *extra))
        networks = self._list("networks")
        volumes = self._list("volumes", filters=_label_filter(self.owner, *extra))
        owned_networks = []
        used_subnets = []
        for raw in networks:
            for config in (raw.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet"):
                    used_subnets.append(config["Subnet"])
            labels = raw.get("Labels") or {}
            if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_OWNER) != self.owner:
                continue
            if tenant and labels.get(LABEL_TENANT) != tenant:
                continue
            subnets = [c.get("Subnet") for c in (raw.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
            owned_networks.append(
                Network(
                    name=raw["Name"],
                    tenant=labels.get(LABEL_TENANT, ""),
                    subnet=subnets[0] if subnets else None,
                    id=raw.get("Id"),
                )
            )
        owned_volumes = [_volume(raw) for raw in (volumes or {}).get("Volumes") or []]
        listed = sorted((container_from_list(c) for c in containers), key=lambda c: c.name)
        if tenant is None:
            self.inspections.listed(listed)
        if tenant is not None:
            scope = frozenset({tenant}) if scope is None else frozenset(scope) & {tenant}
        return Snapshot(
            containers=tuple(self._inspect_marked(listed, scope)),
            networks=tuple(sorted(owned_networks, key=lambda n: n.name)),
            volumes=tuple(sorted(owned_volumes, key=lambda v: v.name)),
            used_subnets=tuple(sorted(used_subnets)),
        )

    def container(self, name: str) -> Container | None:
        """Re-read one container (after creating or starting it, to learn its address)."""
        found = self._list("containers", all=True, filters={"name": [f"^/{name}$"]})
        return container_from_list(found[0]) if found else None

    def logs(self, name: str, tail: int = 20) -> str:
        self._count("read")
        try:
            raw = self.api.logs(name, tail=tail, stdout=True, stderr=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return ""
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    def events(self, stop: threading.Event, connected: Callable[[bool], None] | None = None) -> Iterator[DockerEvent]:
        """Container events of our objects and network events (``drivers.docker.events``)."""
        return EventStream(self.api, self.owner, self.timeouts.events_read).events(stop, connected)

    # --- act -----------------------------------------------------------------------------------------------

    def _mutate(self, operation: str, key: str, tenant: str | None, timeout: float | None = None) -> Mutation:
        """One CLI mutation (pull, helper)."""
        self._count("mutate")
        return Mutation(operation, key, tenant, timeout or self.timeouts.mutation)

    def _request(self, operation: str, key: str, tenant: str | None, timeout: float | None = None) -> ApiMutation:
        """One Engine API mutation (``self.engine``)."""
        self._count("mutate")
        return ApiMutation(operation, key, tenant, timeout or self.timeouts.mutation)

    def used_subnets(self) -> list[str]:
        """Every subnet the engine has in use, ours or not (one list call)."""
        return [
            config["Subnet"]
            for raw in self._list("networks")
            for config in (raw.get("IPAM") or {}).get("Config") or []
            if config.get("Subnet")
        ]

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

    def pull_image(self, image: str, tenant: str | None = None) -> None:
        with self._mutate("pull image", image, tenant, self.timeouts.pull):
            self.pull_cli.image.pull(image, quiet=True)

    def run_container(self, container: Container) -> None:
        """Create and start the container (``docker run -d``); an image the engine lacks is pulled first
        (``pull="missing"``). A name still held by a container being removed fails with the engine's conflict
        ("... is already in use"), a transient error. Two requests, one ``mutate`` count."""
        with self._request("run container", container.name, container.tenant):
            options = container_create(self.engine, container)
            try:
                created = self.engine.create_container(**options)
            except ImageNotFound:
                if self.pull != "missing":
                    raise
                self.pull_image(container.image, container.tenant)
                created = self.engine.create_container(**options)
            # As with `docker run`, a container whose start fails stays created; the next pass sees it.
            self.engine.start(created["Id"])

    def update_container(self, container: Container) -> None:
        """Set memory, CPUs and pids limit in place (``docker update``): limits drifted, the spec did not."""
        with self._request("update container", container.name, container.tenant):
            url = self.engine._url("/containers/{0}/update", container.name)
            # The SDK's update_container knows neither NanoCpus nor PidsLimit; the endpoint does.
            self.engine._raise_for_status(self.engine._post_json(url, data=container_limits(container)))

    def create_service(self, service: Service) -> None:
        raise _no_services(service)

    def update_service(self, service: Service) -> None:
        raise _no_services(service)

    def remove_service(self, service: Service) -> None:
        raise _no_services(service)

    def start_container(self, container: Container) -> None:
        with self._request("start container", container.name, container.tenant):
            self.engine.start(container.name)

    def stop_container(self, container: Container) -> None:
        # The client adds the grace period to its own timeout, so the bound is mutation + STOP_TIMEOUT.
        with (
            self._request("stop container", container.name, container.tenant, self.timeouts.mutation + STOP_TIMEOUT),
            contextlib.suppress(NotFound),
        ):
            self.engine.stop(container.name, timeout=STOP_TIMEOUT)

    def remove_container(self, container: Container) -> None:
        """Stop gracefully, then remove (``force``); the data volume is untouched (never ``v=True``)."""
        bound = self.timeouts.mutation + STOP_TIMEOUT
        with self._request("remove container", container.name, container.tenant, bound), contextlib.suppress(NotFound):
            if container.running:
                self.engine.stop(container.name, timeout=STOP_TIMEOUT)
            self.engine.remove_container(container.name, force=True)

    def run_helper(
        self,
        image: str,
        command: list[str],
        *,
        name: str,
        volume: str,
        labels: dict[str, str],
        timeout: float,
        network: str | None = None,
        env: dict[str, str] | None = None,
        read_only: bool = False,
        stdin: BinaryIO | None = None,
        stdout: Callable[[bytes], None] | None = None,
    ) -> HelperResult:
        """Run a short-lived container with ``volume`` at /data to completion, streaming bytes in and out.

        ``stdin`` (an open binary file) is fed to the command; with ``stdout`` every chunk the command writes goes
        to that callback (an archive), otherwise it is collected as text with stderr. The container runs with
        ``--rm``, no log driver (an archive streamed out must not also land in a log file) and, without
        ``network``, no network at all. Give it labels *without* the managed label, so the snapshot never sees it.
        Past ``timeout`` the container is removed and ``TransientError`` raised; Docker's own failure to run it
        (no such image, ...) is raised as the project's error; the command's exit code is returned otherwise.
        """
        run = HelperRun(image, command, name, volume, labels, timeout, network, env, read_only)
        self._count("mutate")
        return run_helper(list(self.helper_cli.client_config.docker_cmd), run, self._remove_helper, stdin, stdout)

    def start_helper(self, image: str, command: list[str], *, name: str, network: str, labels: dict[str, str]) -> None:
        """Start a long-running helper detached on ``network`` (the maintenance answer during a restore): no
        volume, no restart, 16 MiB. Labels without the managed label: the snapshot never sees it. ``remove_helper``
        ends it."""
        with self._mutate("start helper", name, labels.get(LABEL_TENANT)):
            self.cli.container.run(
                image, command, name=name, detach=True, labels=labels, networks=[network], restart="no",
                pull="never", memory=16 * 1024 * 1024, security_options=["no-new-privileges"],
            )  # fmt: skip

    def remove_helper(self, name: str) -> None:
        """Remove a helper container by name, running or not; one that is gone already is fine."""
        self._remove_helper(name)

    def helpers(self, labels: dict[str, str], name_prefix: str = "") -> list[tuple[str, str]]:
        """(name, state) of the containers carrying all ``labels`` (helpers: no managed label), one list call.

        Used before a migration: a helper of an earlier migration that still exists may still be running it.
        """
        filters = {"label": [f"{key}={value}" for key, value in sorted(labels.items())]}
        found = self._list("containers", all=True, filters=filters)
        named = [((raw.get("Names") or ["/?"])[0].lstrip("/"), str(raw.get("State", "unknown"))) for raw in found]
        return sorted((name, state) for name, state in named if name.startswith(name_prefix))

    def _remove_helper(self, name: str) -> None:
        from python_on_whales.exceptions import DockerException

        with contextlib.suppress(DockerException):
            self.cli.container.remove(name, force=True)


def _volume(raw: dict[str, Any]) -> Volume:
    labels = raw.get("Labels") or {}
    return Volume(name=raw["Name"], tenant=labels.get(LABEL_TENANT, ""), uid=labels.get(LABEL_TENANT_UID))


def _no_services(service: Service) -> PermanentError:
    # The single engine's plans never hold services (``PlanSettings.swarm`` is unset); a plan that does is a bug.
    return PermanentError(
        f"service {service.name}: the single Docker engine runs containers, not services (RECONCILER_ENGINE=swarm)",
        tenant=service.tenant,
        system="docker",
        operation="service",
        key=service.name,
    )
