"""Operation requests: the web UI asks for a backup, a restore or a rollback by inserting an ``operation_requests``
row; ``reconciler run`` (the leader) polls for pending rows, claims each one (pending → running, so two reconcilers
never both act on it), carries it out through ``operations.tenant_ops`` and writes the outcome back (succeeded or
failed with the error, ``done_at`` and the ``operations`` row that did the work).

Run by the scheduler every ``RECONCILER_OPERATION_POLL_INTERVAL`` seconds, and by ``reconciler requests`` once.
"""

from __future__ import annotations

import logging

from desired_state.operation_requests import (
    REQUEST_KINDS,
    RequestRecord,
    claim_request,
    finish_request,
    pending_requests,
)
from desired_state.operations import list_operations
from reconciler.core.errors import ReconcileError
from reconciler.runtime.operations.tenant_ops import TenantOps

log = logging.getLogger("reconciler.requests")


def process_requests(ops: TenantOps) -> int:
    """Carry out every pending request, oldest first; returns how many this call handled."""
    handled = 0
    for request in pending_requests(ops.engine):
        if not claim_request(ops.engine, request.id):
            continue
        handled += 1
        log.info(
            "request %d: %s of tenant %s", request.id, request.kind, request.tenant, extra={"tenant": request.tenant}
        )
        try:
            _carry_out(ops, request)
        except (ReconcileError, ValueError) as exc:
            finish_request(ops.engine, request.id, "failed", error=str(exc), operation_id=_operation_of(ops, request))
            log.error("request %d (%s of %s) failed: %s", request.id, request.kind, request.tenant, exc)
        except Exception as exc:
            # A bug must not leave the row "running" forever: report it on the row, then let the job log it.
            finish_request(ops.engine, request.id, "failed", error=f"internal error: {type(exc).__name__}: {exc}")
            raise
        else:
            finish_request(ops.engine, request.id, "succeeded", operation_id=_operation_of(ops, request))
    return handled


def _carry_out(ops: TenantOps, request: RequestRecord) -> None:
    if request.kind == "backup":
        ops.backup(request.tenant, "request", request_id=request.id)
    elif request.kind == "restore":
        if request.backup_id is None:
            raise ValueError("a restore request needs backup_id (the id of a succeeded row in backups)")
        ops.restore(request.tenant, request.backup_id, trigger="request", request_id=request.id)
    elif request.kind == "rollback":
        ops.rollback(request.tenant, restore=request.restore, trigger="request", request_id=request.id)
    else:
        raise ValueError(f"kind {request.kind!r} is not one of {', '.join(REQUEST_KINDS)}")


def _operation_of(ops: TenantOps, request: RequestRecord) -> int | None:
    """The operation row that carried the request out (the last one recorded for it)."""
    found = [o.id for o in list_operations(ops.engine, request.tenant) if o.request_id == request.id]
    return found[-1] if found else None
