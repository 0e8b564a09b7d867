"""Backup rows and backup policies: what the web UI shows about a tenant's archives and schedules.

Beside the reconcile pipeline: the runtime's backup service (``reconciler.operations.backups``) writes a ``backups``
row when an archive starts, finishes, fails or is pruned; the scheduler reads ``backup_policies`` (written by the
UI) to know each tenant's cron schedule and retention. Plain records in, plain records out; no Docker here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from desired_state.tables import BackupPolicy, BackupRow, Tenant

BACKUP_STATUSES = ("pending", "running", "succeeded", "failed", "pruned")
BACKUP_TRIGGERS = ("schedule", "manual", "request", "pre-upgrade")
# Most archives a policy may keep (``RECONCILER_BACKUP_KEEP_MAX`` overrides it): retention bounds the disk a
# tenant's backups take, so a mistyped ``keep`` (70000 for 7) must be an error, not a silently full disk.
KEEP_MAX = 1000


@dataclass(frozen=True)
class BackupRecord:
    id: int
    tenant: str
    status: str
    trigger: str
    file_name: str | None
    size_bytes: int | None
    sha256: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    error: str | None
    created_at: datetime | None
    verified_at: datetime | None = None
    verify_status: str | None = None
    verify_error: str | None = None
    # The uid of the tenant whose data this is (None: taken before tenants had uids); see ``desired_state.identity``.
    tenant_uid: str | None = None


@dataclass(frozen=True)
class BackupPolicyRecord:
    """One row of ``backup_policies`` as written (``keep`` unchecked: see ``keep_problem``)."""

    tenant: str
    schedule: str
    keep: int
    enabled: bool

    def keep_problem(self, keep_max: int = KEEP_MAX) -> str | None:
        """Why ``keep`` cannot be used (None: it can): retention keeps between 1 and ``keep_max`` archives."""
        if 1 <= self.keep <= keep_max:
            return None
        return (
            f"tenant {self.tenant!r}: backup policy field keep = {str(self.keep)[:12]} is out of range; "
            f"use 1 to {keep_max} (how many succeeded archives retention keeps)"
        )


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _record(row: Any) -> BackupRecord:
    return BackupRecord(
        id=row.id,
        tenant=row.tenant,
        status=row.status,
        trigger=row.trigger,
        file_name=row.file_name,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=row.duration_seconds,
        error=row.error,
        created_at=row.created_at,
        verified_at=row.verified_at,
        verify_status=row.verify_status,
        verify_error=row.verify_error,
        tenant_uid=row.tenant_uid,
    )


def start_backup(
    engine: Engine,
    tenant: str,
    trigger: str,
    file_name: str | None,
    *,
    status: str = "running",
    tenant_uid: str | None = None,
) -> BackupRecord:
    """Insert the row of a backup that starts now (or, with ``status='failed'``, that was refused)."""
    now = datetime.now(UTC)
    values = {
        "tenant": tenant,
        "tenant_uid": tenant_uid,
        "status": status,
        "trigger": trigger,
        "file_name": file_name,
        "started_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as connection:
        backup_id = connection.execute(insert(BackupRow).values(values)).inserted_primary_key[0]  # type: ignore[index]
        row = connection.execute(select(BackupRow).where(BackupRow.id == backup_id)).one()
    return _record(row)


def finish_backup(
    engine: Engine,
    backup_id: int,
    *,
    status: str,
    file_name: str | None = None,
    size_bytes: int | None = None,
    sha256: str | None = None,
    duration_seconds: float | None = None,
    error: str | None = None,
) -> BackupRecord:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status,
        "size_bytes": size_bytes,
        "sha256": sha256,
        "duration_seconds": duration_seconds,
        "error": error,
        "finished_at": now,
        "updated_at": now,
    }
    if file_name is not None:
        values["file_name"] = file_name
    with engine.begin() as connection:
        connection.execute(update(BackupRow).where(BackupRow.id == backup_id).values(values))
        row = connection.execute(select(BackupRow).where(BackupRow.id == backup_id)).one()
    return _record(row)


def get_backup(engine: Engine, backup_id: int) -> BackupRecord | None:
    with engine.connect() as connection:
        row = connection.execute(select(BackupRow).where(BackupRow.id == backup_id)).first()
    return _record(row) if row is not None else None


def list_backups(
    engine: Engine,
    tenant: str | None = None,
    statuses: Iterable[str] | None = None,
    *,
    tenant_uid: str | None = None,
) -> list[BackupRecord]:
    """Backups, oldest first, optionally of one tenant (and of one tenant uid) and with some statuses only."""
    query = select(BackupRow).order_by(BackupRow.id)
    if tenant is not None:
        query = query.where(BackupRow.tenant == tenant)
    if tenant_uid is not None:
        query = query.where(BackupRow.tenant_uid == tenant_uid)
    if statuses is not None:
        query = query.where(BackupRow.status.in_(list(statuses)))
    with engine.connect() as connection:
        return [_record(row) for row in connection.execute(query)]


def mark_pruned(engine: Engine, backup_ids: Iterable[int]) -> None:
    """The archives are deleted; the rows stay (status ``pruned``) so the UI keeps the history and checksums."""
    ids = list(backup_ids)
    if not ids:
        return
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            update(BackupRow).where(BackupRow.id.in_(ids)).values(status="pruned", pruned_at=now, updated_at=now)
        )


def read_policies(engine: Engine) -> list[BackupPolicyRecord]:
    """Every tenant's backup policy (enabled or not), by tenant name."""
    query = (
        select(Tenant.name, BackupPolicy.schedule, BackupPolicy.keep, BackupPolicy.enabled)
        .join(Tenant, Tenant.id == BackupPolicy.tenant_id)
        .order_by(Tenant.name)
    )
    with engine.connect() as connection:
        return [
            BackupPolicyRecord(tenant=name, schedule=schedule, keep=keep, enabled=on)
            for name, schedule, keep, on in connection.execute(query)
        ]


