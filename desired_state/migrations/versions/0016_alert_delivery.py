"""Alerts sent: what became of a queued alert (delivered by the Telegram sender, or failed after its retries).

Revision ID: 0016
Revises: 0015
Created: issue 14 (alerts' delivery outcome)

Written by hand so the DDL is exactly the contract in docs/schema.md ("alert_events"). Nullable columns only: rows
written before it, and alerts that were never queued (logged, dropped), keep them NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alert_events", sa.Column("attempts", sa.Integer(), nullable=True))
    op.add_column("alert_events", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("alert_events", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_events") as batch:
        batch.drop_column("finished_at")
        batch.drop_column("error")
        batch.drop_column("attempts")
