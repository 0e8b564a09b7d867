"""Swarm tasks that died, read from the manager's task list: the Swarm engine's equivalent of Docker ``die`` events.

A manager's event stream has no task events (services, nodes and networks only), and a task's container lives on
whichever node ran it, so task deaths are found by listing tasks: one call, every task of the swarm with its
state. ``task_deaths`` keeps the tasks of our services (ownership labels on the task's container spec) that ended
on their own: ``failed`` (non-zero exit, OOM kill, unhealthy), ``rejected`` (the node could not start it: image,
mount), ``complete`` (exit 0: Swarm restarts it like a crash) and ``orphaned`` (its node lost for good). A task
that Swarm or someone stopped (update, scale down, ``service rm``) ends ``shutdown`` and is not a death.

Called by ``driver.SwarmDriver.task_deaths``; read by the runtime's watcher (``runtime.service.swarm_tasks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.resources import LABEL_SERVICE, LABEL_SPEC_HASH, LABEL_TENANT, LABEL_TRACK
from reconciler.drivers.swarm.observe import owned

DEAD_STATES = frozenset({"failed", "rejected", "complete", "orphaned"})


@dataclass(frozen=True)
class TaskDeath:
    """One task of ours that died: who it ran for, in which slot, with which service spec, and why."""

    task: str  # the task id
    service_id: str
    tenant: str
    service: str
    track: str
    slot: int
    spec_hash: str  # the hash of the service spec the task ran (its container's label)
    cause: str

    @property
    def name(self) -> str:
        """How a task is named in status and alerts (``docker service ps`` shows the same id)."""
        return f"task {self.task[:12]}"


def _cause(state: str, status: Mapping[str, Any]) -> str:
    err = str(status.get("Err") or "").strip()
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state == "rejected":
        return f"rejected by its node: {err[:200] or 'no reason given'}"
    if state == "orphaned":
        return "its node was lost (task orphaned)"
    if "unhealthy" in err:
        return "Docker health check reports unhealthy"
    if code is not None:
        # The Docker engine's words for a die event, so status and alerts read the same under both engines.
        return f"exited with code {code}"
    return f"{state}: {err[:200] or 'no reason given'}"


def task_deaths(raw_tasks: list[dict[str, Any]], owner: str) -> list[TaskDeath]:
    deaths = []
    for raw in raw_tasks:
        status = raw.get("Status") or {}
        state = str(status.get("State", ""))
        if state not in DEAD_STATES:
            continue
        labels: dict[str, str] = ((raw.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
        if not owned(labels, owner) or not labels.get(LABEL_SERVICE):
            continue
        deaths.append(
            TaskDeath(
                task=str(raw.get("ID", "")),
                service_id=str(raw.get("ServiceID", "")),
                tenant=labels.get(LABEL_TENANT, ""),
                service=labels[LABEL_SERVICE],
                track=labels.get(LABEL_TRACK, ""),
                slot=int(raw.get("Slot") or 0),
                spec_hash=labels.get(LABEL_SPEC_HASH, ""),
                cause=_cause(state, status),
            )
        )
    return deaths
