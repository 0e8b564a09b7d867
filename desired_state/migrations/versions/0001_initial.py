"""Initial schema: service catalog, tenants, their services, and the reconciler's status rows.

Revision ID: 0001
Revises:
Created: project start

Written by hand so the DDL is exactly the contract in docs/schema.md on both SQLite and PostgreSQL.
Types are spelled out here rather than imported from ``desired_state.tables``: a migration must keep
producing the same schema even after the models move on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "catalog_services",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("health_path", sa.String(255), nullable=True),
        sa.Column("memory", sa.String(64), nullable=True),
        sa.Column("cpus", sa.Float(), nullable=True),
        sa.Column("migrate_command", sa.JSON(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        *_timestamps(),
        sa.UniqueConstraint("name", name="catalog_services_name_unique"),
    )
    op.create_table(
        "tenants",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, server_default="running"),
        sa.Column("generation", sa.BigInteger(), nullable=False, server_default="1"),
        *_timestamps(),
        sa.UniqueConstraint("name", name="tenants_name_unique"),
    )
    op.create_table(
        "tenant_services",
        _id(),
        sa.Column(
            "tenant_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="tenant_services_tenant_id_foreign"),
            nullable=False,
        ),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("image", sa.String(255), nullable=True),
        sa.Column("replicas", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("memory", sa.String(64), nullable=True),
        sa.Column("cpus", sa.Float(), nullable=True),
        sa.Column("env", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("tenant_id", "service", name="tenant_services_tenant_id_service_unique"),
    )
    op.create_table(
        "tenant_statuses",
        sa.Column("tenant", sa.String(255), primary_key=True),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("observed_generation", sa.BigInteger(), nullable=True),
        sa.Column("applied_hash", sa.String(128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tenant_statuses")
    op.drop_table("tenant_services")
    op.drop_table("tenants")
    op.drop_table("catalog_services")
