"""The Docker driver's observe half: one snapshot of our containers, networks and volumes, and single re-reads.

The observe stage of the pipeline: ``passes.reconcile`` (and the service loop) call ``DockerDriver.observe`` once
per pass; the executor re-reads single containers (``container``) while it waits for readiness, and lists the
subnets in use (``used_subnets``) when a network's subnet was taken. A snapshot is a constant number of list
calls (containers, networks, volumes), whatever the number of tenants, converted at once into the core's frozen
values. Containers marked in ``inspections`` (``drivers.docker.inspect``) are inspected on top, one API call
each, counted apart as ``calls["inspect"]``. The event stream itself is ``drivers.docker.events``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions

from reconciler.core.errors import TransientError
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
from reconciler.drivers.docker.connection import DockerConnection
from reconciler.drivers.docker.errors import SYSTEM
from reconciler.drivers.docker.events import DockerEvent, EventStream
from reconciler.drivers.docker.inspect import container_from_list, observed_limits


def _label_filter(owner: str, *extra: str) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={owner}", *extra]}


class DockerObserver(DockerConnection):
    """Reads only: the snapshot, single re-reads, logs and the event stream (``calls``: list, inspect, read)."""

    def ping(self) -> None:
        try:
            self.api.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise TransientError(f"Docker engine not reachable: {exc}", system=SYSTEM, operation="ping") from exc

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

    def used_subnets(self) -> list[str]:
        """Every subnet the engine has in use, ours or not (one list call)."""
        return [
            config["Subnet"]
            for raw in self._list("networks")
            for config in (raw.get("IPAM") or {}).get("Config") or []
            if config.get("Subnet")
        ]


def _volume(raw: dict[str, Any]) -> Volume:
    labels = raw.get("Labels") or {}
    return Volume(name=raw["Name"], tenant=labels.get(LABEL_TENANT, ""), uid=labels.get(LABEL_TENANT_UID))
