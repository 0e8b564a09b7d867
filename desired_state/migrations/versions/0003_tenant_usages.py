"""Per-tenant resource usage: the latest memory and CPU figures of each tenant service, for the web UI.

Revision ID: 0003
Revises: 0002
Created: issue 7 (observability)

Written by hand, like 0001, so the DDL is exactly the contract in docs/schema.md ("Resource usage").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenant_usages",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_limit_bytes", sa.BigInteger(), nullable=True),
        sa.Column("cpu_cores", sa.Float(), nullable=True),
        sa.Column("containers", sa.Integer(), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "service", name="tenant_usages_tenant_service_unique"),
    )


def downgrade() -> None:
    op.drop_table("tenant_usages")
