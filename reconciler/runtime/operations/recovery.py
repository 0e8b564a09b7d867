"""After a crash: close what the dead process left ``running``, log each row and alert once per tenant.

Called by ``runtime.service.run`` each time this instance becomes the leader, and by the CLI once a command that
changes the world holds the leader lock (``runtime.service.leader.writer_lock``). Holding the lock is what makes
it safe: no other live writer of this owner exists, so a running row is an abandoned one.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from desired_state.operation_recovery import Abandoned, close_abandoned
from reconciler.runtime.operations.common import Alert, log_alert

log = logging.getLogger("reconciler.operations")


def recover_abandoned(engine: Engine, found_by: str, alert: Alert = log_alert) -> list[Abandoned]:
    closed = close_abandoned(engine, found_by)
    for row in closed:
        log.error(
            "tenant=%s %s row %d (%s) closed as failed: %s",
            row.tenant,
            row.table,
            row.id,
            row.kind,
            row.error,
            extra={"tenant": row.tenant},
        )
    tenants = sorted({row.tenant for row in closed if row.table == "operations"})
    for tenant in tenants:
        kinds = ", ".join(sorted({r.kind for r in closed if r.tenant == tenant and r.table == "operations"}))
        alert(tenant, f"{kinds} interrupted by a crash and closed as failed (see `reconciler operations {tenant}`)")
    return closed
