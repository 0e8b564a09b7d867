"""A deduplicating, delaying work queue of reconcile keys (a tenant name, or ``ALL`` for the pass-wide sweep).

Fed by the periodic resync, the Docker event watcher, RabbitMQ nudges and retries; drained by the loop's
workers (``runtime.service.loop``). Thread-safe: producers run in their own threads.

- A key queued many times is held once, at its earliest due time and most urgent priority (dedup); producers
  pass a short delay, so a burst folds into one reconcile (debounce).
- A key being processed is not handed out again until ``done``; if it was re-added meanwhile it comes back once
  afterwards (like controller-runtime's queue).
- A key starts at most once per ``cooldown``: the first nudge after a quiet spell runs at once, a storm of
  nudges for one tenant costs one reconcile per cooldown (a per-key rate limit on top of the dedup).
- Among keys due now, priority 0 (nudges, events) goes before 1 (resync, retries); a key waiting longer than
  ``aging`` seconds past its due time counts as priority 0, so a flood of nudges cannot starve the resync.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, replace

ALL = "*"


@dataclass(frozen=True)
class Item:
    """A key handed to a worker: why it was queued (the most urgent trigger) and since when it waited."""

    key: str
    trigger: str
    queued_at: float  # time.monotonic() of the first add since the key was last handed out


@dataclass(frozen=True)
class _Entry:
    due: float
    priority: int
    trigger: str
    queued_at: float
    seq: int

    def merge(self, other: _Entry) -> _Entry:
        urgent = self if (self.priority, self.due) <= (other.priority, other.due) else other
        return replace(
            urgent,
            due=min(self.due, other.due),
            priority=min(self.priority, other.priority),
            queued_at=min(self.queued_at, other.queued_at),
            seq=min(self.seq, other.seq),
        )


class WorkQueue:
    def __init__(self, *, cooldown: float = 0.0, aging: float = 5.0) -> None:
        self.cooldown = cooldown
        self.aging = aging
        self._cond = threading.Condition()
        self._queued: dict[str, _Entry] = {}
        self._processing: set[str] = set()
        self._dirty: dict[str, _Entry] = {}
        self._started: dict[str, float] = {}
        self._seq = itertools.count()
        self._closed = False

    def add(self, key: str, delay: float = 0.0, *, priority: int = 1, trigger: str = "resync") -> None:
        """Queue ``key`` to run in ``delay`` seconds (priority 0 goes before 1 when both are due)."""
        now = time.monotonic()
        with self._cond:
            due = max(now + delay, self._started.get(key, float("-inf")) + self.cooldown)
            entry = _Entry(due, priority, trigger, now, next(self._seq))
            if key in self._processing:
                previous = self._dirty.get(key)
                self._dirty[key] = entry if previous is None else previous.merge(entry)
                return
            previous = self._queued.get(key)
            self._queued[key] = entry if previous is None else previous.merge(entry)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> str | None:
        item = self.get_item(timeout)
        return None if item is None else item.key

    def get_item(self, timeout: float | None = None) -> Item | None:
        batch = self.get_batch(1, timeout)
        return batch[0] if batch else None

    def get_batch(self, limit: int, timeout: float | None = None, *, batchable: str = "resync") -> list[Item]:
        """The most urgent due key; when it is a tenant queued by ``batchable`` (the periodic resync), up to ``limit``
        due tenants of that trigger, so one pass serves many tenants nobody is waiting for. Empty on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                due = sorted(
                    ((key, entry) for key, entry in self._queued.items() if entry.due <= now),
                    key=lambda pair: self._rank(pair[1], now),
                )
                if due:
                    taken = due[:1]
                    if limit > 1 and due[0][0] != ALL and due[0][1].trigger == batchable:
                        same = [pair for pair in due[1:] if pair[0] != ALL and pair[1].trigger == batchable]
                        taken += same[: limit - 1]
                    for key, _ in taken:
                        del self._queued[key]
                        self._processing.add(key)
                        self._started[key] = now
                    return [Item(key, entry.trigger, entry.queued_at) for key, entry in taken]
                wait = min((entry.due for entry in self._queued.values()), default=None)
                wait = None if wait is None else wait - now
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return []
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)
            return []

    def _rank(self, entry: _Entry, now: float) -> tuple[int, float, int]:
        priority = 0 if now - entry.due >= self.aging else entry.priority
        return (priority, entry.due, entry.seq)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            entry = self._dirty.pop(key, None)
            if entry is None:
                return
            not_before = self._started.get(key, 0.0) + self.cooldown
            entry = replace(entry, due=max(entry.due, not_before))
            previous = self._queued.get(key)
            self._queued[key] = entry if previous is None else previous.merge(entry)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Keys waiting (queued, or re-added while being processed)."""
        with self._cond:
            return len(self._queued) + len(self._dirty)


class Backoff:
    """Per-key exponential backoff: initial, doubling up to a cap, reset on success. Thread-safe."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def failure(self, key: str) -> float:
        with self._lock:
            count = self._failures.get(key, 0)
            self._failures[key] = count + 1
        return float(min(self.cap, self.initial * (2**count)))

    def success(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)
