"""``reconciler run``: the periodic resync, the Docker event watcher, and the worker that drains the queue.

Events are hints and the resync is the truth: the event stream reconnects with backoff when it breaks, and the
jittered periodic full pass converges everything on its own. A failing tenant is retried on its own backoff
schedule while the others keep converging. SIGTERM stops the loop between actions.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from reconciler.core.errors import ReconcileError
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.reconcile import Reconciler
from reconciler.runtime.workqueue import ALL, Backoff, WorkQueue

log = logging.getLogger("reconciler.loop")

# Container events after which a tenant is reconciled at once; others (exec, attach, ...) are noise.
WATCHED_CONTAINER_ACTIONS = frozenset({"die", "destroy", "stop", "kill", "oom", "health_status: unhealthy"})
WATCHED_NETWORK_ACTIONS = frozenset({"destroy", "disconnect"})
# Several events of one tenant (die, then stop, then destroy) fold into one reconcile.
EVENT_DEBOUNCE = 0.2


@dataclass
class Loop:
    reconciler: Reconciler
    docker: DockerDriver
    resync_interval: float = 30.0
    resync_jitter: float = 0.1
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 300.0))
    metrics: Metrics | None = None
    queue: WorkQueue = field(default_factory=WorkQueue)
    stop: threading.Event = field(default_factory=threading.Event)
    # Extra starters (nudge consumer, scheduler, ...) given the queue and the stop event.
    extensions: list[Callable[[WorkQueue, threading.Event], None]] = field(default_factory=list)
    allow_mass_delete: bool = False

    def __post_init__(self) -> None:
        self.reconciler.stop = self.stop
        self.reconciler.executor.stop = self.stop
        self._next_resync = 0.0

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s received: finishing the current action and stopping", signum)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self) -> None:
        self.stop.set()
        self.queue.close()

    def _schedule_resync(self) -> None:
        jitter = 1 + random.uniform(-self.resync_jitter, self.resync_jitter)
        self._next_resync = time.monotonic() + self.resync_interval * jitter

    def _watch_events(self) -> None:
        prefix = self.reconciler.naming.prefix + "-"
        delay = 1.0
        while not self.stop.is_set():
            try:
                if self.metrics:
                    self.metrics.event_stream_connected.set(1)
                for event in self.docker.events(self.stop):
                    delay = 1.0
                    tenant = event.tenant
                    if event.kind == "network" and event.action in WATCHED_NETWORK_ACTIONS:
                        name = event.name
                        tenant = name[len(prefix) :] if name.startswith(prefix) else None
                    elif event.kind != "container" or event.action not in WATCHED_CONTAINER_ACTIONS:
                        continue
                    if tenant:
                        log.debug("event %s %s %s -> reconcile %s", event.kind, event.action, event.name, tenant)
                        self.queue.add(tenant, EVENT_DEBOUNCE, priority=0)
            except ReconcileError as exc:
                log.warning("Docker event stream lost (%s); reconnecting in %.0fs", exc, delay)
            except Exception:
                log.exception("Docker event watcher failed; reconnecting in %.0fs", delay)
            if self.metrics:
                self.metrics.event_stream_connected.set(0)
            if self.stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)

    def process(self, key: str) -> None:
        scope = None if key == ALL else {key}
        trigger = "resync" if key == ALL else "event"
        try:
            result = self.reconciler.run_pass(scope, allow_mass_delete=self.allow_mass_delete, trigger=trigger)
        except ReconcileError as exc:
            delay = self.backoff.failure(key)
            log.error("pass %s failed: %s; retrying in %.1fs", key, exc, delay)
            self.queue.add(key, delay)
            if self.metrics:
                self.metrics.passes.labels(result="error").inc()
            return
        for tenant in result.failed_tenants:
            delay = self.backoff.failure(tenant)
            log.info("tenant=%s retry in %.1fs (failure %d)", tenant, delay, self.backoff.failures(tenant))
            self.queue.add(tenant, delay)
        for tenant in result.outcomes:
            self.backoff.success(tenant)
            if result.outcomes[tenant].waiting:
                self.queue.add(tenant, 1.0)
        if key != ALL and key not in result.errors:
            self.backoff.success(key)

    def run(self) -> None:
        threading.Thread(target=self._watch_events, name="docker-events", daemon=True).start()
        for start in self.extensions:
            start(self.queue, self.stop)
        self.queue.add(ALL)
        self._schedule_resync()
        while not self.stop.is_set():
            if time.monotonic() >= self._next_resync:
                self.queue.add(ALL)
                self._schedule_resync()
            key = self.queue.get(timeout=max(0.05, min(1.0, self._next_resync - time.monotonic())))
            if self.metrics:
                self.metrics.queue_depth.set(len(self.queue))
            if key is None:
                continue
            try:
                self.process(key)
            except Exception:
                # Unexpected bugs must not kill the loop: the next resync tries again.
                log.exception("unexpected error while reconciling %s", key)
            finally:
                self.queue.done(key)
        log.info("stopped")