def read_policy(engine: Engine, tenant: str) -> BackupPolicyRecord | None:
    return next((p for p in read_policies(engine) if p.tenant == tenant), None)


def set_policy(engine: Engine, tenant: str, schedule: str, keep: int, *, enabled: bool = True) -> None:
    """Create or replace a tenant's policy (what the UI does; used by tests and scripts)."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        tenant_id = connection.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar_one_or_none()
        if tenant_id is None:
            raise ValueError(f"tenant {tenant!r} is not in the tenants table")
        values = {"schedule": schedule, "keep": keep, "enabled": enabled, "updated_at": now}
        changed = connection.execute(
            update(BackupPolicy).where(BackupPolicy.tenant_id == tenant_id).values(values)
        ).rowcount
        if not changed:
            connection.execute(insert(BackupPolicy).values({**values, "tenant_id": tenant_id, "created_at": now}))


def last_successes(engine: Engine) -> dict[str, datetime]:
    """Each tenant's newest successful backup time (one query), to seed the backup-age gauge at start."""
    query = (
        select(BackupRow.tenant, func.max(BackupRow.finished_at))
        .where(BackupRow.status.in_(("succeeded", "pruned")))
        .group_by(BackupRow.tenant)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    # SQLite hands back naive datetimes; they were written in UTC.
    return {
        tenant: finished if finished.tzinfo else finished.replace(tzinfo=UTC)
        for tenant, finished in rows
        if finished is not None
    }


def newest_succeeded(engine: Engine) -> list[BackupRecord]:
    """Each tenant's newest succeeded backup (the one a restore would use first), by tenant."""
    newest: dict[str, BackupRecord] = {}
    for record in list_backups(engine, statuses=("succeeded",)):
        newest[record.tenant] = record  # oldest first: the last one wins
    return [newest[tenant] for tenant in sorted(newest)]


def record_verification(engine: Engine, backup_id: int, *, ok: bool, error: str | None = None) -> None:
    """The outcome of restoring the archive into a scratch volume (``runtime.operations.verify``)."""
    now = datetime.now(UTC)
    values = {"verified_at": now, "verify_status": "succeeded" if ok else "failed", "verify_error": error}
    with engine.begin() as connection:
        connection.execute(update(BackupRow).where(BackupRow.id == backup_id).values({**values, "updated_at": now}))
