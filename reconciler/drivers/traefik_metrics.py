"""Traefik's request metrics, read for the canary analysis: cumulative request counters per Traefik service.

Two sources with one answer (``Counters`` by service name). ``TraefikMetricsReader``: one GET of Traefik's own
``/metrics`` (Traefik's static configuration needs ``metrics.prometheus`` with
``addServicesLabels: true``; deploy/traefik/traefik.yml and deploy/devstack.py have it), parsed with
prometheus_client's text parser into the core's ``Counters`` by service name (the ``@file`` provider suffix
removed). ``PrometheusCountersReader``: the same counters from a Prometheus that scrapes Traefik (five instant
queries, summed by service, and by bucket bound for the request-duration histogram, over every scraped Traefik).
Only the file provider's services are kept. Connection
failures and 5xx answers are ``TransientError``; a 404 (metrics not enabled), an unparsable body or a refused
query is ``PermanentError``.
Called by ``runtime.operations.canary`` once per analysis window.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.canary import Counters
from reconciler.core.canary_latency import merge_buckets
from reconciler.core.errors import PermanentError, TransientError

# Seconds for one read; the endpoint answers in milliseconds (a few lines per service and status code).
METRICS_TIMEOUT = 5.0
_PROVIDER_SUFFIX = "@file"
_REQUESTS = "traefik_service_requests"  # the parser drops the counter's ``_total``
_DURATION = "traefik_service_request_duration_seconds"


def parse_counters(text: str) -> dict[str, Counters]:
    """Counters of every file-provider service in one scrape, summed over status codes, methods and protocols
    (the request-duration histogram's buckets summed by bound)."""
    found: dict[str, dict[str, float]] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (_REQUESTS, _DURATION):
            continue
        for sample in family.samples:
            service = sample.labels.get("service", "")
            if not service.endswith(_PROVIDER_SUFFIX):
                continue
            totals = found.setdefault(service.removesuffix(_PROVIDER_SUFFIX), {})
            if sample.name == f"{_REQUESTS}_total":
                totals["requests"] = totals.get("requests", 0.0) + sample.value
                if sample.labels.get("code", "").startswith("5"):
                    totals["errors"] = totals.get("errors", 0.0) + sample.value
            elif sample.name == f"{_DURATION}_sum":
                totals["duration_sum"] = totals.get("duration_sum", 0.0) + sample.value
            elif sample.name == f"{_DURATION}_count":
                totals["duration_count"] = totals.get("duration_count", 0.0) + sample.value
            elif sample.name == f"{_DURATION}_bucket" and "le" in sample.labels:
                bound = float(sample.labels["le"])
                buckets.setdefault(service.removesuffix(_PROVIDER_SUFFIX), []).append((bound, sample.value))
    return {name: Counters(**values, buckets=merge_buckets(buckets.get(name, ()))) for name, values in found.items()}


class TraefikMetricsReader:
    def __init__(self, url: str, *, timeout: float = METRICS_TIMEOUT) -> None:
        self.url = url
        self.http = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def read(self) -> dict[str, Counters]:
        """Every file-provider service's counters now (a service with no request yet has none)."""
        try:
            response = self.http.get(self.url)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"Traefik metrics at {self.url}: {exc}", system="traefik", operation="metrics"
            ) from exc
        if response.status_code == 404:
            raise PermanentError(
                f"Traefik metrics at {self.url}: 404; enable metrics.prometheus with addServicesLabels in Traefik's "
                "static configuration",
                system="traefik",
                operation="metrics",
            )
        if response.status_code != 200:
            raise TransientError(
                f"Traefik metrics at {self.url}: HTTP {response.status_code}", system="traefik", operation="metrics"
            )
        try:
            return parse_counters(response.text)
        except ValueError as exc:
            raise PermanentError(
                f"Traefik metrics at {self.url}: not the Prometheus text format ({str(exc)[:120]})",
                system="traefik",
                operation="metrics",
            ) from exc


# Instant queries of the counters' latest values, one per field of ``Counters``, by Traefik service.
_FILE = 'service=~".+@file"'
PROMETHEUS_QUERIES = {
    "requests": f"sum by (service) (traefik_service_requests_total{{{_FILE}}})",
    "errors": f'sum by (service) (traefik_service_requests_total{{{_FILE},code=~"5.."}})',
    "duration_sum": f"sum by (service) (traefik_service_request_duration_seconds_sum{{{_FILE}}})",
    "duration_count": f"sum by (service) (traefik_service_request_duration_seconds_count{{{_FILE}}})",
}
PROMETHEUS_BUCKETS = f"sum by (service, le) (traefik_service_request_duration_seconds_bucket{{{_FILE}}})"


class PrometheusCountersReader:
    """The counters as a Prometheus that scrapes Traefik last saw them (``RECONCILER_CANARY_METRICS=prometheus``)."""

    def __init__(self, url: str, *, timeout: float = METRICS_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def _query(self, promql: str) -> dict[str, float]:
        return {service: value for (service, _), value in self._query_labelled(promql).items()}

    def _query_labelled(self, promql: str) -> dict[tuple[str, str], float]:
        """The answer by (service, le): ``le`` is empty for the queries that do not keep it."""
        where = f"Prometheus at {self.url}"
        try:
            response = self.http.get(f"{self.url}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise TransientError(f"{where}: {exc}", system="prometheus", operation="query") from exc
        if response.status_code >= 500:
            raise TransientError(f"{where}: HTTP {response.status_code}", system="prometheus", operation="query")
        try:
            body = response.json()
            if body.get("status") != "success":
                raise ValueError(str(body.get("error", "query refused"))[:120])
            return {
                (
                    str(item["metric"].get("service", "")).removesuffix(_PROVIDER_SUFFIX),
                    str(item["metric"].get("le", "")),
                ): float(item["value"][1])
                for item in body["data"]["result"]
            }
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise PermanentError(
                f"{where}: not a query answer ({str(exc)[:120]})", system="prometheus", operation="query"
            ) from exc

    def read(self) -> dict[str, Counters]:
        fields = {field: self._query(promql) for field, promql in PROMETHEUS_QUERIES.items()}
        buckets: dict[str, list[tuple[float, float]]] = {}
        for (name, bound), value in self._query_labelled(PROMETHEUS_BUCKETS).items():
            if bound:
                try:
                    buckets.setdefault(name, []).append((float(bound), value))
                except ValueError as exc:
                    raise PermanentError(
                        f"Prometheus at {self.url}: bucket bound le={bound[:40]!r} is not a number",
                        system="prometheus",
                        operation="query",
                    ) from exc
        services = set(fields["requests"])
        return {
            name: Counters(
                **{field: values.get(name, 0.0) for field, values in fields.items()},
                buckets=merge_buckets(buckets.get(name, ())),
            )
            for name in services
        }
