"""The desired state's tables: the service catalog, tenants, their services, routes and versions, as the UI writes them.

First stage of the pipeline: the web UI (or ``yaml_io.import_yaml``) writes these rows, ``load.load_desired_state``
reads them into validated specs; ``row_writes`` and ``tenant_edits`` write them for the CLI and the HTTP API.
Columns accept values the reconciler will reject, so an error is reported on the tenant's status (see
``desired_state.tables``). Import the classes from ``desired_state.tables``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.table_types import Base, BigIntId, TimestampsMixin


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
