"""Response and request bodies of the HTTP API, beside the input models the loader validates with.

Tenant documents are ``desired_state.inputs.TenantInput`` itself (and ``CatalogEntry`` for the catalog), so the
OpenAPI document describes exactly what the loader accepts. The rest are read models built from the store's
records by ``reconciler.api.views``. Used by the routers (``api.tenants``, ``api.resources``) and the console.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from desired_state.inputs import TenantInput

# A Swarm node's hostname (what ``docker node ls`` shows and the column holds, varchar(255)).
NODE_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$"
NODE_RULE = "a Swarm node's hostname: letters, digits, '.', '-' and '_', 1 to 255 characters, such as n3"
_NODE = re.compile(NODE_PATTERN)


def node_problem(value: object) -> str | None:
    """Why ``value`` is not a node name, or None."""
    if isinstance(value, str) and _NODE.fullmatch(value):
        return None
    return f"node must be {NODE_RULE}"


class Problem(BaseModel):
    """An error: ``message`` says what happened and what to do."""

    message: str


class FieldProblem(BaseModel):
    """One rejected field: the same words the loader writes into the tenant's status (``last_error``)."""

    tenant: str
    field: str
    value: str = Field(description="the rejected value, shortened; never an environment value")
    message: str = Field(description="what is accepted")
    error: str = Field(description="the whole message, as the loader writes it")


class ValidationProblem(BaseModel):
    message: str
    problems: list[FieldProblem]


# The error answers every API route may give (declared once per router, so the OpenAPI document lists them).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem},
    401: {"model": Problem},
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": ValidationProblem},
}


class ConditionOut(BaseModel):
    type: str
    status: str
    reason: str
    message: str = ""
    last_transition: datetime | None = None


class StatusOut(BaseModel):
    phase: str
    in_sync: bool = Field(description="the reconciler acted on the tenant's current generation")
    observed_generation: int | None = None
    conditions: list[ConditionOut] = Field(default_factory=list)
    last_error: str | None = None
    last_reconciled_at: datetime | None = None


class TenantSummary(BaseModel):
    name: str
    domain: str
    state: str
    generation: int
    status: StatusOut | None = None


class TenantOut(BaseModel):
    """A tenant as stored: ``document`` is what the UI (or an import) wrote; ``generation`` is also the ETag."""

    name: str
    generation: int
    uid: str | None = None
    document: TenantInput | dict[str, Any] = Field(
        description="the stored document; a row the loader rejects is shown as stored (see status.last_error)"
    )
    status: StatusOut | None = None


class WriteResult(BaseModel):
    tenant: TenantOut
    changed: bool
    nudged: bool = Field(description="a 'reconcile now' nudge was published after the commit")


class PlanLine(BaseModel):
    action: str
    kind: str
    name: str
    reason: str
    text: str


class PlanOut(BaseModel):
    """A plan for one tenant, change by change, as ``reconciler plan`` prints it."""

    tenant: str
    changes: list[PlanLine]
    refused: list[str]
    blocked: list[str]
    errors: list[str]
    summary: dict[str, int]
    lines: list[str]


class PreviewRequest(BaseModel):
    """A proposed edit: a whole document (as for PUT), a merge patch (as for PATCH) or a deletion."""

    document: TenantInput | None = None
    patch: dict[str, Any] | None = None
    delete: bool = False


class CatalogOut(BaseModel):
    name: str
    image: str
    port: int
    health: str
    memory: int
    cpus: float
    migrate: list[str] | None = None
    public: bool


class OperationOut(BaseModel):
    id: int
    tenant: str
    kind: str
    status: str
    service: str | None = None
    from_image: str | None = None
    to_image: str | None = None
    trigger: str | None = None
    backup_id: int | None = None
    request_id: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class BackupOut(BaseModel):
    id: int
    tenant: str
    status: str
    file_name: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    trigger: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    # The last restore test of the archive into a scratch volume (docs/operations-backups.md), if any.
    verified_at: datetime | None = None
    verify_status: str | None = None
    verify_error: str | None = None


