"""The bookkeeping of alerts sent: what the sending thread made of each queued alert, written to its stored row
(``alert_events``) by a thread of its own.

Used by ``telemetry.alerts.Alerter`` only. The sending thread hands each outcome over and goes on to the next
message; this thread waits for the alert's row to exist (the raising thread writes it just after queueing the
message) and calls the ``delivered`` hook the wiring gives (``desired_state.alert_log.record_delivery``). A database
that refuses or hangs therefore slows only this bookkeeping, never a message; a failed write is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("reconciler.alerts")

# How long the bookkeeping waits for an alert's own row to be written by the raising thread.
RECORD_WAIT = 15.0

# (row id, sent | failed, attempts, scrubbed error or None)
Delivered = Callable[[int, str, int, str | None], None]


class Queued:
    """One alert waiting for the sending thread, with its stored row once the raising thread has written it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.row: int | None = None
        self.recorded = threading.Event()

    def stored(self, row: int | None) -> None:
        """Called by the raising thread once the row's write returned (None: it failed)."""
        self.row = row
        self.recorded.set()


class DeliveryBook:
    def __init__(self, delivered: Delivered) -> None:
        self._delivered = delivered
        self._outcomes: queue.Queue[tuple[Queued, str, int, str | None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def add(self, queued: Queued, outcome: str, attempts: int, error: str | None) -> None:
        self._outcomes.put((queued, outcome, attempts, error))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alerts-books", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Write the outcomes handed over so far (within ``timeout``), then end the thread."""
        if self._thread is None:
            return
        self._outcomes.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while (item := self._outcomes.get()) is not None:
            queued, outcome, attempts, error = item
            if not queued.recorded.wait(RECORD_WAIT) or queued.row is None:
                continue  # its row was never written (logged there): nothing to update
            try:
                self._delivered(queued.row, outcome, attempts, error)
            except Exception as exc:  # the message is out (or given up): only its bookkeeping is lost
                log.warning("alert %d: outcome %s not recorded: %s", queued.row, outcome, type(exc).__name__)
