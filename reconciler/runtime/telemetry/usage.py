"""Per-tenant resource usage: a collector thread beside the loop, never on a reconcile pass's path.

Every ``usage_interval`` seconds it samples the owned containers (``drivers.usage``: cgroup files, or the Docker
stats API), turns two samples into cores used (``core.usage``), keeps the figures for ``/metrics``
(``reconciler_tenant_memory_bytes`` / ``_memory_limit_bytes`` / ``_cpu_cores`` / ``_containers``, labelled by
tenant and service) and replaces the ``tenant_usages`` rows the web UI reads. A container seen for the first time
is sampled twice, ``FIRST_SAMPLE_GAP`` apart, so its CPU figure appears within the first collection too.

With ``prometheus_url`` set, the rows get the figures averaged over ``usage_window`` from Prometheus's query API
(steadier numbers for the UI); the local figures stand in for series Prometheus does not have yet, and for all of
them while Prometheus does not answer. Started by ``runtime.service.observers`` for ``reconciler run``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from desired_state.usage import TenantUsage, write_usages
from reconciler.core.errors import ReconcileError, TransientError
from reconciler.core.usage import ContainerSample, ServiceUsage, aggregate
from reconciler.drivers.usage import UsageSampler

log = logging.getLogger("reconciler.usage")

# Gap between the two samples of a new container: long enough for a CPU figure, short against any interval.
FIRST_SAMPLE_GAP = 0.25
# Prometheus answers a query over a few thousand series in milliseconds; a slow one must not stall collection.
PROMETHEUS_TIMEOUT = 5.0

MEMORY = "reconciler_tenant_memory_bytes"
MEMORY_LIMIT = "reconciler_tenant_memory_limit_bytes"
CPU = "reconciler_tenant_cpu_cores"
CONTAINERS = "reconciler_tenant_containers"


class UsageMetrics(Collector):
    """The latest figures as gauges: a series disappears with the last container of its tenant service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usages: list[ServiceUsage] = []
        self._duration = 0.0
        self._last = 0.0

    def update(self, usages: list[ServiceUsage], duration: float) -> None:
        with self._lock:
            self._usages, self._duration, self._last = usages, duration, time.time()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            usages, duration, last = self._usages, self._duration, self._last
        labels = ["tenant", "service"]
        memory = GaugeMetricFamily(MEMORY, "Memory in use (working set) per tenant service.", labels=labels)
        limit = GaugeMetricFamily(MEMORY_LIMIT, "Memory limit per tenant service (summed).", labels=labels)
        cpu = GaugeMetricFamily(CPU, "CPU cores used per tenant service over the last interval.", labels=labels)
        containers = GaugeMetricFamily(CONTAINERS, "Running containers per tenant service.", labels=labels)
        for u in usages:
            memory.add_metric(u.key, u.memory_bytes)
            containers.add_metric(u.key, u.containers)
            if u.memory_limit_bytes is not None:
                limit.add_metric(u.key, u.memory_limit_bytes)
            if u.cpu_cores is not None:
                cpu.add_metric(u.key, u.cpu_cores)
        yield from (memory, limit, cpu, containers)
        yield GaugeMetricFamily(
            "reconciler_usage_collection_duration_seconds", "Duration of the last usage collection.", value=duration
        )
        yield GaugeMetricFamily(
            "reconciler_usage_last_collection_timestamp_seconds", "Unix time of the last usage collection.", value=last
        )


