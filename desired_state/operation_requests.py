"""Operation requests: the web UI inserts a backup, restore or rollback request; the reconciler claims
(``status`` pending → running) and finishes it (``reconciler.runtime.operations.requests``, run by the request
pool of ``runtime.operations.request_pool``, which picks pending rows by ``priority`` then age).

``priority`` is written by the UI and read like any other UI value: a row whose priority is not an integer within
``MIN_REQUEST_PRIORITY``..``MAX_REQUEST_PRIORITY`` carries a ``problem`` (the pool answers it failed with that
message) instead of failing the read of every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from desired_state.bounds import MAX_REQUEST_PRIORITY, MIN_REQUEST_PRIORITY
from desired_state.operations import clip
from desired_state.specs import shorten
from desired_state.tables import OperationRequest

REQUEST_KINDS = ("backup", "restore", "rollback", "move")


@dataclass(frozen=True)
class RequestRecord:
    id: int
    tenant: str
    kind: str
    backup_id: int | None
    restore: bool
    status: str
    requested_at: datetime | None
    picked_at: datetime | None
    done_at: datetime | None
    error: str | None
    operation_id: int | None
    # Higher first; 0 when the stored value is unusable (then ``problem`` says why).
    priority: int = 0
    # For a move: the target node.
    node: str | None = None
    # Why this row cannot be carried out as written (a hostile priority), naming the request, tenant and field.
    problem: str | None = None


def request_priority(request_id: int, tenant: object, value: object) -> tuple[int, str | None]:
    """The priority of a stored row and, for a value out of bounds or not an integer, the error for that row."""
    if isinstance(value, int) and not isinstance(value, bool) and MIN_REQUEST_PRIORITY <= value <= MAX_REQUEST_PRIORITY:
        return value, None
    return 0, (
        f"request {request_id} of tenant {shorten(repr(tenant))}: field priority = {shorten(repr(value))} is not "
        f"an integer from {MIN_REQUEST_PRIORITY} to {MAX_REQUEST_PRIORITY} (higher runs first; default 0)"
    )


def _request(row: Any) -> RequestRecord:
    priority, problem = request_priority(row.id, row.tenant, row.priority)
    return RequestRecord(
        id=row.id,
        tenant=row.tenant,
        kind=row.kind,
        backup_id=row.backup_id,
        restore=bool(row.restore),
        status=row.status,
        requested_at=row.requested_at,
        picked_at=row.picked_at,
        done_at=row.done_at,
        error=row.error,
        operation_id=row.operation_id,
        priority=priority,
        problem=problem,
        node=row.node,
    )


def create_request(
    engine: Engine,
    tenant: str,
    kind: str,
    *,
    backup_id: int | None = None,
    restore: bool = False,
    priority: int = 0,
    node: str | None = None,
) -> int:
    """What the UI does (used by tests and scripts): insert a pending request."""
    now = datetime.now(UTC)
    values = {
        "tenant": tenant,
        "kind": kind,
        "backup_id": backup_id,
        "restore": restore,
        "priority": priority,
        "node": node,
        "status": "pending",
        "requested_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as connection:
        return int(connection.execute(insert(OperationRequest).values(values)).inserted_primary_key[0])  # type: ignore[index]


def pending_requests(engine: Engine) -> list[RequestRecord]:
    """Every pending request, oldest (lowest id) first; the request pool orders them by priority itself, so a
    hostile value cannot disturb the query (SQLite lets an INTEGER column hold text)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(OperationRequest).where(OperationRequest.status == "pending").order_by(OperationRequest.id)
        )
        return [_request(row) for row in rows]


def claim_request(engine: Engine, request_id: int) -> bool:
    """Move a pending request to running; False if another reconciler (or a cancel by the UI) got there first."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        claimed = connection.execute(
            update(OperationRequest)
            .where(OperationRequest.id == request_id, OperationRequest.status == "pending")
            .values(status="running", picked_at=now, updated_at=now)
        ).rowcount
    return bool(claimed)


def finish_request(
    engine: Engine, request_id: int, status: str, *, error: str | None = None, operation_id: int | None = None
) -> bool:
    """Answer a claimed request. Only a row still ``running`` is answered: if a new leader's recovery closed it as
    abandoned meanwhile (this process lost the lock), that answer stands; returns whether this one was written."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        result = connection.execute(
            update(OperationRequest)
            .where(OperationRequest.id == request_id, OperationRequest.status == "running")
            .values(status=status, error=clip(error), operation_id=operation_id, done_at=now, updated_at=now)
        )
    return bool(result.rowcount)


def get_request(engine: Engine, request_id: int) -> RequestRecord | None:
    with engine.connect() as connection:
        row = connection.execute(select(OperationRequest).where(OperationRequest.id == request_id)).first()
    return _request(row) if row is not None else None


def requests_of(engine: Engine, tenant: str) -> list[RequestRecord]:
    """Every request of one tenant (any status), oldest first: the UI's and the API's view of outcomes."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(OperationRequest).where(OperationRequest.tenant == tenant).order_by(OperationRequest.id)
        )
        return [_request(row) for row in rows]
