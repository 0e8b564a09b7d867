"""The ``tenant_placements`` table: which Swarm node holds each tenant's data (written by the reconciler only).

Beside ``desired_state.tables`` (which imports this module at its end, so ``Base.metadata`` holds it) to keep that
module small. Written and read by ``desired_state.placements``; created by migration 0013. docs/schema.md
("tenant_placements") describes every column.
"""

from __future__ import annotations

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.tables import Base, BigIntId, TimestampsMixin


class TenantPlacement(TimestampsMixin, Base):
    """A tenant's data node on the Swarm engine: chosen once by a pass, changed only by an explicit move."""

    __tablename__ = "tenant_placements"
    __table_args__ = (UniqueConstraint("tenant", name="tenant_placements_tenant_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    # The node's hostname (what the services' placement constraint names).
    node: Mapped[str] = mapped_column(String(255))
    volume: Mapped[str] = mapped_column(String(255))
    # Why it is there: "chosen" by a pass, or "moved" by `reconciler swarm move-data` (with the old node).
    note: Mapped[str | None] = mapped_column(Text)
