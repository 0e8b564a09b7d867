"""``reconciler run`` as a service: leadership, metrics and health endpoints, alerts, signals, the loop.

Only the leader runs the loop (``runtime.service.leader``): a standby serves /healthz, /metrics and /readyz (which says
``leader: standby``) and polls for the lock every second. When it becomes the leader it starts a fresh loop,
the nudge consumer and the scheduled jobs; when it loses the lock (its database session died) it stops applying
at the next action boundary and stands by again. On SQLite a second instance is refused at start.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from sqlalchemy import text

from desired_state.backups import last_successes
from reconciler.core.crashloop import CrashLoopLimits
from reconciler.core.errors import ReconcileError
from reconciler.drivers.swarm import SwarmDriver
from reconciler.runtime.operations.common import log_alert
from reconciler.runtime.operations.recovery import recover_abandoned
from reconciler.runtime.service.crashloop import CrashTracker
from reconciler.runtime.service.leader import (
    POLL_INTERVAL,
    AnotherInstance,
    Leadership,
    build_leadership,
    holder_label,
    identity,
    wait_for_leadership,
)
from reconciler.runtime.service.loop import REQUEUE_COOLDOWN, Loop
from reconciler.runtime.service.nudges import NudgeConsumer, TenantNames, Topology
from reconciler.runtime.service.observers import start_observers
from reconciler.runtime.service.swarm_tasks import TaskWatcher
from reconciler.runtime.service.workqueue import Backoff, WorkQueue
from reconciler.runtime.telemetry.metrics import HealthServer
from reconciler.runtime.wiring import Runtime

log = logging.getLogger("reconciler")


def readiness_checks(runtime: Runtime, leading: threading.Event | None = None) -> dict[str, str]:
    results: dict[str, str] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        results["database"] = "ok"
    except Exception as exc:
        results["database"] = f"unreachable: {type(exc).__name__}"
    try:
        runtime.docker.ping()
        results["docker"] = "ok"
    except ReconcileError as exc:
        results["docker"] = f"unreachable: {exc}"
    if leading is not None:
        results["leader"] = "ok" if leading.is_set() else "standby"
    return results


def crash_tracker(runtime: Runtime) -> CrashTracker:
    s = runtime.settings
    limits = CrashLoopLimits(
        s.crashloop_deaths, s.crashloop_window, s.crashloop_backoff_initial, s.crashloop_backoff_max
    )
    return CrashTracker(runtime.docker, limits, metrics=runtime.metrics)


def build_loop(runtime: Runtime, *, allow_mass_delete: bool = False, crashes: CrashTracker | None = None) -> Loop:
    settings = runtime.settings
    loop = Loop(
        reconciler=runtime.reconciler,
        docker=runtime.docker,
        resync_interval=settings.resync_interval,
        resync_jitter=settings.resync_jitter,
        backoff=Backoff(settings.backoff_initial, settings.backoff_max),
        metrics=runtime.metrics,
        queue=WorkQueue(cooldown=REQUEUE_COOLDOWN),
        allow_mass_delete=allow_mass_delete,
        workers=settings.workers,
        reconcile_timeout=settings.reconcile_timeout,
        scheduler=runtime.scheduler,
        crashes=crashes,
        alerts=runtime.alerts,
    )
    engine = runtime.reconciler.docker
    if crashes is not None and isinstance(engine, SwarmDriver):
        # Swarm: task deaths come from listing tasks, not from the local engine's events (docs/swarm.md).
        loop.extensions.append(TaskWatcher(engine, crashes, settings.swarm_task_poll).start)
    if settings.rabbitmq_url:
        url = settings.rabbitmq_url
        topology = Topology(settings.rabbitmq_exchange, settings.rabbitmq_queue)
        names = TenantNames(runtime.engine)

        def start_consumer(queue: WorkQueue, stop: threading.Event) -> None:
            NudgeConsumer(url, topology, queue, names, stop, metrics=runtime.metrics).start()

        loop.extensions.append(start_consumer)
    else:
        log.info("no RabbitMQ configured (RECONCILER_RABBITMQ_URL): periodic resync and Docker events only")
    return loop


def _watch_leadership(leadership: Leadership, loop: Loop) -> None:
    while not loop.stop.wait(POLL_INTERVAL):
        if not leadership.still_held():
            log.error("lost the leader lock: stopping at the next action boundary, then standing by")
            loop.request_stop()
            return


def seed_backup_ages(runtime: Runtime) -> None:
    """Start the backup-age gauge from the backups table, so the missing-backup alert is right after a restart."""
    if runtime.operations is None:
        return
    for tenant, finished in last_successes(runtime.engine).items():
        runtime.operations.metrics.backup_last_success.labels(tenant=tenant).set(finished.timestamp())


def recover_after_crash(runtime: Runtime) -> None:
    """Rows a dead leader left running are closed as failed before this leader acts (``operations.recovery``)."""
    alert = runtime.operations.relay if runtime.operations is not None else log_alert
    try:
        recover_abandoned(runtime.engine, holder_label("run"), alert)
    except Exception:
        log.exception("closing operations abandoned by a crashed instance failed; the pass goes on")


def run_service(runtime: Runtime, *, allow_mass_delete: bool = False) -> int:
    settings = runtime.settings
    metrics = runtime.metrics
    try:
        leadership = build_leadership(settings.database_url, settings.owner_id)
        leadership.try_acquire()
    except AnotherInstance as exc:
        log.error("%s", exc)
        return 1
    shutdown = threading.Event()
    leading = threading.Event()
    current: list[Loop] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s received: finishing the current action and stopping", signum)
        shutdown.set()
        for loop in current:
            loop.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)

    crashes = crash_tracker(runtime)
    reconciler = runtime.reconciler
    reconciler.policies = (*reconciler.policies, crashes.policy)
    reconciler.extra_conditions = crashes.conditions
    reconciler.on_status = runtime.alerts.on_status
    runtime.alerts.start()
    seed_backup_ages(runtime)
    server = HealthServer(metrics, settings.metrics_addr, lambda: readiness_checks(runtime, leading))
    stop_observers = start_observers(runtime, shutdown, leading.is_set)
    server.start()
    host = settings.metrics_addr.rpartition(":")[0] or "127.0.0.1"
    log.info(
        "reconciler running: owner=%s workers=%d resync=%.0fs metrics=http://%s:%d/metrics",
        settings.owner_id,
        settings.workers,
        settings.resync_interval,
        host,
        server.port,
    )
    metrics.leader.set(0)
    metrics.broker_connected.set(0)
    runtime.scheduler.start(paused=True)
    try:
        while not shutdown.is_set():
            if not wait_for_leadership(leadership, shutdown):
                break
            leading.set()
            metrics.leader.set(1)
            log.info("leader: %s applies changes for owner %s", identity(), settings.owner_id)
            recover_after_crash(runtime)
            runtime.alerts.notify(f"🔑 {identity()} is now the active reconciler (owner {settings.owner_id})")
            loop = build_loop(runtime, allow_mass_delete=allow_mass_delete, crashes=crashes)
            current[:] = [loop]
            if shutdown.is_set():
                loop.request_stop()
            threading.Thread(target=_watch_leadership, args=(leadership, loop), name="leader", daemon=True).start()
            runtime.scheduler.resume()
            try:
                loop.run()
            finally:
                runtime.scheduler.pause()
                leading.clear()
                metrics.leader.set(0)
                current.clear()
            if not shutdown.is_set():
                runtime.alerts.notify(f"⚠️ {identity()} lost the leader lock and stands by (owner {settings.owner_id})")
    finally:
        # Jobs and running operation requests end first: a standby taking the lock would close them as abandoned.
        runtime.scheduler.shutdown()
        leadership.release()
        runtime.alerts.stop()
        server.stop()
        stop_observers()
    return 0