class RequestIn(BaseModel):
    kind: Literal["backup", "restore", "rollback", "move"]
    backup_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="restore: the backup to restore")
    restore: bool = Field(default=False, description="rollback: also restore the backup taken before the upgrade")
    priority: int = Field(default=0, ge=-100, le=100)
    node: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=NODE_PATTERN,
        description="move (Swarm engine only): the hostname of the node the tenant's data moves to",
    )

    @field_validator("node", mode="before")
    @classmethod
    def _node_name(cls, value: object) -> object:
        # Before the pattern, so a bad name is told what is accepted rather than shown a regular expression.
        problem = node_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value


class RequestOut(BaseModel):
    id: int
    tenant: str
    kind: str
    status: str
    backup_id: int | None = None
    restore: bool = False
    priority: int = 0
    requested_at: datetime | None = None
    picked_at: datetime | None = None
    done_at: datetime | None = None
    error: str | None = None
    operation_id: int | None = None
    node: str | None = Field(default=None, description="move: the node the tenant's data moves to")


class UsageOut(BaseModel):
    service: str
    memory_bytes: int
    memory_limit_bytes: int | None = None
    cpu_cores: float | None = None
    containers: int
    collected_at: datetime


class UsagePoint(BaseModel):
    at: datetime
    memory_bytes: int
    cpu_cores: float | None = None


class UsageSeries(BaseModel):
    tenant: str
    source: Literal["prometheus", "table"]
    now: list[UsageOut]
    series: list[UsagePoint]


class LogLine(BaseModel):
    container: str
    text: str


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    before_digest: str | None = None
    after_digest: str | None = None
    detail: str | None = None


class NudgeOut(BaseModel):
    nudged: bool
    message: str


class AccountOut(BaseModel):
    name: str
    role: str
    locale: str
    has_password: bool
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenIn(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    role: Literal["viewer", "operator", "admin"]
    locale: Literal["en", "fa"] = "en"
    password: str | None = Field(default=None, min_length=10, max_length=1024)


class TokenCreated(BaseModel):
    account: AccountOut
    token: str = Field(description="shown this once; only its SHA-256 is stored")


class AlertOut(BaseModel):
    id: int
    at: datetime
    outcome: str = Field(
        description="queued (handed to the Telegram sender, not finished yet), sent (Telegram took it), failed "
        "(every attempt failed: see error), logged (no bot configured) or dropped (rate limit or backlog)"
    )
    text: str
    attempts: int | None = Field(default=None, description="sent or failed: how many sends were tried")
    error: str | None = Field(default=None, description="failed: the last attempt's error, shortened, never the token")
    finished_at: datetime | None = Field(default=None, description="sent or failed: when the sender was done")


class TransitionOut(BaseModel):
    """A condition appeared or changed status (``condition_transitions``, docs/schema.md)."""

    id: int
    type: str
    status: str = Field(description="True, False or Unknown")
    reason: str
    message: str = Field(description="shortened to 500 characters")
    at: datetime


class CheckOut(BaseModel):
    """One run of one check (``tenant_checks``, docs/schema.md; docs/operations.md "Checks")."""

    id: int
    service: str
    check: str
    image: str = Field(description="the version that served the check ('+' between the two of a weighted service)")
    outcome: str = Field(description="passed or failed")
    latency_seconds: float
    detail: str = Field(description="what was judged, shortened; never a request header")
    trigger: str = Field(description="rollout, upgrade, rollback, schedule or manual")
    at: datetime


class CapacityOut(BaseModel):
    """The engine's host: what it has, what the running tenants' limits reserve, what they use now."""

    source: str = Field(
        description="prometheus: total and in use are the host's (node exporter); engine: total from the engine's "
        "/info, in use the tenants' (tenant_usages)"
    )
    memory_total_bytes: int
    cpus_total: int
    memory_reserved_bytes: int
    cpus_reserved: float
    memory_used_bytes: int
    cpus_used: float
    tenants_running: int
