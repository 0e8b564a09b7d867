"""Alerts: operators learn about state transitions on Telegram (or in the log when no bot is configured).

Raised by the reconcile pass's status hook (tenant degraded and recovered, DNS conflict, data volume lost or
another tenant's), by the loop (mass
delete refused) and by the service (leader change). Only transitions alert: the tenant hooks compare the stored
status with the new one, and every alert key remembers its last state, so a repeat is dropped. A token bucket
caps the messages per minute. Messages are sent by one dedicated thread with its own asyncio loop
(python-telegram-bot is async, ``telemetry.telegram``), so a slow or unreachable Bot API never slows a pass. The
bot token is never logged: error texts are scrubbed of it before they reach the log.

Every alert is stored (the ``record`` hook: ``alert_events``, for the HTTP API and the console), and what became of
a queued one once the sending thread is done with it (the ``delivered`` hook: sent, or failed with the attempts
and the scrubbed error), written by a bookkeeping thread of its own (``telemetry.alert_books``). The message is
queued before its row is written, and the sending thread never writes to the database, so a database that fails
or hangs neither loses nor delays a message: the failed write is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from desired_state.model import TenantStatus
from reconciler.runtime.telemetry.alert_books import Delivered, DeliveryBook, Queued
from reconciler.runtime.telemetry.metrics import Metrics
from reconciler.runtime.telemetry.telegram import TelegramSender

log = logging.getLogger("reconciler.alerts")

# Telegram rejects longer messages (4096 characters).
MAX_MESSAGE = 4000
# A failed send is tried again this many times, after 1 s, then 2 s, ...
SEND_ATTEMPTS = 3
# Messages waiting beyond this are dropped (the Bot API is down and the transitions pile up).
MAX_PENDING = 100

Sender = Callable[[str], None]
# (text, outcome) -> the stored row's id
Record = Callable[[str, str], int | None]


class Alerter:
    def __init__(
        self,
        sender: Sender | None = None,
        *,
        per_minute: int = 20,
        metrics: Metrics | None = None,
        scrub: Callable[[str], str] = lambda text: text,
        close: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        record: Record | None = None,
        delivered: Delivered | None = None,
    ) -> None:
        self.sender = sender
        # Called with (text, outcome) for every alert: the wiring stores them for the API (``alert_events``).
        self.record = record
        # Called (on a bookkeeping thread) once the sending thread is done with a queued alert whose row was stored.
        self._books = DeliveryBook(delivered) if delivered is not None else None
        self.per_minute = per_minute
        self.metrics = metrics
        self._scrub = scrub
        self._close = close
        self._clock = clock
        self._tokens = float(per_minute)
        self._refilled = clock()
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[Queued | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # --- raising alerts ---------------------------------------------------------------------------------------

    def transition(self, key: str, state: str, text: str | None) -> None:
        """Alert with ``text`` when ``key`` enters ``state`` (a repeat of the last state is dropped)."""
        with self._lock:
            if self._states.get(key) == state:
                return
            self._states[key] = state
        if text is not None:
            self.notify(text)

    def notify(self, text: str) -> None:
        text = text[:MAX_MESSAGE]
        if not self._take_token():
            log.warning("alert dropped (more than %d per minute): %s", self.per_minute, text.splitlines()[0])
            self._count("dropped")
            self._record(text, "dropped")
            return
        if self.sender is None:
            log.warning("alert: %s", text)
            self._count("logged")
            self._record(text, "logged")
            return
        if self._pending.qsize() >= MAX_PENDING:
            log.warning("alert dropped (%d waiting to be sent): %s", MAX_PENDING, text.splitlines()[0])
            self._count("dropped")
            self._record(text, "dropped")
            return
        log.info("alert: %s", text.splitlines()[0])
        # Queued first, then stored: a slow or failing database never holds the message back.
        queued = Queued(text)
        self._pending.put(queued)
        queued.stored(self._record(text, "queued"))

    def tenant(self, tenant: str, message: str) -> None:
        """An alert about one tenant from elsewhere in the runtime (operations), already a transition there."""
        self.notify(f"⚠️ tenant {tenant}: {message}")

    def _take_token(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.per_minute), self._tokens + (now - self._refilled) * self.per_minute / 60)
            self._refilled = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alerts.labels(outcome=outcome).inc()

    def _record(self, text: str, outcome: str) -> int | None:
        if self.record is None:
            return None
        try:
            return self.record(text, outcome)
        except Exception as exc:  # the database may be away; the alert itself goes on
            log.warning("alert not recorded: %s", type(exc).__name__)
            return None

    def _record_delivery(self, queued: Queued, outcome: str, attempts: int, error: str | None) -> None:
        if self._books is not None:
            self._books.add(queued, outcome, attempts, error)  # written by its own thread: the next send goes on

    # --- hooks ---------------------------------------------------------------------------------------------

    def on_status(self, previous: TenantStatus | None, current: TenantStatus) -> None:
        """``Reconciler.on_status``: tenant degraded / recovered, DNS conflict appeared."""
        tenant = current.tenant
        before = previous.condition("Degraded") if previous is not None else None
        after = current.condition("Degraded")
        if after is not None and after.status == "True" and (before is None or before.status != "True"):
            self.transition(f"degraded/{tenant}", "degraded", f"⚠️ tenant {tenant} degraded: {after.message}")
        elif after is not None and after.status == "False" and before is not None and before.status == "True":
            self.transition(f"degraded/{tenant}", "recovered", f"✅ tenant {tenant} recovered: no more crashes")
        dns_before = previous.condition("DNSReady") if previous is not None else None
        dns_after = current.condition("DNSReady")
        conflict = dns_after is not None and dns_after.reason == "Conflict"
        if conflict and (dns_before is None or dns_before.reason != "Conflict"):
            assert dns_after is not None
            self.transition(f"dns/{tenant}", "conflict", f"⚠️ tenant {tenant}: DNS conflict: {dns_after.message}")
        elif not conflict:
            self.transition(f"dns/{tenant}", "ok", None)
        self._data(tenant, current)

    def _data(self, tenant: str, current: TenantStatus) -> None:
        """A tenant held for its data volume (``Data=False``: lost, or another tenant's): one alert per cause."""
        data = current.condition("Data")
        if data is not None and data.status == "False":
            self.transition(f"data/{tenant}", data.reason, f"🛑 tenant {tenant}: {data.reason}: {data.message}")
        else:
            self.transition(f"data/{tenant}", "ok", None)

    def mass_delete(self, errors: tuple[str, ...]) -> None:
        refused = [e for e in errors if "mass delete refused" in e]
        if refused:
            self.transition("mass-delete", "refused", f"🛑 {refused[0]}")
        else:
            self.transition("mass-delete", "ok", None)

    # --- the sending thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self.sender is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()
        if self._books is not None:
            self._books.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then end the thread; then write the outcomes (within
        ``timeout`` again, at most)."""
        if self._thread is None:
            return
        self._pending.put(None)
        self._thread.join(timeout)
        self._thread = None
        if self._books is not None:
            self._books.stop(timeout)

    def _run(self) -> None:
        assert self.sender is not None
        try:
            while (queued := self._pending.get()) is not None:
                self._deliver(queued)
        finally:
            if self._close is not None:
                self._close()

    def _deliver(self, queued: Queued) -> None:
        assert self.sender is not None
        text = queued.text
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                self.sender(text)
            except Exception as exc:
                reason = self._scrub(f"{type(exc).__name__}: {exc}")
                if attempt == SEND_ATTEMPTS:
                    log.warning(
                        "alert not sent after %d attempts (%s): %s", SEND_ATTEMPTS, reason, text.splitlines()[0]
                    )
                    self._count("failed")
                    self._record_delivery(queued, "failed", attempt, reason)
                    return
                log.info("alert send failed (%s); retrying", reason)
                time.sleep(2 ** (attempt - 1))
            else:
                self._count("sent")
                self._record_delivery(queued, "sent", attempt, None)
                return


def build_alerter(
    token: str | None,
    chat_id: str | None,
    base_url: str | None,
    *,
    per_minute: int,
    metrics: Metrics | None,
    record: Record | None = None,
    delivered: Delivered | None = None,
) -> Alerter:
    if not token or not chat_id:
        return Alerter(None, per_minute=per_minute, metrics=metrics, record=record)
    sender = TelegramSender(token, chat_id, base_url)
    return Alerter(
        sender,
        per_minute=per_minute,
        metrics=metrics,
        scrub=sender.scrub,
        close=sender.close,
        record=record,
        delivered=delivered,
    )
