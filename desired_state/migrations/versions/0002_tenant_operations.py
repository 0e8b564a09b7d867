"""Tenant operations: backup policies, backups, operation history, operation requests and version pins.

Revision ID: 0002
Revises: 0001
Created: issue 6 (backups, restores, migrations before upgrades, rollbacks)

Written by hand, like 0001, so the DDL is exactly the contract in docs/schema.md ("Tenant operations").
The rows are keyed by tenant name rather than ``tenants.id`` (except the UI-owned ``backup_policies``) so a
deleted tenant's backups and history stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MIGRATE_SUCCEEDED = "kind = 'migrate' AND status = 'succeeded'"


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _at(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "backup_policies",
        _id(),
        sa.Column(
            "tenant_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="backup_policies_tenant_id_foreign"),
            nullable=False,
        ),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("keep", sa.Integer(), nullable=False, server_default="7"),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        *_timestamps(),
        sa.UniqueConstraint("tenant_id", name="backup_policies_tenant_id_unique"),
    )
    op.create_table(
        "backups",
        _id(),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        _at("started_at"),
        _at("finished_at"),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _at("pruned_at"),
        *_timestamps(),
    )
    op.create_index("backups_tenant_status_index", "backups", ["tenant", "status"])
    op.create_table(
        "operations",
        _id(),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("service", sa.String(255), nullable=True),
        sa.Column("from_image", sa.String(255), nullable=True),
        sa.Column("to_image", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=True),
        sa.Column("backup_id", sa.BigInteger(), nullable=True),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        _at("started_at"),
        _at("finished_at"),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
    )
    op.create_index("operations_tenant_kind_status_index", "operations", ["tenant", "kind", "status"])
    op.create_index(
        "operations_migrate_once_unique",
        "operations",
        ["tenant", "service", "to_image"],
        unique=True,
        postgresql_where=sa.text(_MIGRATE_SUCCEEDED),
        sqlite_where=sa.text(_MIGRATE_SUCCEEDED),
    )
    op.create_table(
        "operation_requests",
        _id(),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("backup_id", sa.BigInteger(), nullable=True),
        sa.Column("restore", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("requested_by", sa.String(255), nullable=True),
        _at("requested_at"),
        sa.Column("status", sa.String(32), nullable=False, server_default="pending"),
        _at("picked_at"),
        _at("done_at"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("operation_id", sa.BigInteger(), nullable=True),
        *_timestamps(),
    )
    op.create_index("operation_requests_status_index", "operation_requests", ["status"])
    op.create_table(
        "tenant_pins",
        _id(),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("pinned_image", sa.String(255), nullable=False),
        sa.Column("failed_image", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("backup_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_id", sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("tenant", "service", name="tenant_pins_tenant_service_unique"),
    )


def downgrade() -> None:
    op.drop_table("tenant_pins")
    op.drop_index("operation_requests_status_index", table_name="operation_requests")
    op.drop_table("operation_requests")
    op.drop_index("operations_migrate_once_unique", table_name="operations")
    op.drop_index("operations_tenant_kind_status_index", table_name="operations")
    op.drop_table("operations")
    op.drop_index("backups_tenant_status_index", table_name="backups")
    op.drop_table("backups")
    op.drop_table("backup_policies")
