"""Canary analysis: thresholds per catalog service or tenant service, and the analysis's state per tenant service.

Revision ID: 0011
Revises: 0009 (re-chained by the coordinator when merged)
Created: issue 15, second half (canary analysis and stepped promotion)

Written by hand so the DDL is exactly the contract in docs/schema.md ("Canary analysis").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "canary_policies",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("max_error_rate", sa.Float(), nullable=True),
        sa.Column("max_latency_ms", sa.Integer(), nullable=True),
        sa.Column("min_requests", sa.Integer(), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        *_timestamps(),
        sa.UniqueConstraint("service", "tenant", name="canary_policies_service_tenant_unique"),
    )
    op.create_table(
        "tenant_canaries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("stable_image", sa.String(255), nullable=False),
        sa.Column("canary_image", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=True),
        sa.Column("errors", sa.Integer(), nullable=True),
        sa.Column("error_rate", sa.Float(), nullable=True),
        sa.Column("mean_latency_ms", sa.Float(), nullable=True),
        sa.Column("window_seconds", sa.Float(), nullable=True),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("tenant", "service", name="tenant_canaries_tenant_service_unique"),
    )


def downgrade() -> None:
    op.drop_table("tenant_canaries")
    op.drop_table("canary_policies")
