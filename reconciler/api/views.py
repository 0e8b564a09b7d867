"""The store's records as the API's read models (``api.models``): statuses, tenants, plans, history, backups.

Pure conversions, called by the routers and the console; env values are shown to operators and admins only
(viewers see the variable names), the way ``reconciler plan`` shows keys and a digest unless asked otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from desired_state.access import Account
from desired_state.backups import BackupRecord
from desired_state.inputs import TenantInput
from desired_state.model import TenantStatus
from desired_state.operation_requests import RequestRecord
from desired_state.operations import OperationRecord
from desired_state.tenant_edits import StoredTenant
from reconciler.api.models import (
    BackupOut,
    ConditionOut,
    OperationOut,
    PlanLine,
    PlanOut,
    RequestOut,
    StatusOut,
    TenantOut,
)
from reconciler.core.plan import Plan
from reconciler.core.render_plan import render_text

HIDDEN = "<hidden>"


def status_out(status: TenantStatus | None, generation: int) -> StatusOut | None:
    if status is None:
        return None
    return StatusOut(
        phase=status.phase,
        in_sync=status.observed_generation == generation,
        observed_generation=status.observed_generation,
        # Field by field: dataclasses.asdict deep-copies, and was most of listing 500 tenants.
        conditions=[
            ConditionOut(
                type=c.type, status=c.status, reason=c.reason, message=c.message, last_transition=c.last_transition
            )
            for c in status.conditions
        ],
        last_error=status.last_error,
        last_reconciled_at=status.last_reconciled_at,
    )


def shown_document(document: Mapping[str, Any], account: Account) -> dict[str, Any]:
    """The stored document; for a viewer every env value replaced by ``<hidden>``."""
    shown = dict(document)
    if account.may("operator"):
        return shown
    services = {}
    for name, service in dict(shown.get("services") or {}).items():
        service = dict(service)
        env = service.get("env")
        if isinstance(env, Mapping):
            service["env"] = {key: HIDDEN for key in env}
        elif env is not None:
            service["env"] = HIDDEN
        services[name] = service
    shown["services"] = services
    return shown


def tenant_out(stored: StoredTenant, status: TenantStatus | None, account: Account) -> TenantOut:
    document: TenantInput | dict[str, Any] = shown_document(stored.document, account)
    # A stored document the loader rejects is shown as stored: the status says what is wrong with it.
    with contextlib.suppress(ValidationError):
        document = TenantInput.model_validate(document)
    return TenantOut(
        name=stored.document["name"],
        generation=stored.generation,
        uid=stored.uid,
        document=document,
        status=status_out(status, stored.generation),
    )


def plan_out(plan: Plan, tenant: str) -> PlanOut:
    mine = plan.for_tenant(tenant)
    text = render_text(mine)
    return PlanOut(
        tenant=tenant,
        changes=[
            PlanLine(action=c.action.value, kind=c.kind, name=c.name, reason=c.reason, text=c.describe())
            for c in mine.changes
        ],
        refused=[f"{r.change.describe()}: {r.policy}: {r.reason}" for r in mine.refused],
        blocked=[f"{b.kind}: {b.reason}: {b.message}" for b in mine.blocked],
        errors=list(plan.errors),
        summary=mine.counts(),
        lines=[line for line in text.splitlines() if line.strip()],
    )


def operation_out(record: OperationRecord) -> OperationOut:
    fields = asdict(record)
    fields.pop("output", None)
    return OperationOut(**fields)


def backup_out(record: BackupRecord) -> BackupOut:
    fields = {key: value for key, value in asdict(record).items() if key in BackupOut.model_fields}
    return BackupOut(**fields)


def request_out(record: RequestRecord) -> RequestOut:
    fields = {key: value for key, value in asdict(record).items() if key in RequestOut.model_fields}
    return RequestOut(**fields)
