"""Checks (smoke tests): declared per catalog service and tenant service, their results in ``tenant_checks``.

Revision ID: 0010
Revises: 0009
Created: issue 15, first half (checks after every rollout and on a schedule)

Written by hand, like 0009, so the DDL is exactly the contract in docs/schema.md ("Checks").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("catalog_services", sa.Column("checks", sa.JSON(), nullable=True))
    op.add_column("catalog_services", sa.Column("checks_rollback", sa.Boolean(), nullable=True))
    op.add_column("tenant_services", sa.Column("checks", sa.JSON(), nullable=True))
    op.create_table(
        "tenant_checks",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("latency_seconds", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "tenant_checks_tenant_service_check_index", "tenant_checks", ["tenant", "service", "check_name", "id"]
    )
    op.create_index("tenant_checks_checked_at_index", "tenant_checks", ["checked_at"])


def downgrade() -> None:
    op.drop_table("tenant_checks")
    op.drop_column("tenant_services", "checks")
    op.drop_column("catalog_services", "checks_rollback")
    op.drop_column("catalog_services", "checks")
