"""The tables of tenant operations: backup policies and backups, data volumes, operations, requests and pins.

Beside apply in the pipeline: the runtime's operations (``runtime.operations``: backups, upgrades, migrations,
restores, rollbacks, data moves) record their history here through ``desired_state.backups``, ``operations``,
``operation_requests``, ``identity`` and ``pins``; the UI writes backup policies and operation requests and reads
the rest (docs/schema.md "Tenant operations"). Import the classes from ``desired_state.tables``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.table_types import Base, BigIntId, TimestampsMixin, UtcDateTime

# --- tenant operations: backups, upgrades, restores, rollbacks (docs/schema.md "Tenant operations") ---------------
# Keyed by tenant *name*, like tenant_statuses: the history of a deleted tenant stays readable.


class BackupPolicy(TimestampsMixin, Base):
    """A tenant's backup schedule and retention, written by the UI; no row means no scheduled backups."""

    __tablename__ = "backup_policies"
    __table_args__ = (UniqueConstraint("tenant_id", name="backup_policies_tenant_id_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenants.id", ondelete="CASCADE", name="backup_policies_tenant_id_foreign")
    )
    # Cron text: five fields (minute hour day month weekday) or six with seconds first; checked when scheduled.
    schedule: Mapped[str] = mapped_column(String(255))
    keep: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class BackupRow(TimestampsMixin, Base):
    """One archive of a tenant's data volume; written by the reconciler only."""

    __tablename__ = "backups"
    __table_args__ = (
        Index("backups_tenant_status_index", "tenant", "status"),
        Index("backups_tenant_uid_index", "tenant_uid"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    # The uid of the tenant whose volume was archived (NULL: taken before tenants had uids).
    tenant_uid: Mapped[str | None] = mapped_column(String(32))
    # pending | running | succeeded | failed | pruned
    status: Mapped[str] = mapped_column(String(32))
    # schedule | manual | request | pre-upgrade
    trigger: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    pruned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Last restore test (``runtime.operations.verify``): when, succeeded | failed, and why it failed.
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    verify_status: Mapped[str | None] = mapped_column(String(32))
    verify_error: Mapped[str | None] = mapped_column(Text)


class DataVolumeRow(TimestampsMixin, Base):
    """Which tenant uid a data volume belongs to; written by the reconciler only (``desired_state.identity``).

    Docker volume labels cannot change after creation, so the binding lives here. ``state``: ``pending`` (the
    volume is to be created by the pass that wrote it), ``bound`` (seen in Docker), ``retired`` (purged, adopted by
    another uid, or lost and recreated on request; kept as history).
    """

    __tablename__ = "data_volumes"
    __table_args__ = (
        Index(
            "data_volumes_live_volume_unique",
            "volume",
            unique=True,
            postgresql_where=text("state <> 'retired'"),
            sqlite_where=text("state <> 'retired'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    volume: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str] = mapped_column(String(255))
    tenant_uid: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class OperationRow(TimestampsMixin, Base):
    """History: each deploy, upgrade, migration, backup, restore and rollback; written by the reconciler only."""

    __tablename__ = "operations"
    __table_args__ = (
        Index("operations_tenant_kind_status_index", "tenant", "kind", "status"),
        # A migration to an image succeeds at most once per tenant service: the "exactly once" guarantee.
        Index(
            "operations_migrate_once_unique",
            "tenant",
            "service",
            "to_image",
            unique=True,
            postgresql_where=text("kind = 'migrate' AND status = 'succeeded'"),
            sqlite_where=text("kind = 'migrate' AND status = 'succeeded'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    # deploy | upgrade | migrate | backup | restore | rollback
    kind: Mapped[str] = mapped_column(String(32))
    service: Mapped[str | None] = mapped_column(String(255))
    from_image: Mapped[str | None] = mapped_column(String(255))
    to_image: Mapped[str | None] = mapped_column(String(255))
    # running | succeeded | failed | reverted (a migration undone by restoring an older backup)
    status: Mapped[str] = mapped_column(String(32))
    # reconcile | schedule | manual | request | pre-upgrade
    trigger: Mapped[str | None] = mapped_column(String(32))
    backup_id: Mapped[int | None] = mapped_column(BigInteger)
    request_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class OperationRequest(TimestampsMixin, Base):
    """What the UI asks for: a backup, a restore, a rollback or a data move; the reconciler picks it up and reports
    back."""

    __tablename__ = "operation_requests"
    __table_args__ = (Index("operation_requests_status_index", "status"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    # backup | restore | rollback | move
    kind: Mapped[str] = mapped_column(String(32))
    backup_id: Mapped[int | None] = mapped_column(BigInteger)
    # For a rollback: also restore the backup taken before the failed upgrade.
    restore: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # For a move (Swarm): the node the tenant's data moves to (its hostname).
    node: Mapped[str | None] = mapped_column(String(255))
    # Higher runs first among pending requests of different tenants (bounds: desired_state.bounds); then age (id).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    requested_by: Mapped[str | None] = mapped_column(String(255))
    requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # pending | running | succeeded | failed
    status: Mapped[str] = mapped_column(String(32), default="pending", server_default="pending")
    picked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    operation_id: Mapped[int | None] = mapped_column(BigInteger)


class TenantPin(TimestampsMixin, Base):
    """A tenant service held on its old image after an upgrade failed, until the desired image changes again."""

    __tablename__ = "tenant_pins"
    __table_args__ = (UniqueConstraint("tenant", "service", name="tenant_pins_tenant_service_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(255))
    pinned_image: Mapped[str] = mapped_column(String(255))
    failed_image: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    backup_id: Mapped[int | None] = mapped_column(BigInteger)
    operation_id: Mapped[int | None] = mapped_column(BigInteger)
