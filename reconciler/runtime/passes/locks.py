"""Locks that keep reconcile passes of one process from stepping on each other.

Used by ``runtime.passes.reconcile``: a pass scoped to some tenants holds the shared side plus one lock per tenant
(taken in sorted order, so two passes never deadlock), so passes of different tenants run side by side on the
loop's workers while a tenant is never in two passes at once. A full pass (``scope=None``: the CLI's
``apply``, tests) takes the exclusive side and waits for every scoped pass to end. Waiting writers go first,
so a steady stream of tenant passes cannot keep a full pass out forever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class PassLocks:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._tenants: dict[str, threading.Lock] = {}

    def _tenant_lock(self, tenant: str) -> threading.Lock:
        with self._cond:
            return self._tenants.setdefault(tenant, threading.Lock())

    @contextmanager
    def _shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    @contextmanager
    def hold(self, tenants: Iterable[str] | None) -> Iterator[None]:
        """Exclusive for ``None`` (a full pass); otherwise shared plus the given tenants' locks."""
        if tenants is None:
            with self._exclusive():
                yield
            return
        locks = [self._tenant_lock(name) for name in sorted(set(tenants))]
        with self._shared():
            taken: list[threading.Lock] = []
            try:
                for lock in locks:
                    lock.acquire()
                    taken.append(lock)
                yield
            finally:
                for lock in reversed(taken):
                    lock.release()
