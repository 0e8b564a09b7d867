"""A deduplicating, delaying work queue of reconcile keys (a tenant name, or ``ALL`` for a full pass).

Fed by the periodic resync, the Docker event watcher and nudges; drained by the loop's worker. A key queued
many times is held once, at its earliest due time; a key being processed is not handed out again until
``done``, and if it was re-added meanwhile it comes back once afterwards (like controller-runtime's queue).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time

ALL = "*"


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int, str]] = []
        self._due: dict[str, float] = {}
        self._processing: set[str] = set()
        self._dirty: dict[str, float] = {}
        self._seq = itertools.count()
        self._closed = False

    def add(self, key: str, delay: float = 0.0, *, priority: int = 1) -> None:
        """Queue ``key`` to run in ``delay`` seconds (priority 0 goes before 1 when both are due)."""
        due = time.monotonic() + delay
        with self._cond:
            if key in self._processing:
                self._dirty[key] = min(due, self._dirty.get(key, due))
                return
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, priority, next(self._seq), key))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._heap and self._due.get(self._heap[0][3]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded by an earlier due time
                if self._heap and self._heap[0][0] <= now:
                    # Among the keys due now, nudged and event keys (priority 0) go before resyncs.
                    due_now = [item for item in self._heap if item[0] <= now and self._due.get(item[3]) == item[0]]
                    chosen = min(due_now, key=lambda item: (item[1], item[0], item[2]))
                    self._heap.remove(chosen)
                    heapq.heapify(self._heap)
                    key = chosen[3]
                    del self._due[key]
                    self._processing.add(key)
                    return key
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)
            return None

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            due = self._dirty.pop(key, None)
        if due is not None:
            self.add(key, max(0.0, due - time.monotonic()))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)


class Backoff:
    """Per-key exponential backoff: initial, doubling up to a cap, reset on success."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap
        self._failures: dict[str, int] = {}

    def failure(self, key: str) -> float:
        count = self._failures.get(key, 0)
        self._failures[key] = count + 1
        return float(min(self.cap, self.initial * (2**count)))

    def success(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)
