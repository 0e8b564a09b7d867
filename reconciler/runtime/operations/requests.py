"""Operation requests: the web UI asks for a backup, a restore, a rollback or a data move (Swarm) by inserting an
``operation_requests`` row; the request pool (``operations.request_pool``) picks pending rows by priority then age,
claims each one (pending → running in one UPDATE, so two reconcilers never both act on it) and hands it to
``carry_out`` on a thread of its own, which does the work through ``operations.tenant_ops`` (a move through
``operations.data_move``) and writes the outcome back (succeeded or failed with the error, ``done_at`` and the
``operations`` row that did the work).

``runtime.wiring`` calls ``register_request_pool``: ``reconciler run`` polls every
``RECONCILER_OPERATION_POLL_INTERVAL`` seconds while it leads. ``reconciler requests`` runs ``process_requests``
once: the same pool, waiting for every request it started.
"""

from __future__ import annotations

import logging
from functools import partial

from desired_state.operation_requests import REQUEST_KINDS, RequestRecord, finish_request
from desired_state.operations import list_operations
from reconciler.core.errors import ReconcileError
from reconciler.runtime.operations.data_move import move_data
from reconciler.runtime.operations.request_pool import POLL_JOB, JobScheduler, RequestPool
from reconciler.runtime.operations.tenant_ops import TenantOps

log = logging.getLogger("reconciler.requests")


def register_request_pool(ops: TenantOps, scheduler: JobScheduler) -> RequestPool:
    """The pool of ``reconciler run``: polled by the scheduler (so only while this instance leads), refilled as
    requests end while the scheduler runs, closed when the scheduler shuts down."""
    config = ops.config
    pool = RequestPool(ops.engine, partial(carry_out, ops), config.request_concurrency, active=scheduler.is_active)
    scheduler.add_interval(POLL_JOB, config.request_poll_interval, pool.dispatch)
    scheduler.on_shutdown(lambda: pool.close(config.request_shutdown_grace))
    return pool


def process_requests(ops: TenantOps) -> int:
    """Carry out the requests pending now (``RECONCILER_OPERATION_CONCURRENCY`` tenants at a time, by priority then
    age) and wait for them; returns how many this call answered."""
    return RequestPool(ops.engine, partial(carry_out, ops), ops.config.request_concurrency).drain()


def carry_out(ops: TenantOps, request: RequestRecord) -> None:
    """Do one claimed request and answer it on its row; a bug is answered too (``internal error``) and re-raised."""
    log.info("request %d: %s of tenant %s", request.id, request.kind, request.tenant, extra={"tenant": request.tenant})
    try:
        _dispatch(ops, request)
    except (ReconcileError, ValueError) as exc:
        finish_request(ops.engine, request.id, "failed", error=str(exc), operation_id=_operation_of(ops, request))
        log.error("request %d (%s of %s) failed: %s", request.id, request.kind, request.tenant, exc)
    except Exception as exc:
        # A bug must not leave the row "running" forever: report it on the row, then let the caller log it.
        finish_request(ops.engine, request.id, "failed", error=f"internal error: {type(exc).__name__}: {exc}")
        raise
    else:
        if not finish_request(ops.engine, request.id, "succeeded", operation_id=_operation_of(ops, request)):
            log.warning(
                "request %d (%s of %s) finished, but its row was closed meanwhile (another leader's recovery); "
                "its answer there stands",
                request.id,
                request.kind,
                request.tenant,
                extra={"tenant": request.tenant},
            )


def _dispatch(ops: TenantOps, request: RequestRecord) -> None:
    if request.kind == "backup":
        ops.backup(request.tenant, "request", request_id=request.id)
    elif request.kind == "restore":
        if request.backup_id is None:
            raise ValueError("a restore request needs backup_id (the id of a succeeded row in backups)")
        ops.restore(request.tenant, request.backup_id, trigger="request", request_id=request.id)
    elif request.kind == "rollback":
        ops.rollback(request.tenant, restore=request.restore, trigger="request", request_id=request.id)
    elif request.kind == "move":
        if not request.node:
            raise ValueError("a move request needs node (the hostname of the Swarm node the data moves to)")
        move_data(ops, request.tenant, request.node, trigger="request", request_id=request.id)
    else:
        raise ValueError(f"kind {request.kind!r} is not one of {', '.join(REQUEST_KINDS)}")


def _operation_of(ops: TenantOps, request: RequestRecord) -> int | None:
    """The operation row that carried the request out (the last one recorded for it)."""
    found = [o.id for o in list_operations(ops.engine, request.tenant) if o.request_id == request.id]
    return found[-1] if found else None
