"""The history of a tenant's conditions: one ``condition_transitions`` row each time a condition appears or changes
status (tenant, type, status, reason, message shortened, time), the last ``KEEP_PER_TENANT`` per tenant kept.

Written by ``desired_state.status.write_statuses`` in the pass's own status transaction, from the stored rows it
already reads (no read per tenant): one multi-row insert for the pass's transitions, then, only when there were
some, one delete of the rows beyond the bound for the tenants that got new ones. Read by the HTTP API
(``GET /api/v1/tenants/{name}/conditions/history``) and the console's tenant page. Created by migration 0015;
registered on ``Base.metadata`` by ``desired_state.tables``. Keyed by tenant name, like ``tenant_statuses``: a
deleted tenant's history stays readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Index, String, Text, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.model import Condition, TenantStatus
from desired_state.tables import Base, BigIntId, UtcDateTime

KEEP_PER_TENANT = 200  # transitions kept per tenant (a flapping condition must not grow the table without bound)
MAX_MESSAGE = 500
MAX_REASON = 255


class ConditionTransition(Base):
    __tablename__ = "condition_transitions"
    __table_args__ = (Index("condition_transitions_tenant_id_index", "tenant", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # True | False | Unknown
    reason: Mapped[str] = mapped_column(String(MAX_REASON))
    message: Mapped[str] = mapped_column(Text)  # shortened to MAX_MESSAGE characters
    at: Mapped[datetime] = mapped_column(UtcDateTime())  # the condition's last_transition


@dataclass(frozen=True)
class TransitionRecord:
    id: int
    tenant: str
    type: str
    status: str
    reason: str
    message: str
    at: datetime


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def transitions(before: TenantStatus | None, after: TenantStatus, now: datetime) -> list[dict[str, Any]]:
    """Rows for the conditions of ``after`` that are new or changed status since ``before`` (the stored row)."""
    previous: dict[str, Condition] = {c.type: c for c in before.conditions} if before is not None else {}
    rows = []
    for condition in after.conditions:
        old = previous.get(condition.type)
        if old is not None and old.status == condition.status:
            continue
        rows.append(
            {
                "tenant": after.tenant,
                "type": condition.type[:64],
                "status": condition.status,
                "reason": _shorten(condition.reason, MAX_REASON),
                "message": _shorten(condition.message, MAX_MESSAGE),
                "at": condition.last_transition or now,
            }
        )
    return rows


def record_transitions(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the pass's transitions (one statement) and keep the newest ``KEEP_PER_TENANT`` of those tenants."""
    if not rows:
        return
    connection.execute(insert(ConditionTransition), list(rows))
    tenants = sorted({row["tenant"] for row in rows})
    ranked = (
        select(
            ConditionTransition.id,
            func.row_number()
            .over(partition_by=ConditionTransition.tenant, order_by=ConditionTransition.id.desc())
            .label("rank"),
        )
        .where(ConditionTransition.tenant.in_(tenants))
        .subquery()
    )
    beyond = select(ranked.c.id).where(ranked.c.rank > KEEP_PER_TENANT)
    connection.execute(delete(ConditionTransition).where(ConditionTransition.id.in_(beyond)))


def read_transitions(
    engine: Engine, tenant: str, limit: int = 100, condition_type: str | None = None
) -> list[TransitionRecord]:
    """The tenant's transitions, newest first; ``condition_type``: of that condition only."""
    query = (
        select(ConditionTransition)
        .where(ConditionTransition.tenant == tenant)
        .order_by(ConditionTransition.id.desc())
        .limit(limit)
    )
    if condition_type:
        query = query.where(ConditionTransition.type == condition_type)
    with engine.connect() as connection:
        return [
            TransitionRecord(
                id=r.id,
                tenant=r.tenant,
                type=r.type,
                status=r.status,
                reason=r.reason,
                message=r.message,
                at=r.at.astimezone(UTC),
            )
            for r in connection.execute(query)
        ]
