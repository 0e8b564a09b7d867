"""``reconciler run`` as a service: metrics and health endpoints, signal handling, the loop."""

from __future__ import annotations

import logging

from sqlalchemy import text

from reconciler.core.errors import ReconcileError
from reconciler.runtime.loop import Loop
from reconciler.runtime.metrics import HealthServer
from reconciler.runtime.wiring import Runtime
from reconciler.runtime.workqueue import Backoff

log = logging.getLogger("reconciler")


def readiness_checks(runtime: Runtime) -> dict[str, str]:
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
    return results


def build_loop(runtime: Runtime, *, allow_mass_delete: bool = False) -> Loop:
    settings = runtime.settings
    return Loop(
        reconciler=runtime.reconciler,
        docker=runtime.docker,
        resync_interval=settings.resync_interval,
        resync_jitter=settings.resync_jitter,
        backoff=Backoff(settings.backoff_initial, settings.backoff_max),
        metrics=runtime.metrics,
        allow_mass_delete=allow_mass_delete,
    )


def run_service(runtime: Runtime, *, allow_mass_delete: bool = False) -> int:
    loop = build_loop(runtime, allow_mass_delete=allow_mass_delete)
    loop.install_signal_handlers()
    server = HealthServer(runtime.metrics, runtime.settings.metrics_addr, lambda: readiness_checks(runtime))
    server.start()
    log.info(
        "reconciler running: owner=%s resync=%.0fs metrics=http://%s/metrics",
        runtime.settings.owner_id,
        runtime.settings.resync_interval,
        runtime.settings.metrics_addr,
    )
    try:
        loop.run()
    finally:
        server.stop()
    return 0
