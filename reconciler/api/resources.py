"""The API's other resources: catalog, history (operations), backups, operation requests, nudges, logs, usage,
the audit log, and accounts. Called over HTTP; registered by ``api.app.create_app``.

Operations are asked for the way the web UI asks (an ``operation_requests`` row that ``reconciler run`` picks up and
answers); the request's row then carries its outcome. Catalog edits are the YAML import's catalog writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from desired_state.access import (
    AccessError,
    Account,
    create_token,
    list_accounts,
    list_audit,
    revoke_token,
)
from desired_state.alert_log import recent_alerts
from desired_state.condition_history import read_transitions
from desired_state.identity import backups_of
from desired_state.inputs import CatalogEntry
from desired_state.load import parse_catalog_row
from desired_state.operation_requests import create_request, get_request, requests_of
from desired_state.operations import list_operations
from desired_state.row_writes import read_catalog, write_catalog
from desired_state.specs import SpecError, parse_catalog
from desired_state.tenant_edits import TenantNotFound, read_tenant
from reconciler.api.auth import audit, require
from reconciler.api.capacity import capacity
from reconciler.api.context import context_of
from reconciler.api.logs import follow_logs, tail_logs
from reconciler.api.loki_logs import LokiUnavailable
from reconciler.api.models import (
    ERROR_RESPONSES,
    AccountOut,
    AlertOut,
    AuditOut,
    BackupOut,
    CapacityOut,
    CatalogOut,
    LogLine,
    NudgeOut,
    OperationOut,
    RequestIn,
    RequestOut,
    TokenCreated,
    TokenIn,
    TransitionOut,
    UsageSeries,
)
from reconciler.api.moves import MoveNotPossible, request_move
from reconciler.api.usage import usage_of
from reconciler.api.views import backup_out, operation_out, request_out

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[Account, Depends(require("viewer"))]
Operator = Annotated[Account, Depends(require("operator"))]
Admin = Annotated[Account, Depends(require("admin"))]


def _exists(request: Request, name: str) -> None:
    with context_of(request).engine.connect() as connection:
        if read_tenant(connection, name) is None:
            raise TenantNotFound(name)


def _catalog_out(entry: CatalogEntry) -> CatalogOut:
    return CatalogOut(
        name=entry.name,
        image=entry.image,
        port=entry.port,
        health=entry.health,
        memory=entry.memory,
        cpus=entry.cpus,
        migrate=list(entry.migrate) if entry.migrate is not None else None,
        public=entry.public,
    )


# --- catalog ----------------------------------------------------------------------------------------------


@router.get("/catalog", response_model=list[CatalogOut], tags=["catalog"])
def get_catalog(request: Request, account: Viewer) -> list[CatalogOut]:
    """The valid catalog entries (a broken row is reported on the tenants that use it)."""
    entries = []
    with context_of(request).engine.connect() as connection:
        for _name, (_row_id, row) in sorted(read_catalog(connection).items()):
            try:
                entries.append(_catalog_out(parse_catalog_row(row)))
            except SpecError:
                continue
    return entries


@router.put("/catalog/{name}", response_model=CatalogOut, tags=["catalog"])
def put_catalog(request: Request, name: str, entry: CatalogEntry, account: Admin) -> CatalogOut:
    """Create or replace one catalog entry (admin); every tenant using it is nudged."""
    if entry.name != name:
        raise HTTPException(422, f"catalog entry name must be {name!r}")
    fields = entry.model_dump(mode="json", exclude_unset=True, exclude={"name"})
    context = context_of(request)
    with context.engine.begin() as connection:
        stored = read_catalog(connection)
        before = stored[name][1] if name in stored else None
        valid = parse_catalog({name: fields})
        write_catalog(connection, {name: fields}, valid, stored, datetime.now(UTC))
    audit(request, account, "catalog.put", f"catalog:{name}", before=before, after=fields)
    context.nudge(None, f"api:{account.name}", "catalog.put")
    return _catalog_out(valid[name])


# --- history, backups, requests ---------------------------------------------------------------------------


@router.get("/tenants/{name}/operations", response_model=list[OperationOut], tags=["operations"])
def tenant_operations(request: Request, name: str, account: Viewer) -> list[OperationOut]:
    """History: deploys, upgrades, migrations, backups, restores and rollbacks of the tenant, oldest first."""
    return [operation_out(o) for o in list_operations(context_of(request).engine, name)]


@router.get("/tenants/{name}/backups", response_model=list[BackupOut], tags=["operations"])
def tenant_backups(request: Request, name: str, account: Viewer) -> list[BackupOut]:
    return [backup_out(b) for b in backups_of(context_of(request).engine, name)]


@router.get("/tenants/{name}/requests", response_model=list[RequestOut], tags=["operations"])
def tenant_requests(request: Request, name: str, account: Viewer) -> list[RequestOut]:
    return [request_out(r) for r in requests_of(context_of(request).engine, name)]


@router.post(
    "/tenants/{name}/requests",
    response_model=RequestOut,
    status_code=status.HTTP_201_CREATED,
    tags=["operations"],
)
def ask_operation(request: Request, name: str, asked: RequestIn, account: Operator) -> RequestOut:
    """Ask for a backup, restore, rollback or (Swarm engine) a move of the tenant's data to ``node``; ``reconciler
    run`` carries it out and the row gets the outcome. A move that cannot happen as things stand is 409."""
    _exists(request, name)
    if asked.kind == "restore" and asked.backup_id is None:
        raise SpecError(name, "backup_id", None, "a restore needs backup_id: the id of one of the tenant's backups")
    if asked.kind != "move" and asked.node is not None:
        raise SpecError(name, "node", asked.node, f"node is for a move only, not a {asked.kind}")
    context = context_of(request)
    engine = context.engine
    if asked.kind == "move":
        try:
            request_id = request_move(context, name, asked.node, priority=asked.priority)
        except MoveNotPossible as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    else:
        request_id = create_request(
            engine, name, asked.kind, backup_id=asked.backup_id, restore=asked.restore, priority=asked.priority
        )
    detail = f"request {request_id}" + (f" to node {asked.node}" if asked.kind == "move" else "")
    audit(request, account, f"request.{asked.kind}", f"tenant:{name}", detail=detail)
    found = get_request(engine, request_id)
    assert found is not None
    return request_out(found)


@router.get("/requests/{request_id}", response_model=RequestOut, tags=["operations"])
def operation_request(request: Request, request_id: int, account: Viewer) -> RequestOut:
    found = get_request(context_of(request).engine, request_id) if 0 < request_id < 2**63 else None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"operation request {request_id} does not exist")
    return request_out(found)


@router.post("/tenants/{name}/nudge", response_model=NudgeOut, tags=["operations"])
def nudge_tenant(request: Request, name: str, account: Operator) -> NudgeOut:
    """Ask the running reconciler to reconcile the tenant now (RabbitMQ; without a broker the resync does it)."""
    _exists(request, name)
    nudged = context_of(request).nudge(name, f"api:{account.name}", "nudge")
    audit(request, account, "tenant.nudge", f"tenant:{name}")
    message = "nudge published" if nudged else "no broker configured or reachable; the next resync reconciles it"
    return NudgeOut(nudged=nudged, message=message)


# --- logs, usage ------------------------------------------------------------------------------------------


@router.get(
    "/tenants/{name}/logs",
    response_model=list[LogLine],
    responses={200: {"content": {"text/plain": {}}}},
    tags=["observe"],
)
async def tenant_logs(
    request: Request,
    name: str,
    account: Viewer,
    tail: Annotated[int, Query(ge=1, le=5000)] = 100,
    follow: bool = False,
    max_seconds: Annotated[float, Query(gt=0, le=3600)] = 300.0,
) -> Any:
    """The last lines of each of the tenant's containers (from Loki when configured: of them all together);
    ``follow=true`` streams new lines as text."""
    _exists(request, name)
    context = context_of(request)
    if follow:
        return StreamingResponse(follow_logs(context, name, tail, max_seconds), media_type="text/plain")
    try:
        return await run_in_threadpool(tail_logs, context, name, tail)
    except LokiUnavailable as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None


@router.get("/tenants/{name}/conditions/history", response_model=list[TransitionOut], tags=["observe"])
def condition_history(
    request: Request,
    name: str,
    account: Viewer,
    type: Annotated[str | None, Query(max_length=64, description="only this condition (Ready, ...)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TransitionOut]:
    """Each time one of the tenant's conditions appeared or changed status, newest first (a deleted tenant's too)."""
    found = read_transitions(context_of(request).engine, name, limit, type)
    return [TransitionOut(**{k: v for k, v in vars(r).items() if k != "tenant"}) for r in found]


@router.get("/tenants/{name}/usage", response_model=UsageSeries, tags=["observe"])
def tenant_usage(request: Request, name: str, account: Viewer) -> UsageSeries:
    return usage_of(context_of(request), request.app.state.usage, name)


@router.get("/alerts", response_model=list[AlertOut], tags=["observe"])
def alerts_sent(
    request: Request,
    account: Viewer,
    tenant: Annotated[str | None, Query(max_length=64, description="only alerts naming this tenant")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    """The alerts the runtime raised, newest first, with what became of each."""
    return [AlertOut(**vars(a)) for a in recent_alerts(context_of(request).engine, limit, tenant)]


@router.get("/capacity", response_model=CapacityOut, tags=["observe"])
async def host_capacity(request: Request, account: Viewer) -> CapacityOut:
    """Memory and CPUs of the engine's host: total, reserved by the running tenants' limits, in use."""
    return await run_in_threadpool(capacity, context_of(request))


# --- audit, accounts --------------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], tags=["access"])
def audit_log(
    request: Request,
    account: Admin,
    target: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    return [AuditOut(**vars(r)) for r in list_audit(context_of(request).engine, target, limit)]


@router.get("/me", response_model=AccountOut, tags=["access"])
def me(account: Viewer) -> AccountOut:
    return AccountOut(**{k: v for k, v in vars(account).items() if k in AccountOut.model_fields})


@router.get("/tokens", response_model=list[AccountOut], tags=["access"])
def tokens(request: Request, account: Admin) -> list[AccountOut]:
    return [
        AccountOut(**{k: v for k, v in vars(a).items() if k in AccountOut.model_fields})
        for a in list_accounts(context_of(request).engine)
    ]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["access"])
def new_token(request: Request, asked: TokenIn, account: Admin) -> TokenCreated:
    try:
        created, token = create_token(
            context_of(request).engine, asked.name, asked.role, password=asked.password, locale=asked.locale
        )
    except AccessError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit(request, account, "token.create", f"token:{asked.name}", detail=f"role {asked.role}")
    out = AccountOut(**{k: v for k, v in vars(created).items() if k in AccountOut.model_fields})
    return TokenCreated(account=out, token=token)


@router.delete("/tokens/{name}", response_model=NudgeOut, tags=["access"])
def drop_token(request: Request, name: str, account: Admin) -> NudgeOut:
    if not revoke_token(context_of(request).engine, name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live account {name[:64]!r}")
    audit(request, account, "token.revoke", f"token:{name}")
    return NudgeOut(nudged=False, message=f"account {name!r} revoked")
