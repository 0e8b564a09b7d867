"""The HTTP API's view of checks (smoke tests, docs/operations.md "Checks"): the latest result of each of a tenant's
checks, and its recent runs, read from ``tenant_checks`` (``desired_state.check_results``, written by
``runtime.checks``). Mounted by ``reconciler.api.app``; the console's tenant page shows the same rows
(``check_out``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from desired_state.access import Account
from desired_state.check_results import StoredCheck, latest_results, recent_results
from reconciler.api.auth import require
from reconciler.api.context import context_of
from reconciler.api.models import ERROR_RESPONSES, CheckOut

router = APIRouter(prefix="/api/v1", tags=["observe"], responses=ERROR_RESPONSES)
Viewer = Annotated[Account, Depends(require("viewer"))]


def check_out(stored: StoredCheck) -> CheckOut:
    result = stored.result
    return CheckOut(
        id=stored.id,
        service=result.service,
        check=result.check,
        image=result.image,
        outcome=result.outcome,
        latency_seconds=result.latency,
        detail=result.detail,
        trigger=result.trigger,
        at=stored.checked_at,
    )


@router.get("/tenants/{name}/checks", response_model=list[CheckOut])
def tenant_checks(request: Request, name: str, account: Viewer) -> list[CheckOut]:
    """The latest result of each of the tenant's checks, by service and check (a deleted tenant's too)."""
    return [check_out(stored) for stored in latest_results(context_of(request).engine, name)]


@router.get("/tenants/{name}/checks/history", response_model=list[CheckOut])
def tenant_check_history(
    request: Request, name: str, account: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[CheckOut]:
    """The tenant's most recent check runs, newest first (retention: ``RECONCILER_CHECK_KEEP`` per check)."""
    return [check_out(stored) for stored in recent_results(context_of(request).engine, name, limit)]
