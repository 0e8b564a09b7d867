"""What the canary analysis reads: Traefik's metrics text (``drivers.traefik_metrics.parse_counters``), the
thresholds of ``canary_policies`` rows over the settings (``desired_state.canaries.resolve_policy``), the steps
setting, and the ``Canary`` condition the status shows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import text

from desired_state.canaries import (
    CanaryPolicyError,
    CanaryPolicyResolved,
    CanaryPolicyRow,
    CanaryRecord,
    read_canaries,
    resolve_policy,
    write_canary,
)
from desired_state.database import make_engine, upgrade
from desired_state.specs import TenantSpec, build_tenant, parse_catalog
from reconciler.core.canary import Counters, Thresholds, WindowFigures
from reconciler.core.canary_steps import Canary
from reconciler.drivers.traefik_metrics import parse_counters
from reconciler.runtime.passes.canary_status import canary_conditions
from reconciler.runtime.settings import canary_step_list

# The shape Traefik v3 writes (trimmed): one series per service, code, method and protocol.
SCRAPE = """\
# The histogram's buckets are left out but one (a full histogram: tests/unit/test_canary_latency.py).
# HELP traefik_service_requests_total How many HTTP requests processed on a service.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="erp-acme.a.a@file"} 90
traefik_service_requests_total{code="200",method="GET",protocol="http",service="erp-acme.a.b@file"} 10
traefik_service_requests_total{code="500",method="GET",protocol="http",service="erp-acme.a.b@file"} 12
traefik_service_requests_total{code="502",method="POST",protocol="http",service="erp-acme.a.b@file"} 3
traefik_service_requests_total{code="200",method="GET",protocol="http",service="api@internal"} 7
# HELP traefik_service_request_duration_seconds How long it took to process the request on a service.
# TYPE traefik_service_request_duration_seconds histogram
traefik_service_request_duration_seconds_bucket{code="200",method="GET",service="erp-acme.a.b@file",le="+Inf"} 10
traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="erp-acme.a.b@file"} 0.5
traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="http",service="erp-acme.a.b@file"} 10
traefik_service_request_duration_seconds_sum{code="500",method="GET",protocol="http",service="erp-acme.a.b@file"} 1.5
traefik_service_request_duration_seconds_count{code="500",method="GET",protocol="http",service="erp-acme.a.b@file"} 15
"""


def test_counters_are_summed_per_file_service_with_5xx_as_errors() -> None:
    counters = parse_counters(SCRAPE)
    assert set(counters) == {"erp-acme.a.a", "erp-acme.a.b"}  # api@internal is not a tenant's
    only_inf = ((math.inf, 10.0),)
    assert counters["erp-acme.a.b"] == Counters(
        requests=25, errors=15, duration_sum=2.0, duration_count=25, buckets=only_inf
    )
    assert counters["erp-acme.a.a"] == Counters(requests=90)


def test_a_scrape_without_service_labels_has_no_counters() -> None:
    assert parse_counters('traefik_entrypoint_requests_total{code="200",entrypoint="web"} 5\n') == {}


DEFAULTS = CanaryPolicyResolved(Thresholds(0.05, 1.0, 20), (), enabled=True)


def row(tenant: str | None = None, *, enabled: bool = True, **values: object) -> CanaryPolicyRow:
    fields: dict[str, object] = {"max_error_rate": None, "max_latency_ms": None, "min_requests": None, "steps": None}
    fields.update(values)
    return CanaryPolicyRow(service="a", tenant=tenant, enabled=enabled, **fields)


def test_the_tenant_row_wins_over_the_catalog_row_over_the_settings() -> None:
    rows = [row(None, max_error_rate=0.02, steps=[10, 100]), row("acme", max_latency_ms=250)]
    acme = resolve_policy(rows, "acme", "a", DEFAULTS)
    assert acme.thresholds == Thresholds(0.02, 0.25, 20)
    assert acme.steps == (10, 100)
    other = resolve_policy(rows, "globex", "a", DEFAULTS)
    assert other.thresholds == Thresholds(0.02, 1.0, 20)
    assert resolve_policy(rows, "acme", "b", DEFAULTS) == DEFAULTS
    assert resolve_policy([row("acme", enabled=False)], "acme", "a", DEFAULTS).enabled is False


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"max_error_rate": 5}, "max_error_rate"),
        ({"max_error_rate": "0.1"}, "max_error_rate"),
        ({"min_requests": 0}, "min_requests"),
        ({"max_latency_ms": -1}, "max_latency_ms"),
        ({"steps": [50, 10]}, "steps"),
        ({"steps": "10,100"}, "steps"),
        ({"steps": ["x" * 500]}, "steps"),
    ],
)
def test_a_hostile_policy_row_is_refused_naming_the_row_the_field_and_a_short_value(
    values: dict[str, object], field: str
) -> None:
    with pytest.raises(CanaryPolicyError) as caught:
        resolve_policy([row("acme", **values)], "acme", "a", DEFAULTS)
    message = str(caught.value)
    assert "canary_policies service='a' tenant='acme'" in message and f"{field} = " in message
    assert len(message) < 400


def test_steps_setting() -> None:
    assert canary_step_list("10, 25,50,100") == (10, 25, 50, 100)
    assert canary_step_list("") == ()
    with pytest.raises(ValueError, match="canary_steps = '10,50'"):
        canary_step_list("10,50")


CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "port": 8080, "public": True}})


def spec(second: str = "erp/demo-svc:2") -> TenantSpec:
    versions = [{"image": "erp/demo-svc:1", "weight": 90}, {"image": second, "weight": 10}]
    return build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"a": {"versions": versions}}}, CATALOG)


def test_the_canary_condition_says_why_with_the_figures_and_ignores_stale_rows() -> None:
    figures = WindowFigures(120, 60, 30.0)
    canary = Canary("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2", "backed-out", 0, 0, figures.describe())
    record = CanaryRecord(canary, figures, None)
    [condition] = canary_conditions(spec(), [record])
    assert (condition.type, condition.status, condition.reason) == ("Canary", "False", "BackedOut")
    assert "error rate 50.0% (60 of 120 requests) over 30 s" in condition.message
    assert "pinned to erp/demo-svc:1" in condition.message
    assert canary_conditions(spec("erp/demo-svc:3"), [record]) == []


def test_state_rows_round_trip_and_a_hostile_row_imposes_no_weight(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'canaries.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    canary = Canary("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2", "promoting", 25, 1, "fine")
    write_canary(engine, canary, WindowFigures(100, 1, 30.0, 0.004))
    [record] = read_canaries(engine)
    assert record.canary == canary
    assert record.figures == WindowFigures(100, 1, 30.0, 0.004)
    with engine.begin() as connection:
        connection.execute(text("UPDATE tenant_canaries SET weight = 5000, state = 'exploded'"))
    [hostile] = read_canaries(engine)
    assert (hostile.canary.state, hostile.canary.weight) == ("analysing", None)
    engine.dispose()
