"""What the loop does after a failed pass of a tenant, decided by the error the drivers raised.

Transient (``TransientError``, and every error that does not say otherwise): retried on the tenant's own
exponential backoff, or after the delay the driver asked for. Permanent (``PermanentError``: image missing, a
limit out of range): not retried on a timer. The tenant is parked with the generation its failing pass saw and a
digest of the catalog; the periodic resync leaves it out until either changes (an edit, a new image in the
catalog). Events and nudges still reach it: they are news, and a passing pass releases it. Used by
``runtime.service.loop``; pure apart from its lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from reconciler.core.errors import ReconcileError


def retry_delay(error: ReconcileError | None, backoff: float) -> float | None:
    """Seconds until the next try: None for a permanent error, the driver's delay if it gave one, else backoff."""
    if error is not None and error.permanent:
        return None
    if error is not None and error.delay is not None:
        return error.delay
    return backoff


@dataclass(frozen=True)
class Parked:
    generation: int | None
    catalog: str
    reason: str


class PermanentHolds:
    """Tenants parked on a permanent error. Thread-safe: workers park and release, the sweep asks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: dict[str, Parked] = {}

    def park(self, tenant: str, generation: int | None, catalog: str, reason: str) -> None:
        with self._lock:
            self._parked[tenant] = Parked(generation, catalog, reason)

    def release(self, tenant: str) -> None:
        with self._lock:
            self._parked.pop(tenant, None)

    def held(self, tenant: str, generation: int | None, catalog: str) -> bool:
        """Whether ``tenant`` stays parked given its generation and catalog digest now; released when changed."""
        with self._lock:
            parked = self._parked.get(tenant)
            if parked is None:
                return False
            if parked.generation == generation and parked.catalog == catalog:
                return True
            del self._parked[tenant]
            return False

    def tenants(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._parked)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._parked)
