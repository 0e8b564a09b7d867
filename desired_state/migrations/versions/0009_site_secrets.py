"""Site secrets: credentials the reconciler generates once per WordPress site (database password, salts).

Revision ID: 0009
Revises: 0008
Created: issue 16, second half (wordpress sites)

Written by hand, like 0008, so the DDL is exactly the contract in docs/schema.md ("site_secrets").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "site_secrets",
        sa.Column("site", sa.String(255), primary_key=True),
        sa.Column("secrets", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("site_secrets")
