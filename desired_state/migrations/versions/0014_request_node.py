"""Operation requests: the target node of a ``move`` request (issue 13, moving a tenant's data on a swarm).

Revision ID: 0014
Revises: 0013
Created: issue 13 (Swarm data move)

Written by hand so the DDL is exactly the contract in docs/schema.md ("operation_requests"). A nullable column:
existing rows and writers are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("operation_requests", sa.Column("node", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operation_requests") as batch:
        batch.drop_column("node")
