"""Alerts: operators learn about state transitions on Telegram (or in the log when no bot is configured).

Raised by the reconcile pass's status hook (tenant degraded and recovered, DNS conflict, data volume lost or
another tenant's), by the loop (mass
delete refused) and by the service (leader change). Only transitions alert: the tenant hooks compare the stored
status with the new one, and every alert key remembers its last state, so a repeat is dropped. A token bucket
caps the messages per minute. Messages are sent by one dedicated thread with its own asyncio loop
(python-telegram-bot is async), so a slow or unreachable Bot API never slows a pass. The bot token is never
logged: error texts are scrubbed of it before they reach the log.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable

from desired_state.model import TenantStatus
from reconciler.runtime.telemetry.metrics import Metrics

log = logging.getLogger("reconciler.alerts")

# Telegram rejects longer messages (4096 characters).
MAX_MESSAGE = 4000
# A failed send is tried again this many times, after 1 s, then 2 s, ...
SEND_ATTEMPTS = 3
# Messages waiting beyond this are dropped (the Bot API is down and the transitions pile up).
MAX_PENDING = 100

Sender = Callable[[str], None]

_SECRETS: set[str] = set()


def _scrubbing_factory(create: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = create(*args, **kwargs)
        if _SECRETS:
            message = record.getMessage()
            if any(secret in message for secret in _SECRETS):
                for secret in _SECRETS:
                    message = message.replace(secret, "<token>")
                record.msg, record.args = message, ()
        return record

    return factory


def never_log(secret: str) -> None:
    """Scrub ``secret`` from every log record of this process. The HTTP client under python-telegram-bot logs
    request URLs at INFO, and the Bot API puts the token in the URL: a logger level set elsewhere is not enough."""
    if not secret:
        return
    if not _SECRETS:
        logging.setLogRecordFactory(_scrubbing_factory(logging.getLogRecordFactory()))
    _SECRETS.add(secret)


class TelegramSender:
    """Sends one message per call through python-telegram-bot on a private event loop (one thread only)."""

    def __init__(self, token: str, chat_id: str, base_url: str | None = None) -> None:
        self._token = token
        self._chat_id = chat_id
        self._base_url = base_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: object | None = None
        never_log(token)
        # The library's debug lines name API methods: noise in the operator's log.
        logging.getLogger("telegram").setLevel(logging.WARNING)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def __call__(self, text: str) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._send(text))

    async def _send(self, text: str) -> None:
        from telegram import Bot

        if self._bot is None:
            bot = Bot(self._token, base_url=self._base_url) if self._base_url else Bot(self._token)
            await bot.initialize()  # getMe: a wrong token fails here, once
            self._bot = bot
        assert isinstance(self._bot, Bot)
        await self._bot.send_message(chat_id=self._chat_id, text=text)

    def close(self) -> None:
        if self._loop is None:
            return
        from telegram import Bot

        if isinstance(self._bot, Bot):
            try:
                self._loop.run_until_complete(self._bot.shutdown())
            except Exception as exc:
                log.debug("closing the Telegram client: %s", self.scrub(str(exc)))
        self._loop.close()
        self._loop = None


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
        record: Callable[[str, str], None] | None = None,
    ) -> None:
        self.sender = sender
        # Called with (text, outcome) for every alert: the wiring stores them for the API (``alert_events``).
        self.record = record
        self.per_minute = per_minute
        self.metrics = metrics
        self._scrub = scrub
        self._close = close
        self._clock = clock
        self._tokens = float(per_minute)
        self._refilled = clock()
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[str | None] = queue.Queue()
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
        self._pending.put(text)
        self._record(text, "queued")

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

    def _record(self, text: str, outcome: str) -> None:
        if self.record is None:
            return
        try:
            self.record(text, outcome)
        except Exception as exc:  # the database may be away; the alert itself goes on
            log.warning("alert not recorded: %s", type(exc).__name__)

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

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then end the thread."""
        if self._thread is None:
            return
        self._pending.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        assert self.sender is not None
        try:
            while (text := self._pending.get()) is not None:
                self._deliver(text)
        finally:
            if self._close is not None:
                self._close()

    def _deliver(self, text: str) -> None:
        assert self.sender is not None
        for attempt in range(SEND_ATTEMPTS):
            try:
                self.sender(text)
                self._count("sent")
                return
            except Exception as exc:
                reason = self._scrub(f"{type(exc).__name__}: {exc}")
                if attempt == SEND_ATTEMPTS - 1:
                    log.warning(
                        "alert not sent after %d attempts (%s): %s", SEND_ATTEMPTS, reason, text.splitlines()[0]
                    )
                    self._count("failed")
                    return
                log.info("alert send failed (%s); retrying", reason)
                time.sleep(2**attempt)


def build_alerter(
    token: str | None,
    chat_id: str | None,
    base_url: str | None,
    *,
    per_minute: int,
    metrics: Metrics | None,
    record: Callable[[str, str], None] | None = None,
) -> Alerter:
    if not token or not chat_id:
        return Alerter(None, per_minute=per_minute, metrics=metrics, record=record)
    sender = TelegramSender(token, chat_id, base_url)
    return Alerter(
        sender, per_minute=per_minute, metrics=metrics, scrub=sender.scrub, close=sender.close, record=record
    )
