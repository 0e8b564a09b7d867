"""Background observers of ``reconciler run`` that feed ``/metrics`` and the UI, off the reconcile path:
the per-tenant status gauges (``tenant_gauges``) and the resource usage collector (``usage``).

Called once by ``runtime.service.run``; each observer runs on its own daemon thread until ``stop`` is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.drivers.usage import UsageSampler
from reconciler.runtime.telemetry.tenant_gauges import TenantStatusMetrics
from reconciler.runtime.telemetry.usage import PrometheusUsageReader, UsageCollector, UsageMetrics
from reconciler.runtime.wiring import Runtime


def start_observers(
    runtime: Runtime, stop: threading.Event, leading: Callable[[], bool] = lambda: True
) -> Callable[[], None]:
    """Register the observers' gauges, start their threads; returns a function that stops and closes them.

    Usage is collected only while ``leading()``: a standby on another host sees another engine, and its empty
    figures must not replace the leader's rows.
    """
    settings = runtime.settings
    registry = runtime.metrics.registry
    statuses = TenantStatusMetrics(runtime.engine)
    registry.register(statuses)
    threads = [statuses.start(stop)]
    usage_metrics = UsageMetrics()
    registry.register(usage_metrics)
    collector: UsageCollector | None = None
    if settings.usage_interval > 0:
        sampler = UsageSampler(
            owner=settings.owner_id,
            docker_host=settings.docker_host,
            cgroup_root=settings.cgroup_root,
            source=settings.usage_source,
        )
        reader = (
            PrometheusUsageReader(settings.prometheus_url, settings.usage_window) if settings.prometheus_url else None
        )
        collector = UsageCollector(
            sampler, runtime.engine, settings.usage_interval, usage_metrics, reader, leading=leading
        )
        threads.append(collector.start(stop))

    def close() -> None:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        if collector is not None:
            collector.close()

    return close
