"""Containers from Docker's API answers: the list call (``container_from_list``) and, for what the list cannot
show, an inspection of one container (``observed_limits``: its real limits and networks).

The spec-hash label says what a container was created with, not what it has now: ``docker update --memory``
leaves the label alone. Inspecting a container (one API call, a few milliseconds) shows its limits; doing that
for every container in every pass would cost O(containers) calls per pass, so the driver inspects only the
containers marked here: those a Docker event named (``update``) and, per periodic resync, the next
``per_resync`` of the last full listing in turn (round-robin), so what events missed is found within
``containers / per_resync`` resyncs. Marks are cleared by the loop after a pass of their tenant succeeds.
Called by ``drivers.docker.driver`` (observe) and ``runtime.service.loop`` (mark, advance, settle).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import Any

from reconciler.core.resources import (
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    LABEL_TRACK,
    Container,
)

_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def container_from_list(raw: dict[str, Any]) -> Container:
    """A container as the list call reports it: labels, state, health from the status text, networks."""
    labels = raw.get("Labels") or {}
    networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
    tenant = labels.get(LABEL_TENANT, "")
    network_name = next((n for n in networks if n.endswith(f"-{tenant}")), next(iter(networks), ""))
    health = _HEALTH_RE.search(raw.get("Status") or "")
    try:
        replica = int(labels.get(LABEL_REPLICA, "-1"))
    except ValueError:
        replica = -1
    return Container(
        name=(raw.get("Names") or ["/?"])[0].lstrip("/"),
        tenant=tenant,
        service=labels.get(LABEL_SERVICE, "?"),
        replica=replica,
        image=raw.get("Image", ""),
        spec_hash=labels.get(LABEL_SPEC_HASH, ""),
        network=network_name,
        volume="",
        port=0,
        state=raw.get("State", "unknown"),
        labels=tuple(sorted(labels.items())),
        track=labels.get(LABEL_TRACK, ""),
        id=raw.get("Id"),
        ip=(networks.get(network_name) or {}).get("IPAddress") or None,
        networks=tuple(sorted(networks)),
        health_status=health.group(1).replace("health: ", "") if health else None,
    )


def observed_limits(container: Container, raw: dict[str, Any]) -> Container:
    """``container`` (from the list call) with what ``inspect`` says about limits and networks."""
    host = raw.get("HostConfig") or {}
    networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
    nano_cpus = host.get("NanoCpus") or 0
    pids = host.get("PidsLimit") or 0
    return replace(
        container,
        memory=host.get("Memory") or None,
        cpus=nano_cpus / 1e9 if nano_cpus else None,
        pids_limit=pids if pids > 0 else None,
        networks=tuple(sorted(networks)),
        inspected=True,
    )


class InspectionMarks:
    """Which containers the next observations inspect. Thread-safe: the event watcher and workers share it."""

    def __init__(self, per_resync: int = 10) -> None:
        self.per_resync = per_resync
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._last = 0
        self._marks: dict[str, tuple[str, int]] = {}  # container name -> (tenant, sequence number of the mark)
        self._listing: list[tuple[str, str]] = []  # (name, tenant) of the last full observation, by name
        self._cursor = ""

    def mark(self, name: str, tenant: str) -> None:
        with self._lock:
            self._last = next(self._seq)
            self._marks[name] = (tenant, self._last)

    def position(self) -> int:
        """The latest mark; ``settle(..., upto=position())`` clears no mark made after this call."""
        with self._lock:
            return self._last

    def due(self, names: Iterable[str], scope: Collection[str] | None) -> set[str]:
        """The marked containers among ``names`` whose tenant is in ``scope`` (None: any)."""
        with self._lock:
            return {name for name in names if name in self._marks and (scope is None or self._marks[name][0] in scope)}

    def settle(self, tenants: Collection[str], upto: int) -> None:
        """A pass of ``tenants`` that started at ``upto`` succeeded: what it inspected is healed or fine."""
        with self._lock:
            for name, (tenant, seq) in list(self._marks.items()):
                if tenant in tenants and seq <= upto:
                    del self._marks[name]

    def listed(self, containers: Iterable[Container]) -> None:
        """Remember the full listing (names only) for the round-robin."""
        with self._lock:
            self._listing = sorted((c.name, c.tenant) for c in containers)

    def advance(self) -> list[str]:
        """Mark the next ``per_resync`` containers of the last full listing after the cursor, wrapping around."""
        with self._lock:
            if not self._listing or self.per_resync <= 0:
                return []
            after = [item for item in self._listing if item[0] > self._cursor]
            picked = (after + [item for item in self._listing if item[0] <= self._cursor])[: self.per_resync]
            for name, tenant in picked:
                self._last = next(self._seq)
                self._marks[name] = (tenant, self._last)
            self._cursor = picked[-1][0]
            return [name for name, _ in picked]

    def __len__(self) -> int:
        with self._lock:
            return len(self._marks)
