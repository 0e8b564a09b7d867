"""``/api/v1/tenants``: list with status, read, create, replace, patch (JSON merge patch), delete, plan preview and
the pending plan. Called over HTTP; registered by ``api.app.create_app``.

Every write is one ``desired_state.tenant_edits`` transaction (generation bumped only on a real change), then an
audit row, then a nudge. ``If-Match: "<generation>"`` (the ETag of a read) turns a write by someone who read an
older generation into a 409 instead of a silent overwrite.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from desired_state.access import Account
from desired_state.inputs import TenantInput
from desired_state.status import read_status, read_statuses
from desired_state.tenant_edits import (
    SavedTenant,
    StoredTenant,
    TenantNotFound,
    delete_tenant,
    read_tenant,
    save_tenant,
    tenant_names,
)
from reconciler.api.auth import audit, require
from reconciler.api.context import context_of
from reconciler.api.models import (
    ERROR_RESPONSES,
    PlanOut,
    PreviewRequest,
    TenantOut,
    TenantSummary,
    WriteResult,
)
from reconciler.api.preview import pending_plan, preview_plan
from reconciler.api.views import plan_out, status_out, tenant_out

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], responses=ERROR_RESPONSES)

Viewer = Annotated[Account, Depends(require("viewer"))]
Operator = Annotated[Account, Depends(require("operator"))]
IfMatch = Annotated[
    str | None,
    Header(description='the ETag of your read, e.g. "7": a write to a tenant changed since is refused with 409'),
]


def expected_generation(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?(\d{1,19})"?\s*', if_match)
    if match is None or int(match.group(1)) >= 2**63:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f'If-Match {if_match[:40]!r} is not a generation such as "7" (see ETag)'
        )
    return int(match.group(1))


def _read(request: Request, name: str) -> StoredTenant:
    with context_of(request).engine.connect() as connection:
        stored = read_tenant(connection, name)
    if stored is None:
        raise TenantNotFound(name)
    return stored


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def write_tenant(
    request: Request,
    account: Account,
    action: str,
    document: dict[str, Any],
    *,
    exists: bool | None,
    expected: int | None,
) -> tuple[SavedTenant, bool]:
    """The one write path of the API and the console: the transaction, the audit row, then the nudge."""
    context = context_of(request)
    saved = save_tenant(
        context.engine,
        document,
        exists=exists,
        expected_generation=expected,
        base_domain=context.settings.base_domain,
        limits=context.settings.input_limits(),
    )
    name = saved.after.document["name"]
    audit(request, account, action, f"tenant:{name}", before=saved.before, after=saved.after.document)
    nudged = saved.changed and context.nudge(name, f"api:{account.name}", action)
    return saved, nudged


def _written(
    request: Request,
    response: Response,
    account: Account,
    action: str,
    document: dict[str, Any],
    exists: bool | None,
    expected: int | None,
) -> WriteResult:
    saved, nudged = write_tenant(request, account, action, document, exists=exists, expected=expected)
    response.headers["ETag"] = f'"{saved.after.generation}"'
    name = saved.after.document["name"]
    out = tenant_out(saved.after, read_status(context_of(request).engine, name), account)
    return WriteResult(tenant=out, changed=saved.changed, nudged=nudged)


@router.get("", response_model=list[TenantSummary])
def list_tenants(
    request: Request,
    account: Viewer,
    q: Annotated[str | None, Query(max_length=100, description="part of the name or domain")] = None,
    phase: Annotated[str | None, Query(max_length=32)] = None,
) -> list[TenantSummary]:
    engine = context_of(request).engine
    statuses = {s.tenant: s for s in read_statuses(engine)}
    tenants = []
    for name, domain, state, generation in tenant_names(engine):
        if q and q.lower() not in name.lower() and q.lower() not in domain.lower():
            continue
        found = status_out(statuses.get(name), generation)
        if phase and (found.phase if found else "Pending") != phase:
            continue
        tenants.append(TenantSummary(name=name, domain=domain, state=state, generation=generation, status=found))
    return tenants


@router.get("/{name}", response_model=TenantOut)
def get_tenant(request: Request, response: Response, name: str, account: Viewer) -> TenantOut:
    stored = _read(request, name)
    response.headers["ETag"] = f'"{stored.generation}"'
    return tenant_out(stored, read_status(context_of(request).engine, name), account)


@router.post("", response_model=WriteResult, status_code=status.HTTP_201_CREATED)
def create_tenant(request: Request, response: Response, document: TenantInput, account: Operator) -> WriteResult:
    raw = document.model_dump(mode="json", exclude_unset=True)
    return _written(request, response, account, "tenant.create", raw, False, None)


@router.put("/{name}", response_model=WriteResult)
def replace_tenant(
    request: Request, response: Response, name: str, document: TenantInput, account: Operator, if_match: IfMatch = None
) -> WriteResult:
    raw = document.model_dump(mode="json", exclude_unset=True)
    _check_name(name, raw)
    return _written(request, response, account, "tenant.replace", raw, True, expected_generation(if_match))


@router.patch("/{name}", response_model=WriteResult)
def patch_tenant(
    request: Request,
    response: Response,
    name: str,
    patch: Annotated[dict[str, Any], Body(description="a JSON merge patch (RFC 7396) of the tenant's document")],
    account: Operator,
    if_match: IfMatch = None,
) -> WriteResult:
    stored = _read(request, name)
    document = merge_patch(stored.document, patch)
    _check_name(name, document)
    expected = expected_generation(if_match)
    # Without If-Match the patch applies to the generation it was merged with, never to a later one.
    generation = expected if expected is not None else stored.generation
    return _written(request, response, account, "tenant.patch", document, True, generation)


@router.delete("/{name}", response_model=TenantOut)
def remove_tenant(request: Request, name: str, account: Operator, if_match: IfMatch = None) -> TenantOut:
    context = context_of(request)
    deleted = delete_tenant(context.engine, name, expected_generation=expected_generation(if_match))
    audit(request, account, "tenant.delete", f"tenant:{name}", before=deleted.document)
    context.nudge(name, f"api:{account.name}", "tenant.delete")
    return tenant_out(deleted, read_status(context.engine, name), account)


@router.get("/{name}/plan", response_model=PlanOut)
async def tenant_plan(request: Request, name: str, account: Viewer) -> PlanOut:
    """What the next pass would do to the tenant as things stand."""
    _read(request, name)
    plan = await run_in_threadpool(pending_plan, context_of(request), name)
    return plan_out(plan, name)


@router.post("/{name}/preview", response_model=PlanOut)
async def tenant_preview(request: Request, name: str, proposal: PreviewRequest, account: Viewer) -> PlanOut:
    """The plan the proposed edit would produce; nothing is written."""
    context = context_of(request)
    document: dict[str, Any] | None = None
    if proposal.delete:
        _read(request, name)
    elif proposal.document is not None:
        document = proposal.document.model_dump(mode="json", exclude_unset=True)
    else:
        document = merge_patch(_read(request, name).document, proposal.patch or {})
    if document is not None:
        _check_name(name, document)
    plan = await run_in_threadpool(preview_plan, context, name, document)
    return plan_out(plan, name)


def _check_name(name: str, document: dict[str, Any]) -> None:
    if document.get("name") != name:
        raise HTTPException(
            422,
            f"tenant {name!r}: name = {str(document.get('name'))[:60]!r}: must be {name!r} "
            "(a tenant is never renamed: a new name is a new tenant)",
        )
