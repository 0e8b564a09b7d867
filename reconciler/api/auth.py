"""Who is calling, and may they: bearer tokens for the API, the signed session cookie for the console.

Every route declares the least role it needs with ``require("viewer" | "operator" | "admin")`` (viewer reads,
operator edits tenants and asks for operations, admin edits the catalog and the accounts). No valid token: 401;
a valid token of a lesser role: 403 naming the role needed. The console's session cookie is accepted by the API
for reads only, so a forged cross-site form can never write (console forms carry their own CSRF token:
``api.console.session``). Used by the routers of ``api.tenants``, ``api.resources`` and the console.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from desired_state.access import Account, Role, account_by_name, account_for_token, record_audit
from reconciler.api.context import context_of

bearer = HTTPBearer(auto_error=False, description="an API token from `reconciler tokens create`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
SESSION_ACCOUNT = "account"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Account | None:
    """The account of the request's bearer token, else (reads only) of its console session."""
    context = context_of(request)
    if credentials is not None:
        return account_for_token(context.engine, credentials.credentials)
    name = request.session.get(SESSION_ACCOUNT) if "session" in request.scope else None
    if isinstance(name, str) and request.method in READ_METHODS:
        return account_by_name(context.engine, name)
    return None


def require(role: Role) -> Callable[..., Account]:
    def dependency(request: Request, credentials: Credentials) -> Account:
        account = caller(request, credentials)
        if account is None:
            if credentials is None:
                raise _unauthorized("no API token: send 'Authorization: Bearer <token>' (reconciler tokens create)")
            raise _unauthorized("the API token is not valid or was revoked")
        if not account.may(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"account {account.name!r} is a {account.role}; this needs {role} or above"
            )
        return account

    return dependency


def audit(
    request: Request,
    account: Account,
    action: str,
    target: str,
    *,
    before: object = None,
    after: object = None,
    detail: str | None = None,
) -> None:
    """Record a write (who, what, when, digests before and after) in ``audit_events``."""
    record_audit(context_of(request).engine, account, action, target, before=before, after=after, detail=detail)
