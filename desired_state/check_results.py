"""Check results write-back and reads: the ``tenant_checks`` rows (docs/schema.md "tenant_checks").

Written by the check runner (``reconciler.runtime.checks``) after every run, after a rollout or on the schedule;
read by ``reconciler checks`` and ``reconciler status``, by the runner when it starts (which checks were failing,
so a restart does not alert twice) and by the UI. Retention keeps the latest rows of each check and drops rows
older than a bound, but never a check's latest row, so the current verdict of every check stays readable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, RowMapping, Select, delete, func, insert, select

from desired_state.check_tables import TenantCheckRow
from reconciler.core.checks import CheckResult, Outcome


@dataclass(frozen=True)
class StoredCheck:
    """A row of ``tenant_checks``: a ``CheckResult`` with its id and time."""

    id: int
    result: CheckResult
    checked_at: datetime


def record_results(engine: Engine, results: Iterable[CheckResult], at: datetime) -> int:
    """Insert one row per result; returns how many."""
    rows = [
        {
            "tenant": r.tenant,
            "service": r.service,
            "check_name": r.check,
            "image": r.image,
            "outcome": r.outcome,
            "latency_seconds": round(r.latency, 6),
            "detail": r.detail,
            "trigger": r.trigger,
            "checked_at": at,
        }
        for r in results
    ]
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(TenantCheckRow), rows)
    return len(rows)


_COLUMNS = tuple(TenantCheckRow.__table__.columns)


def _stored(row: RowMapping) -> StoredCheck:
    outcome: Outcome = "passed" if row["outcome"] == "passed" else "failed"
    result = CheckResult(
        tenant=row["tenant"],
        service=row["service"],
        check=row["check_name"],
        image=row["image"],
        outcome=outcome,
        latency=row["latency_seconds"],
        detail=row["detail"],
        trigger=row["trigger"],
    )
    return StoredCheck(row["id"], result, row["checked_at"])


def _latest_ids() -> Select[int]:
    return select(func.max(TenantCheckRow.id)).group_by(
        TenantCheckRow.tenant, TenantCheckRow.service, TenantCheckRow.check_name
    )


def latest_results(engine: Engine, tenant: str | None = None) -> list[StoredCheck]:
    """The latest row of every check (of one tenant, or all), by tenant, service and check."""
    query = select(*_COLUMNS).where(TenantCheckRow.id.in_(_latest_ids()))
    if tenant is not None:
        query = query.where(TenantCheckRow.tenant == tenant)
    query = query.order_by(TenantCheckRow.tenant, TenantCheckRow.service, TenantCheckRow.check_name)
    with engine.connect() as connection:
        return [_stored(row) for row in connection.execute(query).mappings()]


def recent_results(engine: Engine, tenant: str | None = None, limit: int = 50) -> list[StoredCheck]:
    """The newest ``limit`` rows (of one tenant, or all), newest first."""
    query = select(*_COLUMNS).order_by(TenantCheckRow.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(TenantCheckRow.tenant == tenant)
    with engine.connect() as connection:
        return [_stored(row) for row in connection.execute(query).mappings()]


def prune_results(engine: Engine, keep: int, before: datetime) -> int:
    """Delete rows past the ``keep`` newest of their check, and rows older than ``before``, except each check's
    latest row. Returns how many went."""
    ranked = select(
        TenantCheckRow.id,
        func.row_number()
        .over(
            partition_by=(TenantCheckRow.tenant, TenantCheckRow.service, TenantCheckRow.check_name),
            order_by=TenantCheckRow.id.desc(),
        )
        .label("rank"),
    ).subquery()
    surplus = select(ranked.c.id).where(ranked.c.rank > keep)
    with engine.begin() as connection:
        latest = set(connection.execute(_latest_ids()).scalars())
        gone = connection.execute(delete(TenantCheckRow).where(TenantCheckRow.id.in_(surplus))).rowcount
        old = delete(TenantCheckRow).where(TenantCheckRow.checked_at < before)
        if latest:
            old = old.where(TenantCheckRow.id.not_in(latest))
        gone += connection.execute(old).rowcount
    return int(gone or 0)
