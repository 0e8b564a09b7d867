"""The sites tables: Nginx sites the UI (or the YAML import) writes, and the reconciler's status of each.

Beside ``desired_state.tables`` (which imports this module at its end, so ``Base.metadata`` always holds these
tables) only to keep that module small. Read by ``desired_state.site_load``, written back by
``desired_state.site_status``; created by migration 0008. Like the tenant tables, the columns accept values the
reconciler rejects, so a bad row is reported on its site's status instead of the UI's write failing.
docs/schema.md ("sites") describes every column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.tables import Base, BigIntId, TimestampsMixin, UtcDateTime


class Site(TimestampsMixin, Base):
    """One site Nginx serves: a forward, redirect or static site (``options`` holds the kind's own fields)."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("name", name="sites_name_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(String(255))
    # JSON lists of addresses or CIDR ranges; NULL: none.
    allow: Mapped[Any] = mapped_column(JSON, nullable=True)
    deny: Mapped[Any] = mapped_column(JSON, nullable=True)
    # JSON mapping of the kind's fields (forward: upstream, timeouts, host_header, cache; redirect; static).
    options: Mapped[Any] = mapped_column(JSON, nullable=True)
    # Bumped by every writer on each change, like tenants.generation.
    generation: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class SiteStatusRow(Base):
    """What the reconciler last did for a site; keyed by name, so a deleted site's removal stays visible."""

    __tablename__ = "site_statuses"

    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    phase: Mapped[str] = mapped_column(String(32))
    # JSON list of {type, status, reason, message, last_transition}, as in tenant_statuses.
    conditions: Mapped[Any] = mapped_column(JSON, nullable=False)
    observed_generation: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SiteSecretRow(Base):
    """Credentials generated once for a WordPress site (``desired_state.site_secrets``); never shown anywhere.

    Kept when the site's row is deleted: its volumes (and so its database) are kept too, and a site created again
    under the name finds its database with the same password."""

    __tablename__ = "site_secrets"

    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    # JSON mapping: db_password and the eight WordPress keys and salts.
    secrets: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