class PrometheusUsageReader:
    """Reads the usage gauges back from Prometheus, averaged over a window, per (tenant, service)."""

    def __init__(self, url: str, window: float, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.window = f"{max(int(window), 1)}s"
        self.client = client or httpx.Client(timeout=PROMETHEUS_TIMEOUT)

    def query(self, promql: str) -> dict[tuple[str, str], float]:
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TransientError(f"Prometheus query at {self.url} failed: {exc}") from exc
        if body.get("status") != "success":
            raise TransientError(f"Prometheus query at {self.url} failed: {body.get('error', body)}")
        figures = {}
        for item in body["data"]["result"]:
            metric = item["metric"]
            figures[(metric.get("tenant", ""), metric.get("service", ""))] = float(item["value"][1])
        return figures

    def averages(self) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
        """(memory bytes, CPU cores) averaged over the window; ``max by`` folds several reconciler targets."""
        memory = self.query(f"max by (tenant, service) (avg_over_time({MEMORY}[{self.window}]))")
        cpu = self.query(f"max by (tenant, service) (avg_over_time({CPU}[{self.window}]))")
        return memory, cpu

    def close(self) -> None:
        self.client.close()


class UsageCollector:
    def __init__(
        self,
        sampler: UsageSampler,
        engine: Engine | None,
        interval: float,
        metrics: UsageMetrics | None = None,
        prometheus: PrometheusUsageReader | None = None,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.sampler = sampler
        self.engine = engine
        self.interval = interval
        self.metrics = metrics or UsageMetrics()
        self.prometheus = prometheus
        self.leading = leading
        self._previous: dict[str, ContainerSample] = {}
        self._prometheus_failing = False
        self.thread: threading.Thread | None = None

    def collect_once(self) -> list[ServiceUsage]:
        started = time.monotonic()
        samples = self.sampler.sample()
        new = {s.container_id for s in samples if s.container_id not in self._previous}
        if new:
            time.sleep(FIRST_SAMPLE_GAP)
            first = {s.container_id: s for s in samples if s.container_id in new}
            again = {s.container_id: s for s in self.sampler.sample(only=new)}
            samples = [again.get(s.container_id, s) for s in samples]
            previous = {**self._previous, **first}
        else:
            previous = self._previous
        usages = aggregate(previous, samples)
        self._previous = {s.container_id: s for s in samples}
        self.metrics.update(usages, time.monotonic() - started)
        if self.engine is not None:
            write_usages(self.engine, self.rows(usages))
        return usages

    def rows(self, usages: list[ServiceUsage]) -> list[TenantUsage]:
        """The table rows for ``usages``: Prometheus's window averages where it has them, else the local figures."""
        now = datetime.now(UTC)
        memory: dict[tuple[str, str], float] = {}
        cpu: dict[tuple[str, str], float] = {}
        if self.prometheus is not None:
            try:
                memory, cpu = self.prometheus.averages()
                if self._prometheus_failing:
                    log.info("Prometheus answers again; usage rows use its averages")
                self._prometheus_failing = False
            except ReconcileError as exc:
                if not self._prometheus_failing:
                    log.warning("%s; usage rows use local figures until it answers", exc)
                self._prometheus_failing = True
        return [
            TenantUsage(
                tenant=u.tenant,
                service=u.service,
                memory_bytes=int(memory.get(u.key, u.memory_bytes)),
                memory_limit_bytes=u.memory_limit_bytes,
                cpu_cores=cpu.get(u.key, u.cpu_cores),
                containers=u.containers,
                collected_at=now,
            )
            for u in usages
        ]

    def run(self, stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                if self.leading():
                    self.collect_once()
                else:  # a standby exports no figures of its own and leaves the rows to the leader
                    self._previous = {}
                    self.metrics.update([], 0.0)
                if failing:
                    log.info("usage collection works again")
                failing = False
            except Exception as exc:  # the collector must outlive a broken engine or database
                if not failing:
                    log.warning("usage collection failed: %s; retrying every %.0fs", exc, self.interval)
                failing = True
            if stop.wait(self.interval):
                return

    def start(self, stop: threading.Event) -> threading.Thread:
        self.thread = threading.Thread(target=self.run, args=(stop,), name="usage-collector", daemon=True)
        self.thread.start()
        return self.thread

    def close(self) -> None:
        self.sampler.close()
        if self.prometheus is not None:
            self.prometheus.close()
