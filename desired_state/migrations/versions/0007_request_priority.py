"""Request priority: the UI may ask for one operation request to run before others.

Revision ID: 0007
Revises: 0006
Created: issue 12 (operation requests of different tenants run concurrently, by priority then age)

Written by hand, like 0001, so the DDL is exactly the contract in docs/schema.md ("operation_requests"). The
column is NOT NULL with a server default of 0, so existing rows and a UI that does not know the column keep
working: every request it inserts has the default priority.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operation_requests") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("operation_requests") as batch:
        batch.drop_column("priority")
