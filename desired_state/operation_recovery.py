"""Closing the rows a dead process left ``running``: operations, backups and claimed operation requests.

Beside the reconcile pipeline, like ``desired_state.operations``. Called by ``runtime.operations.recovery`` when
an instance becomes the leader and when a CLI command that changes the world has taken the leader lock: the lock
guarantees no other live writer of this owner, so a row still ``running`` then belongs to a process that ended
mid-operation (killed, crashed, host gone). Each row becomes ``failed`` with an error that says what it may
have left behind; nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, update

from desired_state.tables import BackupRow, OperationRequest, OperationRow

# What an interrupted operation may have left behind, by kind (the generic text otherwise).
_LEFT_BEHIND = {
    "restore": "the data volume may hold a partly restored copy: restore the backup again before relying on it",
    "migrate": "the migration may or may not have completed; it runs again before the upgrade is retried",
    "backup": "no archive was kept",
    "upgrade": "the new version may be partly rolled out; the next pass converges it",
}


@dataclass(frozen=True)
class Abandoned:
    """One row closed as failed: which table, its id, the tenant and the kind of operation."""

    table: str
    id: int
    tenant: str
    kind: str
    error: str


def abandoned_error(kind: str, found_by: str) -> str:
    left = _LEFT_BEHIND.get(kind, "it may be partly done")
    return f"abandoned: the process running this {kind} ended before it finished (found by {found_by}); {left}"


def close_abandoned(engine: Engine, found_by: str) -> list[Abandoned]:
    """Mark every ``running`` operation, backup and claimed request failed; the rows closed, oldest first."""
    with engine.begin() as connection:
        closed = _operations(connection, found_by)
        closed += _backups(connection, found_by)
        closed += _requests(connection, found_by)
    return closed


def _operations(connection: Connection, found_by: str) -> list[Abandoned]:
    rows = connection.execute(
        select(OperationRow.id, OperationRow.tenant, OperationRow.kind)
        .where(OperationRow.status == "running")
        .order_by(OperationRow.id)
    ).all()
    now = datetime.now(UTC)
    closed = []
    for row_id, tenant, kind in rows:
        error = abandoned_error(kind, found_by)
        connection.execute(
            update(OperationRow)
            .where(OperationRow.id == row_id, OperationRow.status == "running")
            .values(status="failed", error=error, finished_at=now, updated_at=now)
        )
        closed.append(Abandoned("operations", row_id, tenant, kind, error))
    return closed


def _backups(connection: Connection, found_by: str) -> list[Abandoned]:
    rows = connection.execute(
        select(BackupRow.id, BackupRow.tenant).where(BackupRow.status == "running").order_by(BackupRow.id)
    ).all()
    now = datetime.now(UTC)
    error = abandoned_error("backup", found_by)
    for row_id, _tenant in rows:
        connection.execute(
            update(BackupRow)
            .where(BackupRow.id == row_id, BackupRow.status == "running")
            .values(status="failed", error=error, finished_at=now, updated_at=now)
        )
    return [Abandoned("backups", row_id, tenant, "backup", error) for row_id, tenant in rows]


def _requests(connection: Connection, found_by: str) -> list[Abandoned]:
    rows = connection.execute(
        select(OperationRequest.id, OperationRequest.tenant, OperationRequest.kind)
        .where(OperationRequest.status == "running")
        .order_by(OperationRequest.id)
    ).all()
    now = datetime.now(UTC)
    closed = []
    for row_id, tenant, kind in rows:
        error = abandoned_error(kind, found_by) + "; ask again if it is still wanted"
        connection.execute(
            update(OperationRequest)
            .where(OperationRequest.id == row_id, OperationRequest.status == "running")
            .values(status="failed", error=error, done_at=now, updated_at=now)
        )
        closed.append(Abandoned("operation_requests", row_id, tenant, kind, error))
    return closed
