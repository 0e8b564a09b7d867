"""The project's own error vocabulary. Drivers wrap library errors in these, chaining the cause.

``TransientError``: worth retrying with backoff (engine busy, connection refused, timeouts); ``delay`` is how long
the driver knows to wait (None: the loop's backoff decides).
``PermanentError``: retrying will not help until someone changes something (image missing, invalid config); the
loop waits for a new generation of the tenant or of the catalog instead of retrying on a timer.

Both carry, when the raising driver knows them, the ``system`` (docker, traefik, powerdns), the ``operation``
(run, update, pull, ...) and the ``key`` of the object it acted on. When ``system`` is set, ``str()`` ends with
``(system, transient|permanent)``, so logs, ``last_error`` and condition messages say what failed and whether it
is retried. Pure: no I/O, no library imports.
"""

from __future__ import annotations


class ReconcileError(Exception):
    permanent = False

    def __init__(
        self,
        message: str,
        *,
        tenant: str | None = None,
        system: str | None = None,
        operation: str | None = None,
        key: str | None = None,
        delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tenant = tenant
        self.system = system
        self.operation = operation
        self.key = key
        self.delay = delay

    @property
    def kind(self) -> str:
        return "permanent" if self.permanent else "transient"

    def __str__(self) -> str:
        if self.system is None:
            return self.message
        return f"{self.message} ({self.system}, {self.kind})"


class TransientError(ReconcileError):
    pass


class PermanentError(ReconcileError):
    permanent = True


class SubnetTaken(TransientError):
    """The chosen subnet was taken meanwhile (another network created since the snapshot): an engine raises it
    from ``create_network`` and the executor picks another."""
