"""``reconciler run``'s loop: a work queue of tenant keys drained by N workers, fed by the periodic resync, the
Docker event watcher and RabbitMQ nudges (``runtime.service.nudges``, started as an extension).

Each key is a tenant; a worker runs a pass scoped to it (re-reading the database and observing Docker, whatever
woke it up), so passes of different tenants run side by side while one tenant is never in two passes at once
(the queue never hands out a key twice, and ``Reconciler.locks`` holds per-tenant locks). Tenants queued by the
periodic resync share passes, ``RESYNC_BATCH`` at a time. The resync queues
``ALL``: a sweep (``Reconciler.sweep``) that does the pass-wide work (tenants gone from the database, under the
mass-delete guard over the whole plan; orphan route files and DNS records) and then queues every tenant it saw.

Events are hints and the resync is the truth: the event stream reconnects with backoff when it breaks, and the
jittered resync converges everything on its own. A failing tenant is retried on its own exponential backoff
while the others keep converging; a pass running past ``reconcile_timeout`` is interrupted between two actions
and retried the same way; a tenant whose pass failed permanently is parked instead (``service.retries``): no
timer retries, left out of resyncs until its generation or the catalog changes. Docker ``die`` and ``unhealthy``
events also feed the crash tracker. SIGTERM stops the loop between actions.

Drift the labels cannot show (``docker update --memory``) is found by inspecting containers: one a Docker
``update`` event names is marked for inspection at once, and each resync marks the next
``Settings.inspect_per_resync`` containers in turn; a scoped pass inspects the marked containers of its tenants
(``drivers.docker.inspect``) and, once it succeeds, clears their marks.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from desired_state.generations import read_generations
from desired_state.status import read_status
from reconciler.core.errors import ReconcileError
from reconciler.drivers.docker import DockerDriver, DockerEvent
from reconciler.runtime.passes.deadline import PassDeadline
from reconciler.runtime.passes.reconcile import Reconciler
from reconciler.runtime.service.crashloop import CrashTracker
from reconciler.runtime.service.retries import PermanentHolds, retry_delay
from reconciler.runtime.service.scheduler import Scheduler
from reconciler.runtime.service.workqueue import ALL, Backoff, Item, WorkQueue
from reconciler.runtime.telemetry.alerts import Alerter
from reconciler.runtime.telemetry.metrics import Metrics

log = logging.getLogger("reconciler.loop")

# Container events after which a tenant is reconciled at once; others (exec, attach, ...) are noise.
WATCHED_CONTAINER_ACTIONS = frozenset({"die", "destroy", "stop", "kill", "oom", "health_status: unhealthy", "update"})
# Container events after which the container is inspected: its limits may differ from its labels now.
INSPECTED_CONTAINER_ACTIONS = frozenset({"update"})
WATCHED_NETWORK_ACTIONS = frozenset({"destroy", "disconnect"})
# Several events of one tenant (die, then stop, then destroy) fold into one reconcile.
EVENT_DEBOUNCE = 0.2
# A tenant starts at most once per this many seconds: the first nudge after a quiet spell runs at once, a storm
# of nudges or events (a thousand in a second) costs two or three reconciles, not a thousand.
REQUEUE_COOLDOWN = 1.0
# A tenant whose removal waits (e.g. for its DNS record to go) is looked at again this soon.
WAITING_RETRY = 1.0
# Tenants queued by the periodic resync are reconciled this many per pass: every pass loads the whole desired
# state (~60 ms for 1000 tenants), so one pass per tenant would cost O(n²) per resync. Nudged, evented and
# retried tenants get passes of their own.
RESYNC_BATCH = 25
RESYNC_JOB = "resync"
# Workers still busy at shutdown get this long to reach the next action boundary.
WORKER_JOIN_TIMEOUT = 30.0


@dataclass
class Loop:
    reconciler: Reconciler
    docker: DockerDriver
    resync_interval: float = 30.0
    resync_jitter: float = 0.1
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 300.0))
    metrics: Metrics | None = None
    queue: WorkQueue = field(default_factory=lambda: WorkQueue(cooldown=REQUEUE_COOLDOWN))
    # The reconciler's stop event (a ``PassDeadline``, given to it by wiring): set to stop the loop.
    stop: threading.Event = field(init=False)
    # Extra starters (the nudge consumer, ...) given the queue and the stop event.
    extensions: list[Callable[[WorkQueue, threading.Event], None]] = field(default_factory=list)
    allow_mass_delete: bool = False
    workers: int = 4
    reconcile_timeout: float = 300.0
    # Shared with other periodic jobs (backups) when given; otherwise the loop runs a private one.
    scheduler: Scheduler | None = None
    crashes: CrashTracker | None = None
    alerts: Alerter | None = None

    def __post_init__(self) -> None:
        self.holds = PermanentHolds()
        deadline = self.reconciler.stop
        if not isinstance(deadline, PassDeadline):
            raise TypeError("the reconciler must be built with stop=PassDeadline() (runtime.wiring does so)")
        self.deadline = deadline
        self.stop = deadline.stop_event
        # A new leadership term: the stop of an earlier term (same runtime) no longer holds.
        self.stop.clear()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s received: finishing the current action and stopping", signum)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self) -> None:
        self.stop.set()
        self.queue.close()

    def resync(self) -> None:
        """The periodic job: queue the sweep, which queues every tenant in turn."""
        self.queue.add(ALL, priority=1, trigger="resync")

    # --- Docker events ---------------------------------------------------------------------------------------

    def _stream_connected(self, connected: bool) -> None:
        if self.metrics:
            self.metrics.event_stream_connected.set(1 if connected else 0)

    def _on_event(self, event: DockerEvent, prefix: str) -> None:
        tenant = event.tenant
        if self.crashes is not None and self.crashes.observe(event) and tenant:
            self.queue.add(tenant, priority=0, trigger="event")
        if event.kind == "network" and event.action in WATCHED_NETWORK_ACTIONS:
            name = event.name
            tenant = name[len(prefix) :] if name.startswith(prefix) else None
        elif event.kind != "container" or event.action not in WATCHED_CONTAINER_ACTIONS:
            return
        if tenant and event.kind == "container" and event.action in INSPECTED_CONTAINER_ACTIONS:
            self.docker.inspections.mark(event.name, tenant)
        if tenant:
            log.debug("event %s %s %s -> reconcile %s", event.kind, event.action, event.name, tenant)
            self.queue.add(tenant, EVENT_DEBOUNCE, priority=0, trigger="event")

    def _watch_events(self) -> None:
        prefix = self.reconciler.naming.prefix + "-"
        delay = 1.0
        while not self.stop.is_set():
            try:
                for event in self.docker.events(self.stop, self._stream_connected):
                    delay = 1.0
                    self._on_event(event, prefix)
            except ReconcileError as exc:
                log.warning("Docker event stream lost (%s); reconnecting in %.0fs", exc, delay)
            except Exception:
                log.exception("Docker event watcher failed; reconnecting in %.0fs", delay)
            self._stream_connected(False)
            if self.stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)

    # --- one key ---------------------------------------------------------------------------------------------

    def process(self, items: list[Item]) -> None:
        now = time.monotonic()
        for item in items:
            if self.metrics:
                self.metrics.queue_wait.labels(trigger=item.trigger).observe(now - item.queued_at)
            log.debug(
                "%s: reconcile started (trigger=%s, queued %.0f ms ago)",
                "sweep" if item.key == ALL else f"tenant={item.key}",
                item.trigger,
                (now - item.queued_at) * 1000,
                extra={"tenant": item.key},
            )
        self.deadline.begin(self.reconcile_timeout)
        try:
            if items[0].key == ALL:
                self._sweep(items[0].trigger)
            else:
                self._reconcile([item.key for item in items], items[0].trigger)
        finally:
            self.deadline.end()

    def _retry(self, key: str, why: str, error: ReconcileError | None = None) -> None:
        backoff = self.backoff.failure(key)
        delay = retry_delay(error, backoff)
        what = "sweep" if key == ALL else f"tenant={key}"
        if delay is None:
            self._park(key, why)
            return
        log.info("%s retry in %.1fs (failure %d): %s", what, delay, self.backoff.failures(key), why)
        self.queue.add(key, delay, priority=1, trigger="retry")

    def _park(self, tenant: str, why: str) -> None:
        """Permanent: wait for a new generation of the tenant (the one its failing pass saw) or of the catalog."""
        try:
            status = read_status(self.reconciler.engine, tenant)
            catalog = read_generations(self.reconciler.engine).catalog
        except Exception:
            log.exception("tenant=%s generations not readable; retrying on the backoff instead", tenant)
            self.queue.add(tenant, self.backoff.failure(tenant), priority=1, trigger="retry")
            return
        self.holds.park(tenant, status.observed_generation if status else None, catalog, why)
        log.warning(
            "tenant=%s not retried until its spec or the catalog changes (permanent error): %s",
            tenant,
            why,
            extra={"tenant": tenant},
        )

    def _timed_out(self) -> bool:
        if self.stop.is_set() or not self.deadline.expired():
            return False
        if self.metrics:
            self.metrics.reconcile_timeouts.inc()
        return True

    def _reconcile(self, tenants: list[str], trigger: str) -> None:
        marks = self.docker.inspections.position()
        try:
            result = self.reconciler.run_pass(set(tenants), allow_mass_delete=self.allow_mass_delete, trigger=trigger)
        except ReconcileError as exc:
            log.error("pass of %s failed: %s", ", ".join(tenants), exc)
            if self.metrics:
                self.metrics.passes.labels(result="error").inc()
            for tenant in tenants:
                self._retry(tenant, str(exc), exc)
            return
        if self.alerts is not None and result.plan.errors:
            # A tenant's pass refused by the guard alerts like a sweep (once, while the refusal lasts).
            self.alerts.mass_delete(result.plan.errors)
        timed_out = self._timed_out()
        if timed_out:
            log.error(
                "pass of %s ran past %gs: interrupted between actions", ", ".join(tenants), self.reconcile_timeout
            )
        settled = []
        for tenant in tenants:
            outcome = result.outcomes.get(tenant)
            if tenant in result.errors:
                self._retry(tenant, result.errors[tenant], result.failures.get(tenant))
            elif outcome is None and timed_out:
                self._retry(tenant, f"timed out after {self.reconcile_timeout:g}s")
            else:
                settled.append(tenant)
                self.backoff.success(tenant)
                self.holds.release(tenant)
                if outcome is not None and outcome.waiting:
                    self.queue.add(tenant, WAITING_RETRY, priority=1, trigger="retry")
        self.docker.inspections.settle(settled, marks)

    def _sweep(self, trigger: str) -> None:
        try:
            result = self.reconciler.sweep(allow_mass_delete=self.allow_mass_delete, trigger=trigger)
        except ReconcileError as exc:
            log.error("sweep failed: %s", exc)
            if self.metrics:
                self.metrics.passes.labels(result="error").inc()
            self._retry(ALL, str(exc))
            return
        if self.alerts is not None:
            self.alerts.mass_delete(result.plan.errors)
        if self._timed_out():
            self._retry(ALL, f"timed out after {self.reconcile_timeout:g}s")
        elif result.errors:
            self._retry(ALL, "; ".join(f"{t}: {e}" for t, e in sorted(result.errors.items())))
        else:
            self.backoff.success(ALL)
            if any(outcome.waiting for outcome in result.outcomes.values()):
                self.queue.add(ALL, WAITING_RETRY, priority=1, trigger="retry")
        # The next few containers in turn are inspected by the passes queued now (drift the labels cannot show).
        self.docker.inspections.advance()
        # A nudge for every tenant keeps its priority; a periodic resync queues them behind nudges and events.
        priority, fanned = (0, "nudge") if trigger == "nudge" else (1, "resync")
        parked = self._still_parked() if fanned == "resync" else frozenset()
        for tenant in result.tenants:
            if tenant not in parked:
                self.queue.add(tenant, priority=priority, trigger=fanned)

    def _still_parked(self) -> frozenset[str]:
        """Parked tenants whose generation and catalog are unchanged (one cheap read, only when any is parked)."""
        if not self.holds:
            return frozenset()
        try:
            now = read_generations(self.reconciler.engine)
        except Exception:
            log.exception("generations not readable; parked tenants are reconciled this resync")
            return frozenset()
        return frozenset(t for t in self.holds.tenants() if self.holds.held(t, now.tenants.get(t), now.catalog))

    # --- running -------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self.stop.is_set():
            items = self.queue.get_batch(RESYNC_BATCH, timeout=1.0)
            if not items:
                continue
            try:
                self.process(items)
            except Exception:
                # Unexpected bugs must not kill a worker: the next resync tries again.
                log.exception("unexpected error while reconciling %s", ", ".join(item.key for item in items))
            finally:
                for item in items:
                    self.queue.done(item.key)
                if self.metrics:
                    self.metrics.queue_depth.set(len(self.queue))

    def run(self) -> None:
        """Run until ``request_stop`` (SIGTERM, or the service losing leadership)."""
        threading.Thread(target=self._watch_events, name="docker-events", daemon=True).start()
        for start in self.extensions:
            start(self.queue, self.stop)
        scheduler = self.scheduler or Scheduler()
        scheduler.add_interval(
            RESYNC_JOB, self.resync_interval, self.resync, jitter=self.resync_interval * self.resync_jitter
        )
        if self.scheduler is None:
            scheduler.start(paused=False)
        self.queue.add(ALL, priority=1, trigger="startup")
        workers = [
            threading.Thread(target=self._work, name=f"worker-{index}", daemon=True) for index in range(self.workers)
        ]
        for worker in workers:
            worker.start()
        try:
            while not self.stop.wait(0.5):
                if self.metrics:
                    self.metrics.queue_depth.set(len(self.queue))
        finally:
            scheduler.remove(RESYNC_JOB)
            if self.scheduler is None:
                scheduler.shutdown()
            self.queue.close()
            deadline = time.monotonic() + WORKER_JOIN_TIMEOUT
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
        log.info("stopped")
