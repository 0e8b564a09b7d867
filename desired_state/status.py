"""Status write-back: the reconciler's view of each tenant, for the web UI and ``reconciler status``.

Last step of a pass (``status rows`` in ARCHITECTURE.md): the runtime calls ``write_statuses`` once per
pass with every tenant it reconciled; the UI reads ``tenant_statuses`` directly. Rows are keyed by tenant name so a
deleted tenant's teardown stays visible.

Each condition that appears or changes status is also recorded in ``condition_transitions`` in the same transaction
(``desired_state.condition_history``: one insert per pass, from the rows already read).

``Condition.last_transition`` follows the Kubernetes convention: it is the time the condition last
changed *status*, not the time it was last written. ``write_status`` enforces that against the stored
row, so callers may pass fresh conditions every pass without resetting "Ready since ...".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from desired_state.condition_history import record_transitions, transitions
from desired_state.model import Condition, ConditionStatus, Phase, TenantStatus
from desired_state.tables import TenantStatusRow

_PHASES: frozenset[str] = frozenset(get_args(Phase))
_CONDITION_STATUSES: frozenset[str] = frozenset(get_args(ConditionStatus))


def write_status(engine: Engine, status: TenantStatus, *, now: datetime | None = None) -> TenantStatus:
    """Insert or replace the tenant's status row; returns the status as stored.

    A condition whose status is unchanged since the stored row keeps the stored ``last_transition``; a
    new or changed one gets the caller's ``last_transition``, or ``now`` if the caller left it empty.
    """
    return write_statuses(engine, [status], now=now)[0]


def write_statuses(
    engine: Engine, statuses: Sequence[TenantStatus], *, now: datetime | None = None
) -> list[TenantStatus]:
    """``write_status`` for many tenants in one transaction (one commit per pass, not one per tenant).

    The stored rows are read in one query per batch (locked on PostgreSQL), and only what differs is written:
    a changed row in full (one upsert statement for all of them), an unchanged one only its
    ``last_reconciled_at`` and ``updated_at`` (one update statement for all of them). A no-op pass of many
    tenants therefore costs a few statements, not two per tenant.
    """
    now = _utc(now) if now is not None else datetime.now(UTC)
    with engine.begin() as connection:
        stored = _select_many(connection, sorted({s.tenant for s in statuses}))
        written: list[TenantStatus] = []
        changed: dict[str, dict[str, Any]] = {}
        touched: dict[str, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        for status in statuses:
            before = stored.get(status.tenant)
            after = _carried(status, before, now)
            history.extend(transitions(before, after, now))
            row = _row_values(after, now)
            if before is not None and _same_row(before, after) and status.tenant not in changed:
                touched[status.tenant] = {
                    "b_tenant": status.tenant,
                    "b_reconciled": row["last_reconciled_at"],
                    "b_updated": now,
                }
            else:
                changed[status.tenant] = row
                touched.pop(status.tenant, None)
            stored[status.tenant] = after
            written.append(after)
        if changed:
            connection.execute(_upsert(connection), list(changed.values()))
        if touched:
            connection.execute(_TOUCH, list(touched.values()))
        record_transitions(connection, history)
        return written


# Bound names differ from the columns': SQLAlchemy reserves the column names for the SET clause.
_TOUCH = (
    update(TenantStatusRow)
    .where(TenantStatusRow.tenant == bindparam("b_tenant"))
    .values(last_reconciled_at=bindparam("b_reconciled"), updated_at=bindparam("b_updated"))
)


def _upsert(connection: Connection) -> Any:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(TenantStatusRow)
    # ON CONFLICT rather than select-then-insert: two writers racing on a new tenant must not fail.
    return statement.on_conflict_do_update(
        index_elements=[TenantStatusRow.tenant],
        set_={column: statement.excluded[column] for column in _ROW_COLUMNS if column != "tenant"},
    )


_ROW_COLUMNS = (
    "tenant",
    "phase",
    "conditions",
    "observed_generation",
    "applied_hash",
    "last_error",
    "last_reconciled_at",
    "updated_at",
)


def _carried(status: TenantStatus, before: TenantStatus | None, now: datetime) -> TenantStatus:
    previous = {c.type: c for c in before.conditions} if before is not None else {}
    return TenantStatus(
        tenant=status.tenant,
        phase=status.phase,
        conditions=tuple(_carry_transition(c, previous.get(c.type), now) for c in status.conditions),
        observed_generation=status.observed_generation,
        applied_hash=status.applied_hash,
        last_error=status.last_error,
        last_reconciled_at=_utc(status.last_reconciled_at) if status.last_reconciled_at else None,
    )


def _same_row(before: TenantStatus, after: TenantStatus) -> bool:
    """Everything but the time of the pass is as stored (so the full row need not be written again)."""
    return replace(before, last_reconciled_at=None) == replace(after, last_reconciled_at=None)


def _row_values(status: TenantStatus, now: datetime) -> dict[str, Any]:
    return {
        "tenant": status.tenant,
        "phase": status.phase,
        "conditions": [_condition_json(c) for c in status.conditions],
        "observed_generation": status.observed_generation,
        "applied_hash": status.applied_hash,
        "last_error": status.last_error,
        "last_reconciled_at": status.last_reconciled_at,
        "updated_at": now,
    }


def read_status(engine: Engine, tenant: str) -> TenantStatus | None:
    """The stored status of one tenant (by name), or ``None`` if it was never reconciled."""
    with engine.connect() as connection:
        return _select(connection, tenant, for_update=False)


def read_statuses(engine: Engine) -> list[TenantStatus]:
    """Every stored status, sorted by tenant name (including tenants no longer in ``tenants``)."""
    with engine.connect() as connection:
        rows = connection.execute(select(TenantStatusRow).order_by(TenantStatusRow.tenant)).mappings()
        return [_from_row(row) for row in rows]


def _select(connection: Connection, tenant: str, *, for_update: bool) -> TenantStatus | None:
    query = select(TenantStatusRow).where(TenantStatusRow.tenant == tenant)
    if for_update:
        # Serialises two writers of the same tenant on PostgreSQL; SQLite's write lock already does.
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    return _from_row(row) if row is not None else None


_SELECT_BATCH = 500  # tenants per SELECT ... WHERE tenant IN (...): well below SQLite's bound-parameter limit


def _select_many(connection: Connection, tenants: Sequence[str]) -> dict[str, TenantStatus]:
    """The stored rows of these tenants, locked for the transaction on PostgreSQL (as ``_select``)."""
    found: dict[str, TenantStatus] = {}
    for start in range(0, len(tenants), _SELECT_BATCH):
        batch = tenants[start : start + _SELECT_BATCH]
        query = select(TenantStatusRow).where(TenantStatusRow.tenant.in_(batch)).with_for_update()
        for row in connection.execute(query).mappings():
            status = _from_row(row)
            found[status.tenant] = status
    return found


def _carry_transition(condition: Condition, previous: Condition | None, now: datetime) -> Condition:
    if previous is not None and previous.status == condition.status:
        last_transition = previous.last_transition
    else:
        last_transition = condition.last_transition or now
    return Condition(
        type=condition.type,
        status=condition.status,
        reason=condition.reason,
        message=condition.message,
        last_transition=_utc(last_transition) if last_transition is not None else None,
    )


def _condition_json(condition: Condition) -> dict[str, str | None]:
    return {
        "type": condition.type,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
        "last_transition": condition.last_transition.isoformat() if condition.last_transition else None,
    }


def _from_row(row: Any) -> TenantStatus:
    tenant = str(row["tenant"])
    phase = row["phase"]
    if phase not in _PHASES:
        raise ValueError(f"tenant_statuses row {tenant!r}: phase {phase!r} is not one of {sorted(_PHASES)}")
    return TenantStatus(
        tenant=tenant,
        phase=phase,
        conditions=tuple(_condition_from_json(tenant, item) for item in row["conditions"] or ()),
        observed_generation=row["observed_generation"],
        applied_hash=row["applied_hash"],
        last_error=row["last_error"],
        last_reconciled_at=row["last_reconciled_at"],
    )


def _condition_from_json(tenant: str, item: dict[str, Any]) -> Condition:
    status = item.get("status")
    if status not in _CONDITION_STATUSES:
        raise ValueError(
            f"tenant_statuses row {tenant!r}: condition {item.get('type')!r} has status {status!r}, "
            f"expected one of {sorted(_CONDITION_STATUSES)}"
        )
    transition = item.get("last_transition")
    return Condition(
        type=str(item["type"]),
        status=status,
        reason=str(item.get("reason", "")),
        message=str(item.get("message", "")),
        last_transition=_utc(datetime.fromisoformat(transition)) if transition else None,
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
