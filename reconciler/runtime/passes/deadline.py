"""The stop signal a pass checks between two actions, with a per-thread deadline.

Built once by ``runtime.wiring`` and given to the reconciler (and so its executor) at construction; the service's
loop (``runtime.service.loop``) reads it from the reconciler, sets a deadline around each worker's pass and
sets it to stop. Outside ``reconciler run`` nobody begins a deadline and it is a plain stop event.
"""

from __future__ import annotations

import threading
import time


class PassDeadline(threading.Event):
    """What the reconciler and executor check between actions: set when the process stops or, seen from one
    worker thread, when that worker's current reconcile ran past its deadline."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        super().__init__()
        self._stop = stop if stop is not None else threading.Event()
        self._local = threading.local()

    @property
    def stop_event(self) -> threading.Event:
        """The process-wide stop (no deadline): what the loop's own threads wait on."""
        return self._stop

    def begin(self, timeout: float) -> None:
        self._local.deadline = time.monotonic() + timeout

    def end(self) -> None:
        self._local.deadline = None

    def current(self) -> float | None:
        """This thread's deadline (monotonic), for ``adopt`` in a thread it fans out to (``passes.parallel``)."""
        deadline: float | None = getattr(self._local, "deadline", None)
        return deadline

    def adopt(self, deadline: float | None) -> None:
        """Run this thread under another thread's deadline (``current``); ``end`` clears it."""
        self._local.deadline = deadline

    def expired(self) -> bool:
        deadline: float | None = getattr(self._local, "deadline", None)
        return deadline is not None and time.monotonic() >= deadline

    def is_set(self) -> bool:
        return self._stop.is_set() or self.expired()

    def set(self) -> None:
        self._stop.set()

    def clear(self) -> None:
        self._stop.clear()

    def wait(self, timeout: float | None = None) -> bool:
        deadline: float | None = getattr(self._local, "deadline", None)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            timeout = remaining if timeout is None else min(timeout, remaining)
        if timeout is None or timeout > 0:
            self._stop.wait(timeout)
        return self.is_set()
