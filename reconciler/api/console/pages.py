"""Console pages, server-rendered (Jinja2), readable without JavaScript: login, tenant list, tenant page (status,
pending plan, edit with a plan preview before saving, actions (a data move on the Swarm engine: ``api.moves``),
history, backups, usage charts, log tail).

Registered by ``api.app.create_app`` beside the API and built on the same functions: writes go through
``api.tenants.write_tenant`` (transaction, audit row, nudge), operations are ``operation_requests`` rows, previews
``api.preview``. Every form carries the session's CSRF token; a viewer sees no form that writes, and a write by one
is refused (403) all the same. Words come from the message catalogs (``console.i18n``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from desired_state.access import Account, account_for_password, account_for_token, set_locale
from desired_state.alert_log import recent_alerts
from desired_state.check_results import latest_results
from desired_state.condition_history import read_transitions
from desired_state.identity import backups_of
from desired_state.operation_requests import create_request, requests_of
from desired_state.operations import list_operations
from desired_state.specs import SpecError
from desired_state.status import read_status, read_statuses
from desired_state.tenant_edits import StaleGeneration, StoredTenant, TenantExists, read_tenant, tenant_names
from reconciler.api.auth import audit
from reconciler.api.capacity import capacity
from reconciler.api.check_views import check_out
from reconciler.api.console import forms
from reconciler.api.console.charts import line_chart
from reconciler.api.console.i18n import LOCALES, direction, translator
from reconciler.api.console.session import csrf_ok, csrf_token, logged_in, start
from reconciler.api.context import ApiContext, context_of
from reconciler.api.logs import tail_logs
from reconciler.api.moves import MoveNotPossible, request_move
from reconciler.api.preview import pending_plan, preview_plan
from reconciler.api.tenants import write_tenant
from reconciler.api.usage import usage_of
from reconciler.api.views import plan_out, status_out

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
LOG_LINES = 60


def _page(request: Request, template: str, account: Account | None, status_code: int = 200, **values: Any) -> Response:
    locale = account.locale if account is not None else str(request.session.get("locale", "en"))
    context = {
        "t": translator(locale),
        "lang": locale,
        "dir": direction(locale),
        "account": account,
        "csrf": csrf_token(request),
        "locales": LOCALES,
        **values,
    }
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    return {key: str(value) for key, value in (await request.form()).items()}


def _refused(request: Request, account: Account | None, form: dict[str, str]) -> Response | None:
    """Not logged in: to the login page; a forged form: 403; a viewer's write: 403."""
    if account is None:
        return _to("/login")
    t = translator(account.locale)
    if not csrf_ok(request, form.get("csrf")):
        return _page(request, "error.html", account, 403, message=t("error.csrf"))
    if not account.may("operator"):
        return _page(request, "error.html", account, 403, message=t("error.role", role=account.role))
    return None


async def _operator_form(request: Request) -> tuple[Account, dict[str, str]] | Response:
    """The account and form of a write the console accepts, or the answer refusing it (``_refused``)."""
    account = logged_in(request)
    form = await _form(request)
    refused = _refused(request, account, form)
    if refused is not None or account is None:
        return refused or _to("/login")
    return account, form


def _stored_tenant(context: ApiContext, name: str) -> StoredTenant | None:
    with context.engine.connect() as connection:
        return read_tenant(connection, name)


# --- login --------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return _to("/tenants" if logged_in(request) else "/login")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _page(request, "login.html", None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    if not csrf_ok(request, form.get("csrf")):
        return _page(request, "login.html", None, 403, error="error.csrf")
    engine = context_of(request).engine
    token, name, password = form.get("token", "").strip(), form.get("name", "").strip(), form.get("password", "")
    account = account_for_token(engine, token) if token else account_for_password(engine, name, password)
    if account is None:
        return _page(request, "login.html", None, 401, error="login.failed")
    start(request, account)
    return _to("/tenants")


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    if csrf_ok(request, form.get("csrf")):
        request.session.clear()
    return _to("/login")


@router.post("/locale")
async def choose_locale(request: Request) -> Response:
    account = logged_in(request)
    form = await _form(request)
    locale = form.get("locale", "en")
    if account is not None and csrf_ok(request, form.get("csrf")) and locale in LOCALES:
        set_locale(context_of(request).engine, account.name, locale)
    back = form.get("back", "/tenants")
    return _to(back if back.startswith("/") and not back.startswith("//") else "/tenants")


# --- tenants ------------------------------------------------------------------------------------------------


@router.get("/tenants", response_class=HTMLResponse)
def tenant_list(request: Request, q: str = "", phase: str = "") -> Response:
    account = logged_in(request)
    if account is None:
        return _to("/login")
    engine = context_of(request).engine
    statuses = {s.tenant: s for s in read_statuses(engine)}
    rows: list[dict[str, Any]] = []
    for name, domain, state, generation in tenant_names(engine):
        found = status_out(statuses.get(name), generation)
        shown_phase = found.phase if found else "Pending"
        if q and q.lower() not in name.lower() and q.lower() not in domain.lower():
            continue
        if phase and phase != shown_phase:
            continue
        rows.append({"name": name, "domain": domain, "state": state, "phase": shown_phase, "status": found})
    phases = sorted({str(r["phase"]) for r in rows} | ({phase} if phase else set()))
    try:
        host = capacity(context_of(request))
    except Exception:  # the engine may be unreachable: the list is still worth showing
        host = None
    return _page(request, "tenants.html", account, tenants=rows, q=q, phase=phase, phases=phases, host=host)


