"""The crash tracker: counts replica deaths from Docker events and feeds the crash-loop policy and status.

Fed by the loop's Docker event watcher (``runtime.service.loop``): a ``die`` that no ``kill`` preceded (``docker stop``,
``docker rm -f`` and our own stops all send one first) is a death, and so is a ``health_status: unhealthy``.
Under the Swarm engine, by the task watcher instead (``runtime.service.swarm_tasks``: tasks that failed).
The counting and the backoff are pure (``core.crashloop``); this module adds the clock, a lock, the container's
last log lines, and the two hooks the reconcile pass calls: ``policy`` (a plan filter) and ``conditions``
(the tenant's ``Degraded`` condition). Deaths live in memory: after a restart the history starts empty, so a
``Degraded=True`` written before is kept for one window rather than reported as recovered too early.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from desired_state.model import Condition, TenantStatus
from reconciler.core.crashloop import (
    CrashLoop,
    CrashLoopLimits,
    SlotHistory,
    SlotKey,
    record_death,
    service_loops,
    settled,
    slot_key,
    withhold_crash_looping,
)
from reconciler.core.plan import Plan
from reconciler.core.resources import (
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    LABEL_TRACK,
    DesiredTenant,
)
from reconciler.drivers.docker import DockerDriver, DockerEvent
from reconciler.runtime.telemetry.metrics import Metrics

log = logging.getLogger("reconciler.crashloop")

DEGRADED = "Degraded"
# A die this soon after a kill of the same container was asked for (stop, rm -f, kill), not a crash.
KILL_GRACE = 30.0
# Log lines kept for the status and the alert, and the most characters of them.
LOG_LINES = 10
LOG_CHARS = 1500


def _key_from_labels(attributes: dict[str, str]) -> SlotKey | None:
    try:
        replica = int(attributes.get(LABEL_REPLICA, ""))
    except ValueError:
        return None
    tenant = attributes.get(LABEL_TENANT)
    service = attributes.get(LABEL_SERVICE)
    if not tenant or not service:
        return None
    return (tenant, service, attributes.get(LABEL_TRACK, ""), replica, attributes.get(LABEL_SPEC_HASH, ""))


class CrashTracker:
    def __init__(
        self,
        docker: DockerDriver,
        limits: CrashLoopLimits,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.docker = docker
        self.limits = limits
        self.metrics = metrics
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._history: dict[SlotKey, SlotHistory] = {}
        self._last: dict[SlotKey, tuple[str, str, str]] = {}  # container, cause, logs
        self._kills: dict[str, float] = {}
        self._oom: set[str] = set()
        # Tenants this tracker has seen crash-looping itself (their verdict is its own, not inherited).
        self._seen_looping: set[str] = set()

    # --- fed by the event watcher ---------------------------------------------------------------------------

    def observe(self, event: DockerEvent) -> bool:
        """Take one Docker event; True when a replica has just started crash-looping."""
        if event.kind != "container":
            return False
        name = event.name
        now = self.clock()
        if event.action.startswith("kill"):
            with self._lock:
                self._kills = {n: t for n, t in self._kills.items() if now - t < KILL_GRACE}
                self._kills[name] = now
            return False
        if event.action == "oom":
            with self._lock:
                self._oom.add(name)
            return False
        if event.action == "die":
            with self._lock:
                killed = self._kills.pop(name, None)
                oom = name in self._oom
                self._oom.discard(name)
            if killed is not None and now - killed < KILL_GRACE and not oom:
                return False
            code = event.attributes.get("exitCode", "?")
            cause = "killed: out of memory" if oom else f"exited with code {code}"
        elif event.action == "health_status: unhealthy":
            cause = "Docker health check reports unhealthy"
        else:
            return False
        key = _key_from_labels(event.attributes)
        return key is not None and self.record(key, name, cause)

    def record(self, key: SlotKey, container: str, cause: str, tail: Callable[[], str] | None = None) -> bool:
        """One death (called by one watcher thread: Docker events, or Swarm tasks with their own ``tail``)."""
        now = self.clock()
        with self._lock:
            before = self._history.get(key, SlotHistory())
            previous_logs = self._last.get(key, ("", "", ""))[2]
        after = record_death(before, now, self.limits)
        looping = after.looping(now, self.limits)
        entered = looping and not before.looping(now, self.limits)
        # The log lines are read before the loop becomes visible, so the first Degraded status already has them.
        logs = ((tail or (lambda: self._tail(container)))() or previous_logs) if looping else previous_logs
        with self._lock:
            self._history[key] = after
            self._last[key] = (container, cause, logs)
        if entered:
            tenant = key[0]
            wait = (after.hold_until or now) - now
            log.warning(
                "tenant=%s %s is crash-looping (%d deaths in %gs, last: %s); restarts withheld for %.0fs",
                tenant,
                container,
                len(after.recent(now, self.limits)),
                self.limits.window,
                cause,
                wait,
                extra={"tenant": tenant},
            )
        self._update_gauge()
        return entered

    def _tail(self, container: str) -> str:
        text = self.docker.logs(container, tail=LOG_LINES).strip()
        return text[-LOG_CHARS:]

    # --- read by the reconcile pass -------------------------------------------------------------------------

    def loops(self) -> dict[SlotKey, CrashLoop]:
        now = self.clock()
        found: dict[SlotKey, CrashLoop] = {}
        with self._lock:
            for key in [k for k, h in self._history.items() if settled(h, now, self.limits)]:
                del self._history[key]
                self._last.pop(key, None)
            for key, history in self._history.items():
                if not history.looping(now, self.limits):
                    continue
                container, cause, logs = self._last.get(key, ("?", "?", ""))
                found[key] = CrashLoop(
                    key=key,
                    container=container,
                    deaths=len(history.recent(now, self.limits)),
                    window=self.limits.window,
                    cause=cause,
                    hold_until=history.hold_until,
                    logs=logs,
                )
        return found

    def policy(self, plan: Plan) -> Plan:
        return withhold_crash_looping(plan, self.loops(), self.clock())

    def conditions(self, tenant: str, desired: DesiredTenant | None, previous: TenantStatus | None) -> list[Condition]:
        """``Degraded`` for a running tenant: True while one of its desired replicas is crash-looping."""
        if desired is None or desired.state != "running":
            return []
        now = self.clock()
        loops = self.loops()
        looping = [loops[slot_key(c)] for c in desired.containers if slot_key(c) in loops]
        # Under the Swarm engine the deaths are its services' tasks (``runtime.service.swarm_tasks``).
        looping += [loop for service in desired.services for loop in service_loops(service, loops)]
        if looping:
            with self._lock:
                self._seen_looping.add(tenant)
            parts = []
            for loop in looping:
                held = loop.hold_until is not None and now < loop.hold_until
                wait = f"; restarts withheld for {loop.hold_until - now:.0f}s" if held and loop.hold_until else ""
                parts.append(loop.describe() + wait)
            logs = next((loop.logs for loop in looping if loop.logs), "")
            message = "; ".join(parts) + (f"\nlast log lines:\n{logs}" if logs else "")
            return [Condition(DEGRADED, "True", "CrashLoop", message)]
        before = previous.condition(DEGRADED) if previous is not None else None
        with self._lock:
            inherited = tenant not in self._seen_looping
        if before is not None and before.status == "True" and inherited and now - self.started < self.limits.window:
            # Written before this process started, which has no history yet: keep it until one window is watched.
            return [Condition(DEGRADED, "True", before.reason, before.message)]
        return [Condition(DEGRADED, "False", "NoCrashLoop")]

    def _update_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.crash_loops.set(len(self.loops()))
