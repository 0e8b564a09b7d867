"""Canary analysis: an absolute limit on the canary's request duration at a quantile (p95, p99).

Revision ID: 0017
Revises: 0016
Created: issue 15, follow-up (absolute limits and latency by quantile)

Written by hand so the DDL is exactly the contract in docs/schema.md ("Canary analysis"). Every new column is
nullable without a default: existing policy rows and a UI that does not know the columns keep today's analysis
(mean latency only); existing state rows simply have no quantile figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("canary_policies") as batch:
        batch.add_column(sa.Column("max_quantile_latency_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("latency_quantile", sa.Float(), nullable=True))
    with op.batch_alter_table("tenant_canaries") as batch:
        batch.add_column(sa.Column("latency_quantile", sa.Float(), nullable=True))
        batch.add_column(sa.Column("quantile_latency_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenant_canaries") as batch:
        batch.drop_column("quantile_latency_ms")
        batch.drop_column("latency_quantile")
    with op.batch_alter_table("canary_policies") as batch:
        batch.drop_column("latency_quantile")
        batch.drop_column("max_quantile_latency_ms")
