"""Backup verification: when the newest backup of a tenant was last restored into a scratch volume, and how it went.

Revision ID: 0005
Revises: 0004
Created: issue 11 (backups proven restorable)

Written by hand, like 0001, so the DDL is exactly the contract in docs/schema.md ("backups"). Three nullable
columns: existing rows are simply not verified yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("verify_status", sa.String(32), nullable=True))
        batch.add_column(sa.Column("verify_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("verify_error")
        batch.drop_column("verify_status")
        batch.drop_column("verified_at")
