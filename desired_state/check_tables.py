"""The ``tenant_checks`` table: one row per run of one check (smoke test) of a tenant service.

Beside ``desired_state.tables`` (which imports this module at its end, so ``Base.metadata`` always holds it) only
to keep that module small. Written by the reconciler only (``desired_state.check_results``), read by the UI's test
reports, ``reconciler checks`` and the canary analysis (results per version: ``image``). Keyed by tenant name like
the status rows, so the reports of a deleted tenant stay readable until retention prunes them. Created by
migration 0010; docs/schema.md ("tenant_checks") describes every column.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.tables import Base, BigIntId, UtcDateTime


class TenantCheckRow(Base):
    __tablename__ = "tenant_checks"
    __table_args__ = (
        Index("tenant_checks_tenant_service_check_index", "tenant", "service", "check_name", "id"),
        Index("tenant_checks_checked_at_index", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(255))
    # Named check_name, not check: CHECK is a reserved word in SQL.
    check_name: Mapped[str] = mapped_column(String(64))
    # The image of the version the request reached (the service's single version, or the one that was rolled out).
    image: Mapped[str] = mapped_column(String(255))
    # passed | failed
    outcome: Mapped[str] = mapped_column(String(16))
    latency_seconds: Mapped[float] = mapped_column(Float)
    # What was seen, at most 300 characters: the status, or why the answer was not the expected one.
    detail: Mapped[str] = mapped_column(Text)
    # rollout | upgrade | schedule | manual
    trigger: Mapped[str] = mapped_column(String(32))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
