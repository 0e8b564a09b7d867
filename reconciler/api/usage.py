"""A tenant's memory and CPU use now and over time, for the API and the console's chart.

Now: the ``tenant_usages`` rows ``reconciler run`` writes. Over time: Prometheus's range query of the usage gauges
(``reconciler_tenant_memory_bytes`` / ``_cpu_cores``) when ``RECONCILER_PROMETHEUS_URL`` is set; otherwise the
samples this process took of ``tenant_usages`` (``UsageHistory``, one sample of every tenant per
``usage_interval``, the last ``KEEP`` kept), so a chart works on a host without Prometheus too.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime, timedelta

import httpx

from desired_state.inputs import TENANT_NAME_RE
from desired_state.usage import read_usages
from reconciler.api.context import ApiContext
from reconciler.api.models import UsageOut, UsagePoint, UsageSeries

log = logging.getLogger("reconciler.api")

KEEP = 240  # samples per tenant: an hour at the default 15 s interval
PROMETHEUS_TIMEOUT = 5.0
WINDOW = timedelta(hours=1)


class UsageHistory:
    """Samples of ``tenant_usages`` taken by a daemon thread (no Prometheus: the chart's only source)."""

    def __init__(self, context: ApiContext, interval: float) -> None:
        self._context = context
        self._interval = interval
        self._points: dict[str, deque[UsagePoint]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="api-usage-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # the database may be restarting; the next sample will tell
                log.warning("usage sample failed: %s", type(exc).__name__)
            self._stop.wait(self._interval)

    def sample(self) -> None:
        totals: dict[str, tuple[datetime, int, float | None]] = {}
        for usage in read_usages(self._context.engine):
            at, memory, cpu = totals.get(usage.tenant, (usage.collected_at, 0, None))
            if usage.cpu_cores is not None:
                cpu = (cpu or 0.0) + usage.cpu_cores
            totals[usage.tenant] = (max(at, usage.collected_at), memory + usage.memory_bytes, cpu)
        with self._lock:
            for tenant, (at, memory, cpu) in totals.items():
                points = self._points.setdefault(tenant, deque(maxlen=KEEP))
                if not points or points[-1].at != at:
                    points.append(UsagePoint(at=at, memory_bytes=memory, cpu_cores=cpu))

    def points(self, tenant: str) -> list[UsagePoint]:
        with self._lock:
            return list(self._points.get(tenant, ()))


def _prometheus_series(url: str, tenant: str) -> list[UsagePoint]:
    if not TENANT_NAME_RE.match(tenant):
        return []  # not a tenant name, and never quoted into a query
    end = datetime.now(UTC)
    start = end - WINDOW
    series: dict[float, dict[str, float]] = {}
    for key, metric in (("memory", "reconciler_tenant_memory_bytes"), ("cpu", "reconciler_tenant_cpu_cores")):
        query = f'sum(avg_over_time({metric}{{tenant="{tenant}"}}[1m]))'
        response = httpx.get(
            f"{url.rstrip('/')}/api/v1/query_range",
            params={"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": "30"},
            timeout=PROMETHEUS_TIMEOUT,
        )
        response.raise_for_status()
        for result in response.json()["data"]["result"]:
            for stamp, value in result["values"]:
                series.setdefault(float(stamp), {})[key] = float(value)
    return [
        UsagePoint(
            at=datetime.fromtimestamp(stamp, UTC),
            memory_bytes=int(values.get("memory", 0)),
            cpu_cores=values.get("cpu"),
        )
        for stamp, values in sorted(series.items())
    ]


def usage_of(context: ApiContext, history: UsageHistory, tenant: str) -> UsageSeries:
    now = [
        UsageOut(
            service=u.service,
            memory_bytes=u.memory_bytes,
            memory_limit_bytes=u.memory_limit_bytes,
            cpu_cores=u.cpu_cores,
            containers=u.containers,
            collected_at=u.collected_at,
        )
        for u in read_usages(context.engine, tenant)
    ]
    url = context.settings.prometheus_url
    if url:
        try:
            return UsageSeries(tenant=tenant, source="prometheus", now=now, series=_prometheus_series(url, tenant))
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("usage series of tenant=%s not read from Prometheus: %s", tenant, type(exc).__name__)
    return UsageSeries(tenant=tenant, source="table", now=now, series=history.points(tenant))
