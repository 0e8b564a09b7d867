"""Routing: per-service routes (host, path prefix, allow and deny lists) and weighted versions.

Revision ID: 0004
Revises: 0003
Created: issue 3 (routing through Traefik)

Written by hand, like 0001, so the DDL is exactly the contract in docs/schema.md ("Routes and versions").
Both tables hang off ``tenant_services`` and disappear with it (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _service_id(table: str) -> sa.Column[int]:
    return sa.Column(
        "tenant_service_id",
        sa.BigInteger(),
        sa.ForeignKey("tenant_services.id", ondelete="CASCADE", name=f"{table}_tenant_service_id_foreign"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "tenant_service_routes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        _service_id("tenant_service_routes"),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("path", sa.String(255), nullable=True),
        sa.Column("allow", sa.JSON(), nullable=True),
        sa.Column("deny", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("tenant_service_id", name="tenant_service_routes_tenant_service_id_unique"),
    )
    op.create_table(
        "tenant_service_versions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        _service_id("tenant_service_versions"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        *_timestamps(),
        sa.UniqueConstraint(
            "tenant_service_id", "position", name="tenant_service_versions_tenant_service_id_position_unique"
        ),
    )


def downgrade() -> None:
    op.drop_table("tenant_service_versions")
    op.drop_table("tenant_service_routes")