@router.post("/tenants", response_class=HTMLResponse)
async def create_tenant(request: Request) -> Response:
    asked = await _operator_form(request)
    if isinstance(asked, Response):
        return asked
    account, form = asked
    document = forms.new_document(form)
    try:
        write_tenant(request, account, "tenant.create", document, exists=False, expected=None)
    except (SpecError, TenantExists) as exc:
        return _page(request, "error.html", account, 422, message=str(exc))
    return _to(f"/tenants/{quote(document['name'])}")


async def _tenant_page(
    request: Request,
    account: Account,
    name: str,
    *,
    proposed: dict[str, Any] | None = None,
    preview: Any = None,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context = context_of(request)
    stored = _stored_tenant(context, name)
    if stored is None:
        t = translator(account.locale)
        return _page(request, "error.html", account, 404, message=t("error.no_tenant", name=name))
    plan, plan_error = None, None
    try:
        plan = plan_out(await run_in_threadpool(pending_plan, context, name), name)
    except Exception as exc:  # the engine may be unreachable: the page still shows the stored state
        plan_error = f"{type(exc).__name__}: {exc}"[:300]
    try:
        logs = [f"{line.container} | {line.text}" for line in await run_in_threadpool(tail_logs, context, name, 20)]
    except Exception as exc:  # as above
        logs = [f"({type(exc).__name__})"]
    usage = usage_of(context, request.app.state.usage, name)
    t = translator(account.locale)
    return _page(
        request,
        "tenant.html",
        account,
        status_code,
        name=name,
        stored=stored,
        document=proposed or stored.document,
        status=status_out(read_status(context.engine, name), stored.generation),
        plan=plan,
        plan_error=plan_error,
        preview=preview,
        error=error,
        notice=notice,
        operations=list(reversed(list_operations(context.engine, name)))[:30],
        backups=list(reversed(backups_of(context.engine, name)))[:20],
        requests=list(reversed(requests_of(context.engine, name)))[:20],
        usage=usage,
        memory_chart=line_chart(usage.series, "memory", t("usage.memory")),
        cpu_chart=line_chart(usage.series, "cpu", t("usage.cpu")),
        logs=logs[-LOG_LINES:],
        alerts=recent_alerts(context.engine, 20, f"tenant {name}"),
        transitions=read_transitions(context.engine, name, 30),
        checks=[check_out(stored) for stored in latest_results(context.engine, name)],
        moves=context.settings.engine == "swarm",
    )


@router.get("/tenants/{name}", response_class=HTMLResponse)
async def tenant_page(request: Request, name: str, notice: str = "") -> Response:
    account = logged_in(request)
    if account is None:
        return _to("/login")
    return await _tenant_page(request, account, name, notice=notice or None)


@router.post("/tenants/{name}/edit", response_class=HTMLResponse)
async def edit_tenant(request: Request, name: str) -> Response:
    asked = await _operator_form(request)
    if isinstance(asked, Response):
        return asked
    account, form = asked
    context = context_of(request)
    stored = _stored_tenant(context, name)
    if stored is None:
        return _to("/tenants")
    document = forms.edited_document(stored.document, form)
    try:
        if form.get("do") == "save":
            expected = int(form["generation"]) if form.get("generation", "").isdigit() else stored.generation
            write_tenant(request, account, "tenant.edit", document, exists=True, expected=expected)
            return _to(f"/tenants/{quote(name)}?notice=saved")
        preview = plan_out(await run_in_threadpool(preview_plan, context, name, document), name)
    except (SpecError, StaleGeneration) as exc:
        return await _tenant_page(request, account, name, proposed=document, error=str(exc), status_code=422)
    return await _tenant_page(request, account, name, proposed=document, preview=preview)


@router.post("/tenants/{name}/action", response_class=HTMLResponse)
async def tenant_action(request: Request, name: str) -> Response:
    asked = await _operator_form(request)
    if isinstance(asked, Response):
        return asked
    account, form = asked
    context = context_of(request)
    stored = _stored_tenant(context, name)
    if stored is None:
        return _to("/tenants")
    action = form.get("do", "")
    if action in ("stop", "start"):
        document = {**stored.document, "state": "stopped" if action == "stop" else "running"}
        write_tenant(request, account, f"tenant.{action}", document, exists=True, expected=stored.generation)
    elif action == "nudge":
        context.nudge(name, f"console:{account.name}", "nudge")
        audit(request, account, "tenant.nudge", f"tenant:{name}")
    elif action in ("backup", "restore", "rollback"):
        backup_id = int(form["backup_id"]) if form.get("backup_id", "").isdigit() else None
        if action == "restore" and backup_id is None:
            return await _tenant_page(request, account, name, error="restore: backup_id", status_code=422)
        request_id = create_request(context.engine, name, action, backup_id=backup_id)
        audit(request, account, f"request.{action}", f"tenant:{name}", detail=f"request {request_id}")
    elif action == "move":
        try:
            node = form.get("node", "").strip()
            request_id = request_move(context, name, node)
        except (SpecError, MoveNotPossible) as exc:
            refused = 422 if isinstance(exc, SpecError) else 409
            return await _tenant_page(request, account, name, error=str(exc), status_code=refused)
        audit(request, account, "request.move", f"tenant:{name}", detail=f"request {request_id} to node {node}")
    else:
        return _to(f"/tenants/{quote(name)}")
    return _to(f"/tenants/{quote(name)}?notice={quote(action)}")
