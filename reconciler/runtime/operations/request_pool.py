"""The request pool: operation requests of different tenants carried out side by side, by priority then age.

Built by ``runtime.wiring`` for ``reconciler run`` (``register_request_pool``: the scheduler's poll job calls
``dispatch``) and by ``operations.requests.process_requests`` for the one-shot ``reconciler requests`` (``drain``).
``dispatch`` never waits for a request: it reads the pending rows, answers the unusable ones (a hostile
``priority``) failed, picks what may start now (``pick``), claims each (pending → running in one UPDATE: a row is
acted on once, whoever else polls) and starts it on a thread of its own, at most ``limit`` at a time. When a
request ends, its thread dispatches again at once (while the scheduler runs), so a freed slot goes to the
highest-priority eligible request without waiting for the next poll, and a long restore of one tenant never
delays another tenant's backup.

Never two requests of one tenant at once: a tenant's next request waits until the running one has ended, and a
tenant's requests run in the order they were made (a backup asked for before a restore archives the data the
restore replaces). The work itself keeps the per-tenant locks it always had: a backup or restore holds the backup
service's tenant lock (so a scheduled backup waits), a restore holds the tenant against passes through its
running ``operations`` row, and the pass that follows takes the tenant's pass lock (``passes.locks``). Requests
ran beside the loop's passes before this pool existed; running several tenants' requests at once changes nothing
for any one tenant.

Shutdown (``close``): no new request starts; running ones get ``RECONCILER_OPERATION_SHUTDOWN_GRACE`` seconds to
end; a request still running after that keeps its ``running`` row, which the next leader (or CLI writer) closes
as failed and abandoned before it acts (``desired_state.operation_recovery``), as after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from sqlalchemy import Engine

from desired_state.operation_requests import RequestRecord, claim_request, finish_request, pending_requests

log = logging.getLogger("reconciler.requests")

POLL_JOB = "operation-requests"

Work = Callable[[RequestRecord], None]


def _never() -> bool:
    return False


def pick(pending: Sequence[RequestRecord], busy: Collection[str]) -> list[RequestRecord]:
    """The requests that may start now, best first: the oldest pending request of each tenant not in ``busy``.

    Tenants are ranked by the highest priority among their pending requests, then by the age (id) of the oldest
    request with that priority: an urgent request lifts its tenant's turn even behind a less urgent one of the
    same tenant, which still runs first.
    """
    first: dict[str, RequestRecord] = {}
    rank: dict[str, tuple[int, int]] = {}
    for request in sorted(pending, key=lambda r: r.id):
        if request.tenant in busy:
            continue
        first.setdefault(request.tenant, request)
        key = (-request.priority, request.id)
        rank[request.tenant] = min(rank.get(request.tenant, key), key)
    return [first[tenant] for tenant in sorted(first, key=lambda tenant: rank[tenant])]


class RequestPool:
    """At most ``limit`` requests at once, never two of one tenant; ``active`` says whether an ended request may
    start the next one right away (the scheduler is running: not paused on a standby, not stopped). Without it
    only ``dispatch`` and ``drain`` start requests."""

    def __init__(self, engine: Engine, work: Work, limit: int, *, active: Callable[[], bool] = _never) -> None:
        self.engine = engine
        self.work = work
        self.limit = limit
        self.active = active
        self._cond = threading.Condition()
        self._running: dict[int, RequestRecord] = {}
        # One dispatch at a time (the poll job and the threads of ended requests): a request is started once.
        self._dispatching = threading.Lock()
        self._closed = False

    def running(self) -> dict[int, str]:
        """Request id -> tenant of the requests running now."""
        with self._cond:
            return {request_id: r.tenant for request_id, r in self._running.items()}

    def dispatch(self, up_to: int | None = None) -> int:
        """Start what may start now (requests with ids up to ``up_to``, when given); returns how many requests
        were started or answered as unusable."""
        with self._dispatching:
            if self._closed:
                return 0
            pending = [r for r in pending_requests(self.engine) if up_to is None or r.id <= up_to]
            answered = sum(self._refuse(r) for r in pending if r.problem is not None)
            with self._cond:
                busy = {r.tenant for r in self._running.values()}
                slots = self.limit - len(self._running)
            started = 0
            for request in pick([r for r in pending if r.problem is None], busy):
                if started >= slots:
                    break
                # False: another reconciler, or the UI cancelling by deleting the row, got there first.
                if claim_request(self.engine, request.id):
                    self._start(request)
                    started += 1
            return answered + started

    def drain(self) -> int:
        """Carry out every request pending now, ``limit`` at a time, and wait for them (``reconciler requests``);
        requests inserted meanwhile are left to the next call. Returns how many were answered."""
        up_to = max((r.id for r in pending_requests(self.engine)), default=0)
        handled = 0
        while True:
            count = self.dispatch(up_to)
            handled += count
            with self._cond:
                if not self._running and count == 0:
                    return handled
                if self._running:
                    # Until a request ends: its slot, and its tenant, are free again.
                    self._cond.wait()

    def close(self, grace: float) -> list[int]:
        """Start nothing more; wait up to ``grace`` seconds for the running requests. Returns the ids of those still
        running (their rows stay ``running`` for the next leader's recovery)."""
        with self._dispatching:
            self._closed = True
        deadline = time.monotonic() + grace
        with self._cond:
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            left_running = sorted(self._running.values(), key=lambda r: r.id)
        for r in left_running:
            log.warning(
                "request %d (%s of %s) still running at shutdown after %gs: its row stays running; the next leader "
                "closes it as abandoned",
                r.id,
                r.kind,
                r.tenant,
                grace,
                extra={"tenant": r.tenant},
            )
        return [r.id for r in left_running]

    def _refuse(self, request: RequestRecord) -> int:
        if not claim_request(self.engine, request.id):
            return 0
        finish_request(self.engine, request.id, "failed", error=request.problem)
        log.error("request %d refused: %s", request.id, request.problem, extra={"tenant": request.tenant})
        return 1

    def _start(self, request: RequestRecord) -> None:
        with self._cond:
            self._running[request.id] = request
        # Daemon: a shutdown waits ``grace`` for it in ``close``, not for ever at interpreter exit.
        threading.Thread(target=self._run, args=(request,), name=f"request-{request.id}", daemon=True).start()

    def _run(self, request: RequestRecord) -> None:
        try:
            self.work(request)
        except Exception:
            log.exception("request %d (%s of %s): internal error", request.id, request.kind, request.tenant)
        finally:
            with self._cond:
                del self._running[request.id]
                self._cond.notify_all()
        if self.active():
            try:
                self.dispatch()
            except Exception:  # the database may be away for a moment: the next poll tries again
                log.exception("dispatching operation requests failed")


class JobScheduler(Protocol):
    """What the pool needs of ``runtime.service.scheduler.Scheduler``."""

    def add_interval(self, job_id: str, seconds: float, func: Callable[[], object], *, jitter: float = 0.0) -> None: ...

    def is_active(self) -> bool: ...

    def on_shutdown(self, func: Callable[[], object]) -> None: ...
