"""The database tables: the contract between the Laravel web UI and the reconciler.

First stage of the pipeline: the UI (or ``yaml_io.import_yaml``) writes rows here, ``load.load_desired_state``
reads them into validated specs, and ``status.write_status`` writes the reconciler's view back. The schema
itself is created by the Alembic migrations in ``desired_state/migrations``; these classes must match them.

Laravel conventions, so Eloquent models need no configuration: plural snake_case table names, ``bigint id``
primary keys, nullable ``created_at`` / ``updated_at``. Columns deliberately accept values the reconciler
will reject (negative replicas, ``memory = 'lots'``, unknown services): validation happens in
``desired_state.specs`` per tenant so that the error can be reported on that tenant's status instead of
the database refusing the UI's write with a message nobody sees. docs/schema.md describes every column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY; PostgreSQL gets Laravel's bigint.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz`` and returns aware values; SQLite stores text without an offset and
    returns naive values. Normalising both here means comparisons in status and import code never mix
    naive and aware datetimes. Naive input is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite would store the offset as part of the text and then fail to compare with naive rows.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime()}


class TimestampsMixin:
    """Laravel's ``timestampsTz()``: both nullable, maintained by whoever writes the row."""

    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CatalogService(TimestampsMixin, Base):
    """One service the platform offers (``a`` .. ``f``), with defaults every tenant inherits.

    NULL in ``port``, ``health_path``, ``memory`` or ``cpus`` means the platform default from
    ``desired_state.specs.CatalogEntry`` (8080, /health, 128M, 0.5), so the defaults live in one place.
    """

    __tablename__ = "catalog_services"
    __table_args__ = (UniqueConstraint("name", name="catalog_services_name_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    image: Mapped[str] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    health_path: Mapped[str | None] = mapped_column(String(255))
    # Text such as "64M", not bytes: it is what operators type, and a bad value must be storable to be reported.
    memory: Mapped[str | None] = mapped_column(String(64))
    cpus: Mapped[float | None] = mapped_column(Float)
    # JSON list of argv strings, e.g. ["/bin/erp-migrate"]; NULL when the service has no migration step.
    migrate_command: Mapped[Any | None] = mapped_column(JSON)
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # JSON list of checks (smoke tests) every tenant of the service inherits; NULL: none (docs/schema.md "Checks").
    checks: Mapped[Any | None] = mapped_column(JSON)
    # Whether a failing check after an upgrade rolls it back; NULL: the setting RECONCILER_CHECK_ROLLBACK.
    checks_rollback: Mapped[bool | None] = mapped_column(Boolean)


class Tenant(TimestampsMixin, Base):
    __tablename__ = "tenants"
    __table_args__ = (
        UniqueConstraint("name", name="tenants_name_unique"),
        UniqueConstraint("uid", name="tenants_uid_unique"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    # Who the tenant is, whatever its name: uuid4 hex given by the reconciler to a row without one. A name reused
    # by a new row gets a new uid, so it never adopts the data of the tenant that had the name before.
    uid: Mapped[str | None] = mapped_column(String(32))
    domain: Mapped[str] = mapped_column(String(255))
    # 'running' | 'stopped' | 'absent'; a plain string so that a typo is reported on the status, not refused.
    state: Mapped[str] = mapped_column(String(32), default="running", server_default="running")
    # Bumped by every writer on every content change; the status echoes it as observed_generation.
    generation: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class TenantService(TimestampsMixin, Base):
    """A tenant's use of one catalog service; NULL overrides inherit the catalog's defaults."""

    __tablename__ = "tenant_services"
    __table_args__ = (UniqueConstraint("tenant_id", "service", name="tenant_services_tenant_id_service_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenants.id", ondelete="CASCADE", name="tenant_services_tenant_id_foreign")
    )
    # No foreign key to catalog_services: an unknown service must be storable so it can be reported.
    service: Mapped[str] = mapped_column(String(255))
    image: Mapped[str | None] = mapped_column(String(255))
    replicas: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    memory: Mapped[str | None] = mapped_column(String(64))
    cpus: Mapped[float | None] = mapped_column(Float)
    # JSON object of environment variables (name -> string); NULL means none.
    env: Mapped[Any | None] = mapped_column(JSON)
    # JSON list of checks replacing the catalog's; NULL: the catalog's, [] : none.
    checks: Mapped[Any | None] = mapped_column(JSON)


class TenantServiceRoute(TimestampsMixin, Base):
    """Where a tenant service is exposed through Traefik, when it differs from the default.

    No row: the catalog's public service is exposed at the tenant's domain, other services are not exposed.
    A row exposes the service; NULL ``host`` means the tenant's domain, NULL ``path`` the whole host. ``allow``
    and ``deny`` are JSON lists of CIDRs (NULL: none). Which of two tenants keeps a contested host and path is
    decided by ``tenants.id`` (the older tenant); see docs/schema.md.
    """

    __tablename__ = "tenant_service_routes"
    __table_args__ = (UniqueConstraint("tenant_service_id", name="tenant_service_routes_tenant_service_id_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_service_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("tenant_services.id", ondelete="CASCADE", name="tenant_service_routes_tenant_service_id_foreign"),
    )
    host: Mapped[str | None] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(String(255))
    allow: Mapped[Any | None] = mapped_column(JSON)
    deny: Mapped[Any | None] = mapped_column(JSON)


class TenantServiceVersion(TimestampsMixin, Base):
    """One of (at most) two versions of a tenant service served side by side with weights.

    No rows: the service runs one version (``tenant_services.image``, else the catalog's). With rows,
    ``tenant_services.image`` must be NULL; ``position`` 0 is the first version, 1 the second. NULL
    ``replicas`` means ``tenant_services.replicas``. Weights are relative (50/50, 90/10, 1/3).
    """

    __tablename__ = "tenant_service_versions"
    __table_args__ = (
        UniqueConstraint(
            "tenant_service_id", "position", name="tenant_service_versions_tenant_service_id_position_unique"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_service_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("tenant_services.id", ondelete="CASCADE", name="tenant_service_versions_tenant_service_id_foreign"),
    )
    position: Mapped[int] = mapped_column(Integer)
    image: Mapped[str] = mapped_column(String(255))
    replicas: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class TenantStatusRow(Base):
    """What the reconciler last did for a tenant; written only by the reconciler, read by the UI.

    Keyed by tenant name rather than ``tenants.id`` so the status of a deleted tenant (its teardown, or
    the error that blocks it) stays visible after the UI removed the row.
    """

    __tablename__ = "tenant_statuses"

    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)
    phase: Mapped[str] = mapped_column(String(32))
    # JSON list of {type, status, reason, message, last_transition (ISO 8601 or null)}.
    conditions: Mapped[Any] = mapped_column(JSON, nullable=False)
    observed_generation: Mapped[int | None] = mapped_column(BigInteger)
    applied_hash: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


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


class TenantUsageRow(Base):
    """Latest resource use of one tenant service, replaced by the reconciler after every collection.

    Written only by the reconciler (``telemetry.usage``), read by the UI's RAM/CPU view. Keyed by tenant name like
    the status rows; a service with no running container has no row.
    """

    __tablename__ = "tenant_usages"
    __table_args__ = (UniqueConstraint("tenant", "service", name="tenant_usages_tenant_service_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(255))
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    memory_limit_bytes: Mapped[int | None] = mapped_column(BigInteger)  # NULL: no limit
    cpu_cores: Mapped[float | None] = mapped_column(Float)  # NULL until a second sample
    containers: Mapped[int] = mapped_column(Integer)
    collected_at: Mapped[datetime] = mapped_column(UtcDateTime())


# The tables of sites (docs/sites.md), canary analysis and checks (docs/operations.md), and the HTTP API's tokens,
# audit log and alert log (reconciler.api) have their own modules to keep this one small; importing them registers
# their tables here.
from desired_state import access_tables as _access_tables  # noqa: E402, F401
from desired_state import alert_log as _alert_log  # noqa: E402, F401
from desired_state import canary_tables as _canary_tables  # noqa: E402, F401
from desired_state import check_tables as _check_tables  # noqa: E402, F401
from desired_state import condition_history as _condition_history  # noqa: E402, F401

# Swarm data placements (docs/swarm.md), likewise in a module of their own.
from desired_state import placement_tables as _placement_tables  # noqa: E402, F401
from desired_state import site_tables as _site_tables  # noqa: E402, F401
