"""Tenant identity: a stable uid per tenant, on its backups, and the binding of data volumes to it.

Revision ID: 0006
Revises: 0005
Created: issue 11 (a reused tenant name never adopts the old tenant's data)

Written by hand, like 0001, so the DDL is exactly the contract in docs/schema.md ("tenants", "backups",
"data_volumes"). ``tenants.uid`` and ``backups.tenant_uid`` are nullable: existing rows get a uid from the
reconciler on its next pass (a UI that does not know the column keeps working).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# At most one live binding per volume; retired bindings stay as history.
_LIVE = "state <> 'retired'"


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("uid", sa.String(32), nullable=True))
        batch.create_unique_constraint("tenants_uid_unique", ["uid"])
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("tenant_uid", sa.String(32), nullable=True))
    op.create_index("backups_tenant_uid_index", "backups", ["tenant_uid"])
    op.create_table(
        "data_volumes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("volume", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("tenant_uid", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "data_volumes_live_volume_unique",
        "data_volumes",
        ["volume"],
        unique=True,
        postgresql_where=sa.text(_LIVE),
        sqlite_where=sa.text(_LIVE),
    )


def downgrade() -> None:
    op.drop_index("data_volumes_live_volume_unique", table_name="data_volumes")
    op.drop_table("data_volumes")
    op.drop_index("backups_tenant_uid_index", table_name="backups")
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("tenant_uid")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_constraint("tenants_uid_unique", type_="unique")
        batch.drop_column("uid")
