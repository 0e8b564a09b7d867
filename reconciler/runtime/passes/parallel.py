"""Bounded parallelism for one pass: tenants side by side, and the engine actions of one phase together.

Used by ``passes.reconcile`` (one task per tenant, at most ``RECONCILER_APPLY_WORKERS`` at a time) and by
``passes.executor`` (one task per container of a phase). Every task runs with the deadline of the thread that
started it (``passes.deadline``), so a ``reconciler run`` worker's timeout reaches the threads it fans out to.
``run_all`` returns when every task has ended, with results in the order the tasks were given, whatever order
they finished in: callers log and record outcomes in plan order. ``ActionSlots`` bounds the engine actions in
flight across the whole process (``RECONCILER_APPLY_CONCURRENCY``), so a large fleet cannot flood dockerd.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from reconciler.runtime.passes.deadline import PassDeadline

T = TypeVar("T")


@dataclass(frozen=True)
class Result(Generic[T]):
    """What one task returned, or the exception it raised (never both)."""

    value: T | None = None
    error: BaseException | None = None


def _carried(stop: threading.Event, task: Callable[[], T]) -> Callable[[], T]:
    """The task, run under the calling thread's pass deadline (a plain event has none to carry)."""
    if not isinstance(stop, PassDeadline):
        return task
    deadline = stop.current()

    def run() -> T:
        stop.adopt(deadline)
        try:
            return task()
        finally:
            stop.end()

    return run


def _capture(task: Callable[[], T]) -> Result[T]:
    try:
        return Result(value=task())
    except BaseException as exc:  # handed back to the caller, which decides; nothing is lost
        return Result(error=exc)


def run_all(tasks: Sequence[Callable[[], T]], stop: threading.Event, *, limit: int | None = None) -> list[Result[T]]:
    """Run every task, at most ``limit`` at a time (None: all at once); results in the order of ``tasks``.

    A single task runs in the calling thread: a phase of one action costs no thread.
    """
    if not tasks:
        return []
    if len(tasks) == 1:
        return [_capture(tasks[0])]
    workers = len(tasks) if limit is None else max(1, min(limit, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply") as pool:
        futures = [pool.submit(_capture, _carried(stop, task)) for task in tasks]
        return [future.result() for future in futures]


def first_error(results: Sequence[Result[T]]) -> BaseException | None:
    """The first error in task order (the plan's order, so which one is reported does not depend on timing)."""
    return next((r.error for r in results if r.error is not None), None)


class ActionSlots:
    """At most ``limit`` engine actions in flight in this process; ``peak`` is the most there ever were."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"apply concurrency must be at least 1, got {limit}")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._busy = 0
        self.peak = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._slots:
            with self._lock:
                self._busy += 1
                self.peak = max(self.peak, self._busy)
            try:
                yield
            finally:
                with self._lock:
                    self._busy -= 1
