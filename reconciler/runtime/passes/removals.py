"""What this process removed recently, by layer: the mass-delete guard's shared budget across passes.

Under ``reconciler run`` every pass of one tenant is small; the guard adds what was removed within its window
(``MassDeleteLimits.window``) to what a pass would remove, so many small passes cannot together do what one may
not. Kept in memory: a restarted process starts with a full budget (its first sweep sees the whole fleet anyway).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from reconciler.core.plan import Change


class RemovalLedger:
    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: deque[tuple[float, str, int]] = deque()

    def record(self, changes: Iterable[Change]) -> None:
        now = self._clock()
        with self._lock:
            for change in changes:
                for layer, count in change.removes.items():
                    if count:
                        self._entries.append((now, layer, count))

    def recent(self) -> dict[str, int]:
        horizon = self._clock() - self.window
        totals: dict[str, int] = {}
        with self._lock:
            while self._entries and self._entries[0][0] < horizon:
                self._entries.popleft()
            for _, layer, count in self._entries:
                totals[layer] = totals.get(layer, 0) + count
        return totals
