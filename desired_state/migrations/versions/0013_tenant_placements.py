"""Tenant placements: the Swarm node that holds each tenant's data volume (issue 13).

Revision ID: 0013
Revises: 0011 (re-chained after merging main: 0010 and 0011 came first)
Created: issue 13 (Swarm engine driver)

Written by hand so the DDL is exactly the contract in docs/schema.md ("tenant_placements").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_placements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("volume", sa.String(255), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant", name="tenant_placements_tenant_unique"),
    )


def downgrade() -> None:
    op.drop_table("tenant_placements")
