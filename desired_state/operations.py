"""Operation history: the ``operations`` rows behind tenant operations.

Beside the reconcile pipeline, like ``desired_state.backups``. The runtime (``reconciler.runtime.operations.upgrades``,
``runtime.operations.backups``, ``runtime.operations.requests``) writes one row per deploy, upgrade, migration,
backup, restore, rollback and data move, with output and error. A *running* restore or data move (``move``) is also
a hold: the reconcile pass leaves that tenant alone until it ends (or goes stale). A succeeded migration row is the
"exactly once" record, unique per (tenant, service, target image). Requests from the UI are in
``desired_state.operation_requests``, pins in ``desired_state.pins``, the rollback's write in
``desired_state.service_image``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from desired_state.tables import OperationRow

OPERATION_KINDS = ("deploy", "upgrade", "migrate", "backup", "restore", "rollback", "move")
# Output kept with an operation row: a migration that prints megabytes must not bloat the table.
MAX_OUTPUT = 64 * 1024
# Operations whose running row makes the reconcile pass leave the tenant alone.
HOLDING_KINDS = ("restore", "move")


@dataclass(frozen=True)
class OperationRecord:
    id: int
    tenant: str
    kind: str
    service: str | None
    from_image: str | None
    to_image: str | None
    status: str
    trigger: str | None
    backup_id: int | None
    request_id: int | None
    started_at: datetime | None
    finished_at: datetime | None
    output: str | None
    error: str | None


def clip(text: str | None) -> str | None:
    """Keep the end of long output: that is where a failing command says why."""
    if text is None or len(text) <= MAX_OUTPUT:
        return text
    return "[... output truncated ...]\n" + text[-MAX_OUTPUT:]


def _operation(row: Any) -> OperationRecord:
    return OperationRecord(
        id=row.id,
        tenant=row.tenant,
        kind=row.kind,
        service=row.service,
        from_image=row.from_image,
        to_image=row.to_image,
        status=row.status,
        trigger=row.trigger,
        backup_id=row.backup_id,
        request_id=row.request_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        output=row.output,
        error=row.error,
    )


# --- operations ----------------------------------------------------------------------------------------------


def start_operation(
    engine: Engine,
    tenant: str,
    kind: str,
    *,
    service: str | None = None,
    from_image: str | None = None,
    to_image: str | None = None,
    trigger: str | None = None,
    backup_id: int | None = None,
    request_id: int | None = None,
) -> int:
    """Insert a running operation; returns its id."""
    now = datetime.now(UTC)
    values = {
        "tenant": tenant,
        "kind": kind,
        "service": service,
        "from_image": from_image,
        "to_image": to_image,
        "status": "running",
        "trigger": trigger,
        "backup_id": backup_id,
        "request_id": request_id,
        "started_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as connection:
        return int(connection.execute(insert(OperationRow).values(values)).inserted_primary_key[0])  # type: ignore[index]


def finish_operation(
    engine: Engine,
    operation_id: int,
    status: str,
    *,
    output: str | None = None,
    error: str | None = None,
    backup_id: int | None = None,
) -> None:
    """Close an operation (succeeded or failed); ``output`` and ``error`` are clipped to ``MAX_OUTPUT``."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "output": clip(output),
        "error": clip(error),
    }
    if backup_id is not None:
        values["backup_id"] = backup_id
    with engine.begin() as connection:
        connection.execute(update(OperationRow).where(OperationRow.id == operation_id).values(values))


def record_operation(engine: Engine, tenant: str, kind: str, status: str, **fields: Any) -> int:
    """An operation that is already over when it is recorded (a deploy seen after the pass applied it)."""
    output, error = fields.pop("output", None), fields.pop("error", None)
    operation_id = start_operation(engine, tenant, kind, **fields)
    finish_operation(engine, operation_id, status, output=output, error=error)
    return operation_id


def list_operations(engine: Engine, tenant: str | None = None, kind: str | None = None) -> list[OperationRecord]:
    """Operations, oldest first."""
    query = select(OperationRow).order_by(OperationRow.id)
    if tenant is not None:
        query = query.where(OperationRow.tenant == tenant)
    if kind is not None:
        query = query.where(OperationRow.kind == kind)
    with engine.connect() as connection:
        return [_operation(row) for row in connection.execute(query)]


