"""The host's memory and CPUs from Prometheus's node exporter, for ``api.capacity`` (``GET /api/v1/capacity`` and
the console's capacity line) when ``RECONCILER_PROMETHEUS_URL`` is set.

Four instant queries over the node exporter's series (every scraped node summed: on one host, that host; on a
Swarm, the cluster): total and available memory (``node_memory_MemTotal_bytes``, ``node_memory_MemAvailable_bytes``),
the number of CPUs (``node_cpu_seconds_total`` of mode ``idle``, one series per CPU) and the CPUs busy over the last
minute (the rate of every non-idle mode). None when a figure is missing (no node exporter scraped yet, Prometheus
down): the caller then says what the engine and the tables say, as without Prometheus.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import httpx

log = logging.getLogger("reconciler.api")

TIMEOUT = 3.0  # the console's tenant list waits for it: a slow Prometheus must not hold the page long
QUERIES = {
    "memory_total": "sum(node_memory_MemTotal_bytes)",
    "memory_used": "sum(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)",
    "cpus_total": 'count(node_cpu_seconds_total{mode="idle"})',
    "cpus_used": 'sum(rate(node_cpu_seconds_total{mode!~"idle|iowait|steal"}[1m]))',
}


class HostFigures(NamedTuple):
    memory_total_bytes: int
    memory_used_bytes: int
    cpus_total: int
    cpus_used: float


def _instant(client: httpx.Client, url: str, query: str) -> float | None:
    response = client.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query})
    response.raise_for_status()
    result = response.json()["data"]["result"]
    if not result:
        return None
    return float(result[0]["value"][1])


def host_figures(url: str) -> HostFigures | None:
    """The node exporter's figures as Prometheus has them now; None when any is missing or Prometheus fails."""
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            values = {key: _instant(client, url, query) for key, query in QUERIES.items()}
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        log.warning("host figures not read from Prometheus: %s", type(exc).__name__)
        return None
    memory_total, memory_used = values["memory_total"], values["memory_used"]
    cpus_total, cpus_used = values["cpus_total"], values["cpus_used"]
    if memory_total is None or memory_used is None or cpus_total is None or cpus_used is None:
        return None  # nothing scraped yet, or no node exporter: say so through the source, not with zeros
    return HostFigures(int(memory_total), int(memory_used), int(cpus_total), round(cpus_used, 3))
