"""Canary analysis in the database: the thresholds of ``canary_policies`` and the state rows of
``tenant_canaries``.

Read by every pass (``runtime.passes.reconcile``: the weights an analysis imposes are an input of the plan, like
pins) and by the analysis job (``runtime.operations.canary``), which alone writes the state rows. A policy row with
a value out of bounds is refused with a ``CanaryPolicyError`` naming the row's service and tenant, the column and
a shortened value; the analysis of that tenant service is then skipped (its status says why), the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from desired_state.canary_tables import CanaryPolicy, TenantCanaryRow
from desired_state.specs import shorten
from reconciler.core.canary import MAX_QUANTILE, MIN_QUANTILE, Thresholds, WindowFigures
from reconciler.core.canary_steps import Canary, CanaryState, check_steps

# Bounds of the policy columns (docs/schema.md "Canary analysis").
MAX_LATENCY_MS = 600_000
MAX_MIN_REQUESTS = 1_000_000
_STATES: dict[str, CanaryState] = {s: s for s in ("analysing", "promoting", "promoted", "backed-out")}


class CanaryPolicyError(ValueError):
    def __init__(self, service: str, tenant: str | None, field: str, value: object, message: str) -> None:
        where = f"canary_policies service={service!r}" + (f" tenant={tenant!r}" if tenant else " (catalog)")
        super().__init__(f"{shorten(where)}: {field} = {shorten(repr(value))}: {message}")


@dataclass(frozen=True)
class CanaryPolicyRow:
    service: str
    tenant: str | None
    max_error_rate: Any
    max_latency_ms: Any
    min_requests: Any
    steps: Any
    enabled: bool
    max_quantile_latency_ms: Any = None
    latency_quantile: Any = None


@dataclass(frozen=True)
class CanaryPolicyResolved:
    """What applies to one tenant service: thresholds, promotion steps, and whether it is analysed at all."""

    thresholds: Thresholds
    steps: tuple[int, ...]
    enabled: bool


@dataclass(frozen=True)
class CanaryRecord:
    """A state row: the canary and the figures of its last judged window (None before the first one)."""

    canary: Canary
    figures: WindowFigures | None
    analysed_at: datetime | None


def read_policies(engine: Engine) -> list[CanaryPolicyRow]:
    query = select(CanaryPolicy).order_by(CanaryPolicy.service, CanaryPolicy.tenant, CanaryPolicy.id)
    with engine.connect() as connection:
        return [
            CanaryPolicyRow(
                r.service,
                r.tenant,
                r.max_error_rate,
                r.max_latency_ms,
                r.min_requests,
                r.steps,
                bool(r.enabled),
                r.max_quantile_latency_ms,
                r.latency_quantile,
            )
            for r in connection.execute(query)
        ]


def _number(row: CanaryPolicyRow, field: str, low: float, high: float) -> float | None:
    value = getattr(row, field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise CanaryPolicyError(row.service, row.tenant, field, value, f"must be a number from {low:g} to {high:g}")
    return float(value)


def _steps(row: CanaryPolicyRow) -> tuple[int, ...] | None:
    if row.steps is None:
        return None
    if not isinstance(row.steps, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in row.steps):
        raise CanaryPolicyError(row.service, row.tenant, "steps", row.steps, "must be a JSON list of whole percentages")
    try:
        return check_steps(row.steps)
    except ValueError as exc:
        raise CanaryPolicyError(row.service, row.tenant, "steps", row.steps, str(exc).split(": ", 1)[-1]) from None


def resolve_policy(
    rows: Sequence[CanaryPolicyRow], tenant: str, service: str, defaults: CanaryPolicyResolved
) -> CanaryPolicyResolved:
    """The tenant's row over the catalog's row over ``defaults`` (settings), column by column."""
    rate, latency, minimum, steps, enabled = (
        defaults.thresholds.max_error_rate,
        defaults.thresholds.max_latency,
        defaults.thresholds.min_requests,
        defaults.steps,
        defaults.enabled,
    )
    tail_limit, tail_quantile = defaults.thresholds.max_quantile_latency, defaults.thresholds.latency_quantile
    chain = [r for r in rows if r.service == service and r.tenant is None]
    chain += [r for r in rows if r.service == service and r.tenant == tenant]
    for row in chain:  # later rows (the tenant's) win
        given_rate = _number(row, "max_error_rate", 0, 1)
        given_latency = _number(row, "max_latency_ms", 1, MAX_LATENCY_MS)
        given_minimum = _number(row, "min_requests", 1, MAX_MIN_REQUESTS)
        given_steps = _steps(row)
        given_tail_limit = _number(row, "max_quantile_latency_ms", 1, MAX_LATENCY_MS)
        given_tail_quantile = _number(row, "latency_quantile", MIN_QUANTILE, MAX_QUANTILE)
        rate = given_rate if given_rate is not None else rate
        latency = given_latency / 1000 if given_latency is not None else latency
        minimum = int(given_minimum) if given_minimum is not None else minimum
        steps = given_steps if given_steps is not None else steps
        enabled = row.enabled
        tail_limit = given_tail_limit / 1000 if given_tail_limit is not None else tail_limit
        tail_quantile = given_tail_quantile if given_tail_quantile is not None else tail_quantile
    thresholds = Thresholds(rate, latency, minimum, tail_limit, tail_quantile)
    return CanaryPolicyResolved(thresholds, steps, enabled)


def _record(row: Any) -> CanaryRecord:
    # Written by the reconciler only; a row edited by hand into nonsense imposes no weight rather than a wrong one.
    state: CanaryState = _STATES.get(row.state, "analysing")
    weight = row.weight if isinstance(row.weight, int) and 0 <= row.weight <= 100 else None
    canary = Canary(
        tenant=row.tenant,
        service=row.service,
        stable_image=row.stable_image,
        canary_image=row.canary_image,
        state=state if weight is not None else "analysing",
        weight=weight,
        step=row.step or 0,
        reason=row.reason or "",
    )
    figures = None
    if row.requests is not None and row.window_seconds is not None:
        latency = row.mean_latency_ms / 1000 if row.mean_latency_ms is not None else None
        q, tail = _tail(row)
        figures = WindowFigures(
            row.requests, row.errors or 0, row.window_seconds, latency, quantile=q, quantile_latency=tail
        )
    return CanaryRecord(canary, figures, row.analysed_at)


def _tail(row: Any) -> tuple[float | None, float | None]:
    """The quantile figure of a state row (quantile, seconds), when both columns hold a sane value (else none)."""
    q, ms = row.latency_quantile, row.quantile_latency_ms
    if isinstance(q, float) and isinstance(ms, float) and MIN_QUANTILE <= q <= MAX_QUANTILE and 0 <= ms < 1e9:
        return q, ms / 1000
    return None, None


def read_canaries(engine: Engine, tenant: str | None = None) -> list[CanaryRecord]:
    query = select(TenantCanaryRow).order_by(TenantCanaryRow.tenant, TenantCanaryRow.service)
    if tenant is not None:
        query = query.where(TenantCanaryRow.tenant == tenant)
    with engine.connect() as connection:
        return [_record(row) for row in connection.execute(query)]


def write_canary(engine: Engine, canary: Canary, figures: WindowFigures | None) -> None:
    """Create or replace the state row of the canary's tenant service (the figures of a judged window, if any)."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "tenant": canary.tenant,
        "service": canary.service,
        "stable_image": canary.stable_image,
        "canary_image": canary.canary_image,
        "state": canary.state,
        "weight": canary.weight,
        "step": canary.step,
        "reason": canary.reason,
        "finished_at": now if canary.final else None,
        "updated_at": now,
    }
    if figures is not None:
        values.update(
            requests=figures.requests,
            errors=figures.errors,
            error_rate=figures.error_rate,
            mean_latency_ms=figures.mean_latency * 1000 if figures.mean_latency is not None else None,
            latency_quantile=figures.quantile if figures.quantile_latency is not None else None,
            quantile_latency_ms=figures.quantile_latency * 1000 if figures.quantile_latency is not None else None,
            window_seconds=figures.seconds,
            analysed_at=now,
        )
    with engine.begin() as connection:
        dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(TenantCanaryRow).values({**values, "created_at": now})
        statement = statement.on_conflict_do_update(
            index_elements=[TenantCanaryRow.tenant, TenantCanaryRow.service],
            set_={key: value for key, value in values.items() if key not in ("tenant", "service")},
        )
        connection.execute(statement)
