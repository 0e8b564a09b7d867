"""Console sessions: who is logged in (the signed session cookie of ``SessionMiddleware``) and the CSRF token each
form carries. Login is by account name and password, or by pasting an API token; the cookie holds the account name
only (never a token), so revoking the account ends its sessions at their next request.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from desired_state.access import Account, account_by_name
from reconciler.api.auth import SESSION_ACCOUNT
from reconciler.api.context import context_of

CSRF_KEY = "csrf"


def logged_in(request: Request) -> Account | None:
    name = request.session.get(SESSION_ACCOUNT)
    return account_by_name(context_of(request).engine, name) if isinstance(name, str) else None


def start(request: Request, account: Account) -> None:
    request.session.clear()
    request.session[SESSION_ACCOUNT] = account.name
    request.session[CSRF_KEY] = secrets.token_urlsafe(24)


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session[CSRF_KEY] = token
    return token


def csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.session.get(CSRF_KEY)
    return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)
