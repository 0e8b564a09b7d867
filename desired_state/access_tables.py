"""The HTTP API's own tables: who may call it (``api_tokens``) and what every write through it did
(``audit_events``).

Beside ``desired_state.tables`` (which imports this module at its end, so ``Base.metadata`` holds these tables).
Written and read by ``desired_state.access`` for ``reconciler.api`` and ``reconciler tokens``; created by
migration 0012. The web UI's tables are untouched: a Laravel front end keeps its own users.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.tables import Base, BigIntId, TimestampsMixin, UtcDateTime


class ApiToken(TimestampsMixin, Base):
    """One account of the API and console: a name, a role, a token (stored as its SHA-256 only) and optionally a
    password for the console (PBKDF2, never the password itself)."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("name", name="api_tokens_name_unique"),
        UniqueConstraint("token_hash", name="api_tokens_token_hash_unique"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    # viewer | operator | admin
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    # "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"; NULL: this account logs in with its token only.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # The console's language for this account: en | fa.
    locale: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditEvent(Base):
    """One write made through the API or console: who, what, when, and digests of the target before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("audit_events_target_index", "target"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    # e.g. tenant.create, tenant.patch, catalog.replace, request.backup, token.create
    action: Mapped[str] = mapped_column(String(64))
    # e.g. tenant:acme, catalog:a, token:ci
    target: Mapped[str] = mapped_column(String(255))
    # sha256 (16 hex) of the target's document before and after; NULL where it did not exist.
    before_digest: Mapped[str | None] = mapped_column(String(64))
    after_digest: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