def migration_succeeded(engine: Engine, tenant: str, service: str, image: str) -> OperationRecord | None:
    """The succeeded migration of this tenant service to this image, if any: it must not run again."""
    query = select(OperationRow).where(
        OperationRow.kind == "migrate",
        OperationRow.status == "succeeded",
        OperationRow.tenant == tenant,
        OperationRow.service == service,
        OperationRow.to_image == image,
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return _operation(row) if row is not None else None


def revert_migrations(engine: Engine, tenant: str, since: datetime) -> int:
    """Restoring a backup taken at ``since`` undoes the migrations that finished after it: they may run again."""
    with engine.begin() as connection:
        return connection.execute(
            update(OperationRow)
            .where(
                OperationRow.kind == "migrate",
                OperationRow.status == "succeeded",
                OperationRow.tenant == tenant,
                OperationRow.finished_at > since,
            )
            .values(status="reverted", updated_at=datetime.now(UTC))
        ).rowcount


def last_upgrade(
    engine: Engine, tenant: str, service: str | None = None, *, status: str | None = None
) -> OperationRecord | None:
    """The tenant's most recent upgrade operation (of one service, with one status, if given)."""
    query = select(OperationRow).where(OperationRow.kind == "upgrade", OperationRow.tenant == tenant)
    if service is not None:
        query = query.where(OperationRow.service == service)
    if status is not None:
        query = query.where(OperationRow.status == status)
    with engine.connect() as connection:
        row = connection.execute(query.order_by(OperationRow.id.desc())).first()
    return _operation(row) if row is not None else None


def latest_upgrades(engine: Engine, tenant: str, *, status: str = "succeeded") -> list[OperationRecord]:
    """The most recent upgrade of each of the tenant's services (with that status), by service."""
    latest: dict[str, OperationRecord] = {}
    for record in list_operations(engine, tenant, kind="upgrade"):
        if record.status == status and record.service is not None:
            latest[record.service] = record
    return [latest[service] for service in sorted(latest)]


def holds(engine: Engine, stale_after: timedelta) -> dict[str, str]:
    """Tenants the pass must leave alone (tenant -> why): a restore or a data move is running on them.

    A running row older than ``stale_after`` is from a process that died mid-operation: it is marked failed so
    the tenant is reconciled again instead of staying down forever.
    """
    now = datetime.now(UTC)
    query = select(OperationRow.id, OperationRow.tenant, OperationRow.kind, OperationRow.started_at).where(
        OperationRow.status == "running", OperationRow.kind.in_(HOLDING_KINDS)
    )
    # Read-only in the common case (every pass asks): a write transaction only to retire an abandoned hold.
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    found: dict[str, str] = {}
    abandoned: list[int] = []
    for operation_id, tenant, kind, started_at in rows:
        if started_at is not None and now - started_at > stale_after:
            abandoned.append(operation_id)
        else:
            found[tenant] = f"{kind} in progress (operation {operation_id})"
    if abandoned:
        with engine.begin() as connection:
            connection.execute(
                update(OperationRow)
                .where(OperationRow.id.in_(abandoned), OperationRow.status == "running")
                .values(
                    status="failed",
                    finished_at=now,
                    updated_at=now,
                    error=f"abandoned: still running after {stale_after}; the process doing it probably died",
                )
            )
    return found


def running_operation(
    engine: Engine, tenant: str, kind: str, *, service: str | None = None, to_image: str | None = None
) -> OperationRecord | None:
    """The newest running operation of this kind on the tenant (and service / target image, when given)."""
    query = select(OperationRow).where(
        OperationRow.tenant == tenant, OperationRow.kind == kind, OperationRow.status == "running"
    )
    if service is not None:
        query = query.where(OperationRow.service == service)
    if to_image is not None:
        query = query.where(OperationRow.to_image == to_image)
    with engine.connect() as connection:
        row = connection.execute(query.order_by(OperationRow.id.desc())).first()
    return _operation(row) if row is not None else None
