"""The reconciler's view of each tenant written back for the UI: its status, and its latest resource use.

Last stage of the pipeline: ``status.write_status`` writes ``tenant_statuses`` after every pass,
``telemetry.usage`` (through ``desired_state.usage``) replaces ``tenant_usages`` after every collection; the UI
only reads them. Keyed by tenant name, so what a deleted tenant left stays visible. Import the classes from
``desired_state.tables``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.table_types import Base, BigIntId, UtcDateTime


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
