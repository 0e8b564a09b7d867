"""The Swarm engine's task watcher: task deaths feed the crash tracker and nudge their tenant, as Docker events do.

Started by ``runtime.service.run`` as a loop extension when the pass drives a swarm (``RECONCILER_ENGINE=swarm``).
A manager streams no task events, so the watcher lists the swarm's tasks every ``interval`` seconds (one call,
``drivers.swarm.tasks``) and takes each task of ours it has not seen dead before: the death is recorded by the
crash tracker (``runtime.service.crashloop``: the same counting, backoff, ``Degraded`` condition and alert as
under the Docker engine) under the task's slot and service spec hash, and the tenant is queued for a pass at
once. Tasks already dead when the watcher starts are history, not news (the Docker watcher also starts from
"now"). A failing list call is logged and retried at the next tick; the resync converges everything meanwhile.
"""

from __future__ import annotations

import functools
import logging
import threading

from reconciler.core.errors import ReconcileError
from reconciler.drivers.swarm import SwarmDriver
from reconciler.drivers.swarm.tasks import TaskDeath
from reconciler.runtime.service.crashloop import CrashTracker
from reconciler.runtime.service.workqueue import WorkQueue

log = logging.getLogger("reconciler.swarm_tasks")

# A death queues its tenant this soon: deaths of several tasks seen in one listing fold into one pass.
NUDGE_DEBOUNCE = 0.2
# Log lines read from a task that made its service crash-loop (status and alert).
LOG_LINES = 10


class TaskWatcher:
    def __init__(self, swarm: SwarmDriver, crashes: CrashTracker, interval: float) -> None:
        self.swarm = swarm
        self.crashes = crashes
        self.interval = interval
        # Ids of dead tasks already taken (or found dead at start); pruned to those the manager still lists.
        self._seen: set[str] | None = None

    def poll(self) -> list[TaskDeath]:
        """The deaths found since the last poll (none on the first: it only learns what is already dead)."""
        deaths = self.swarm.task_deaths()
        listed = {d.task for d in deaths}
        if self._seen is None:
            self._seen = listed
            return []
        new = [d for d in deaths if d.task not in self._seen]
        self._seen = listed
        return new

    def take(self, death: TaskDeath, queue: WorkQueue) -> None:
        key = (death.tenant, death.service, death.track, death.slot, death.spec_hash)
        tail = functools.partial(self.swarm.task_logs, death.task, LOG_LINES)
        log.info(
            "tenant=%s %s of service %s died: %s",
            death.tenant,
            death.name,
            death.service,
            death.cause,
            extra={"tenant": death.tenant},
        )
        self.crashes.record(key, death.name, death.cause, tail)
        queue.add(death.tenant, NUDGE_DEBOUNCE, priority=0, trigger="event")

    def run(self, queue: WorkQueue, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                for death in self.poll():
                    self.take(death, queue)
            except ReconcileError as exc:
                log.warning("Swarm tasks not listed (%s); trying again in %gs", exc, self.interval)
            except Exception:
                log.exception("Swarm task watcher failed; trying again in %gs", self.interval)
            stop.wait(self.interval)

    def start(self, queue: WorkQueue, stop: threading.Event) -> None:
        """A loop extension (``Loop.extensions``): watch on a daemon thread until ``stop``."""
        threading.Thread(target=self.run, args=(queue, stop), name="swarm-tasks", daemon=True).start()
