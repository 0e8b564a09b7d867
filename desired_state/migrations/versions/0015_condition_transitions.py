"""Condition transitions: the history of each tenant's conditions (issue 14).

Revision ID: 0015
Revises: 0013 (the coordinator re-chains it after the other branches' migrations)
Created: issue 14 (HTTP API and console: condition history)

Written by hand so the DDL is exactly the contract in docs/schema.md ("condition_transitions").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "condition_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("condition_transitions_tenant_id_index", "condition_transitions", ["tenant", "id"])


def downgrade() -> None:
    op.drop_index("condition_transitions_tenant_id_index", table_name="condition_transitions")
    op.drop_table("condition_transitions")
