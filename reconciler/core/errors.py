"""The project's own error vocabulary. Drivers wrap library errors in these, chaining the cause.

``TransientError``: worth retrying with backoff (engine busy, connection refused, timeouts).
``PermanentError``: retrying will not help until someone changes something (image missing, invalid config).
The runtime reports both in the tenant's status; only transient ones are retried on their own schedule.
"""

from __future__ import annotations


class ReconcileError(Exception):
    def __init__(self, message: str, *, tenant: str | None = None) -> None:
        super().__init__(message)
        self.tenant = tenant


class TransientError(ReconcileError):
    def __init__(self, message: str, *, tenant: str | None = None, delay: float | None = None) -> None:
        super().__init__(message, tenant=tenant)
        self.delay = delay


class PermanentError(ReconcileError):
    pass
