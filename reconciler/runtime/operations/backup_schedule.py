"""Scheduled backups: one cron job per tenant from ``backup_policies``, on the runtime's scheduler.

``BackupSchedule.refresh`` (run at start and then every ``RECONCILER_BACKUP_POLICY_REFRESH`` seconds) re-reads
the policies and adds, replaces or removes the ``backup:<tenant>`` jobs to match: the UI edits a policy, the
schedule follows within that interval. A job takes a backup (trigger ``schedule``) and then applies the policy's
retention. An unreadable schedule is logged (once per value) and skipped; the other tenants are unaffected.
The same refresh lifts pins whose failed image is no longer desired, so the UI does not show stale pins.

With ``RECONCILER_BACKUP_VERIFY_SCHEDULE`` set, one more cron job restores each tenant's newest backup into a
scratch volume and compares it (``operations.verify``).

The scheduler only runs while this instance leads (``runtime.service.run``), so a standby never backs up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from desired_state.backups import read_policies
from desired_state.load import load_desired_state
from reconciler.core.errors import ReconcileError
from reconciler.core.schedule import ScheduleError, parse_schedule
from reconciler.runtime.operations.requests import process_requests
from reconciler.runtime.operations.tenant_ops import TenantOps

log = logging.getLogger("reconciler.backups")

JOB_PREFIX = "backup:"
VERIFY_JOB = "backup-verify"


class JobScheduler(Protocol):
    """What this module needs of ``runtime.service.scheduler.Scheduler``."""

    def add_cron(self, job_id: str, cron: str, func: Callable[[], Any]) -> None: ...

    def add_interval(self, job_id: str, seconds: float, func: Callable[[], Any], *, jitter: float = 0.0) -> None: ...

    def remove(self, job_id: str) -> None: ...

    def jobs(self) -> list[str]: ...


@dataclass
class BackupSchedule:
    ops: TenantOps
    scheduler: JobScheduler
    _scheduled: dict[str, str] = field(default_factory=dict)
    _reported: set[tuple[str, str]] = field(default_factory=set)

    def register(self) -> None:
        """Add the policy refresh and the operation-request poller (at wiring time: no database read here).

        The first refresh runs one refresh interval after the scheduler starts; ``refresh`` may be called at once.
        """
        config = self.ops.config
        self.scheduler.add_interval("backup-policies", config.policy_refresh_interval, self.refresh)
        if config.verify_schedule:
            self.scheduler.add_cron(VERIFY_JOB, config.verify_schedule, self._verify)
        self.scheduler.add_interval(
            "operation-requests", config.request_poll_interval, lambda: process_requests(self.ops)
        )

    def refresh(self) -> None:
        wanted: dict[str, str] = {}
        for policy in read_policies(self.ops.engine):
            if not policy.enabled:
                continue
            try:
                parse_schedule(policy.schedule)
            except ScheduleError as exc:
                if (policy.tenant, policy.schedule) not in self._reported:
                    self._reported.add((policy.tenant, policy.schedule))
                    log.error(
                        "tenant=%s backup policy ignored: %s", policy.tenant, exc, extra={"tenant": policy.tenant}
                    )
                continue
            wanted[policy.tenant] = policy.schedule
        for tenant in sorted(set(self._scheduled) - set(wanted)):
            self.scheduler.remove(JOB_PREFIX + tenant)
            del self._scheduled[tenant]
            log.info("tenant=%s scheduled backups stopped", tenant, extra={"tenant": tenant})
        for tenant, schedule in sorted(wanted.items()):
            if self._scheduled.get(tenant) == schedule:
                continue
            self.scheduler.add_cron(JOB_PREFIX + tenant, schedule, self._job(tenant))
            self._scheduled[tenant] = schedule
            log.info("tenant=%s backups scheduled: %s (UTC)", tenant, schedule, extra={"tenant": tenant})
        self._lift_stale_pins()

    def _verify(self) -> None:
        # Outcomes are recorded on the rows and failures alerted by the verifier; a bug is logged, not raised.
        try:
            self.ops.verifier.verify_all()
        except Exception:
            log.exception("backup verification failed")

    def _job(self, tenant: str) -> Callable[[], None]:
        def run() -> None:
            # A failure is recorded, counted and alerted by the backup service; nothing more to do here.
            with contextlib.suppress(ReconcileError):
                self.ops.backup(tenant, "schedule")

        return run

    def _lift_stale_pins(self) -> None:
        try:
            self.ops.guard.clear_stale_pins(load_desired_state(self.ops.engine))
        except Exception:
            log.exception("lifting stale pins failed")
