"""API accounts and the audit log: create, find, revoke tokens; check console passwords; record every write.

Called by ``reconciler.api`` (each request's token, each write's audit row) and ``reconciler tokens``. Tokens are
random (``rct_`` + 43 URL-safe characters, 256 bits) and only their SHA-256 is stored, so a leaked table grants
nothing; passwords are PBKDF2-SHA256 with a per-account salt. Neither is ever logged or returned after creation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, insert, select, update

from desired_state.access_tables import ApiToken, AuditEvent

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
LOCALES = ("en", "fa")
TOKEN_PREFIX = "rct_"
ACCOUNT_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
PBKDF2_ITERATIONS = 200_000
MIN_PASSWORD = 10


class AccessError(ValueError):
    """A token or account request that cannot be carried out; the message names the account and the fix."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: Role
    locale: str
    has_password: bool
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def may(self, needed: Role) -> bool:
        """Roles are ordered: an admin may do what an operator may, an operator what a viewer may."""
        return ROLES.index(self.role) >= ROLES.index(needed)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, expected = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hash_password(password, salt=bytes.fromhex(salt), iterations=int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual.rsplit("$", 1)[1], expected)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        role=row.role,
        locale=row.locale if row.locale in LOCALES else "en",
        has_password=row.password_hash is not None,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def create_token(
    engine: Engine, name: str, role: str, *, password: str | None = None, locale: str = "en"
) -> tuple[Account, str]:
    """A new account; returns it and its token, which is shown this once and never stored."""
    if not ACCOUNT_NAME_RE.match(name):
        raise AccessError(f"account name {name[:70]!r}: use lowercase letters, digits and . _ - (at most 64)")
    if role not in ROLES:
        raise AccessError(f"account {name!r}: role {role[:30]!r} is not one of {', '.join(ROLES)}")
    if locale not in LOCALES:
        raise AccessError(f"account {name!r}: locale {locale[:30]!r} is not one of {', '.join(LOCALES)}")
    if password is not None and len(password) < MIN_PASSWORD:
        raise AccessError(f"account {name!r}: the password needs at least {MIN_PASSWORD} characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        taken = connection.execute(select(ApiToken.id).where(ApiToken.name == name)).first()
        if taken is not None:
            raise AccessError(f"account {name!r} exists; revoke it first or choose another name")
        connection.execute(
            insert(ApiToken).values(
                name=name,
                role=role,
                token_hash=token_digest(token),
                password_hash=hash_password(password) if password is not None else None,
                locale=locale,
                created_at=now,
                updated_at=now,
            )
        )
        row = connection.execute(select(ApiToken).where(ApiToken.name == name)).one()
    return _account(row), token


def list_accounts(engine: Engine) -> list[Account]:
    with engine.connect() as connection:
        return [_account(row) for row in connection.execute(select(ApiToken).order_by(ApiToken.name))]


def revoke_token(engine: Engine, name: str) -> bool:
    """Revoke an account (its row stays, for the audit log's sake); False if there is no live account so named."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        result = connection.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        )
    return bool(result.rowcount)


def account_for_token(engine: Engine, token: str) -> Account | None:
    """The live account holding ``token``; its last use is recorded."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with engine.begin() as connection:
        row = connection.execute(
            select(ApiToken).where(ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        connection.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=datetime.now(UTC)))
    return _account(row)


def account_by_name(engine: Engine, name: str) -> Account | None:
    with engine.connect() as connection:
        row = connection.execute(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))).first()
    return _account(row) if row is not None else None


def account_for_password(engine: Engine, name: str, password: str) -> Account | None:
    with engine.connect() as connection:
        row = connection.execute(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))).first()
    if row is None or row.password_hash is None or not password_matches(password, row.password_hash):
        return None
    return _account(row)


def set_locale(engine: Engine, name: str, locale: str) -> None:
    if locale not in LOCALES:
        raise AccessError(f"account {name!r}: locale {locale[:30]!r} is not one of {', '.join(LOCALES)}")
    with engine.begin() as connection:
        connection.execute(
            update(ApiToken).where(ApiToken.name == name).values(locale=locale, updated_at=datetime.now(UTC))
        )


def digest(document: object) -> str | None:
    """A short digest of a document (None stays None): equal documents, equal digests."""
    if document is None:
        return None
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    before_digest: str | None
    after_digest: str | None
    detail: str | None


def record_audit(
    engine: Engine,
    account: Account,
    action: str,
    target: str,
    *,
    before: object = None,
    after: object = None,
    detail: str | None = None,
) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(AuditEvent).values(
                at=datetime.now(UTC),
                actor=account.name,
                role=account.role,
                action=action,
                target=target[:255],
                before_digest=digest(before),
                after_digest=digest(after),
                detail=detail[:2000] if detail else None,
            )
        )


def list_audit(engine: Engine, target: str | None = None, limit: int = 200) -> list[AuditRecord]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    with engine.connect() as connection:
        return [
            AuditRecord(
                id=r.id,
                at=r.at,
                actor=r.actor,
                role=r.role,
                action=r.action,
                target=r.target,
                before_digest=r.before_digest,
                after_digest=r.after_digest,
                detail=r.detail,
            )
            for r in connection.execute(query)
        ]
