"""Scheduled backups: one cron job per tenant from ``backup_policies``, on the runtime's scheduler.

``BackupSchedule.refresh`` (run at start and then every ``RECONCILER_BACKUP_POLICY_REFRESH`` seconds) re-reads
the policies and adds, replaces or removes the ``backup:<tenant>`` jobs to match: the UI edits a policy, the
schedule follows within that interval. A job takes a backup (trigger ``schedule``) and then applies the policy's
retention. A policy is bounded: its schedule must parse and never fire twice within ``RECONCILER_BACKUP_MIN_INTERVAL``
seconds (300), its ``keep`` lie between 1 and ``RECONCILER_BACKUP_KEEP_MAX`` (1000). An invalid policy schedules
nothing for that tenant and is its error: logged and written to the operations log (a failed ``backup`` with
trigger ``schedule``) once per distinct policy; the other tenants are unaffected.
The same refresh lifts pins whose failed image is no longer desired, so the UI does not show stale pins.

With ``RECONCILER_BACKUP_VERIFY_SCHEDULE`` set, one more cron job restores each tenant's newest backup into a
scratch volume and compares it (``operations.verify``).

The scheduler only runs while this instance leads (``runtime.service.run``), so a standby never backs up.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.triggers.cron import CronTrigger

from desired_state.backups import BackupPolicyRecord, read_policies
from desired_state.load import load_desired_state
from desired_state.operations import record_operation
from reconciler.core.errors import ReconcileError
from reconciler.core.schedule import parse_schedule
from reconciler.runtime.operations.tenant_ops import TenantOps

log = logging.getLogger("reconciler.backups")

JOB_PREFIX = "backup:"
VERIFY_JOB = "backup-verify"
# Consecutive fire times looked at to find a schedule's shortest gap: any cron burst (every minute of one hour,
# every second of one day) shows its gap between its first few fires, wherever the next one falls.
INTERVAL_SAMPLES = 64


def shortest_interval(schedule: str, start: datetime | None = None) -> float:
    """The shortest time in seconds between two fires of ``schedule`` (UTC), from its next fires after ``start``."""
    trigger = CronTrigger(timezone=UTC, **parse_schedule(schedule))
    fires: list[datetime] = []
    previous: datetime | None = None
    now = start or datetime.now(UTC)
    for _ in range(INTERVAL_SAMPLES):
        # Given the previous fire, APScheduler answers the first fire strictly after it.
        fire = trigger.get_next_fire_time(previous, previous or now)
        if fire is None:
            break
        fires.append(fire)
        previous = fire
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(fires)]
    return min(gaps) if gaps else float("inf")


def policy_problem(policy: BackupPolicyRecord, min_interval: float, keep_max: int) -> str | None:
    """Why a tenant's policy cannot be scheduled (None: it can), naming tenant, field and value."""
    tenant = policy.tenant
    try:
        gap = shortest_interval(policy.schedule)
    except ValueError as exc:  # ScheduleError, or a field APScheduler refuses (minute 61)
        return f"tenant {tenant!r}: backup policy field schedule is invalid: {str(exc)[:200]}"
    if gap < min_interval:
        return (
            f"tenant {tenant!r}: backup policy field schedule = {policy.schedule[:40]!r} runs every {gap:g}s; "
            f"the shortest allowed interval is {min_interval:g}s (RECONCILER_BACKUP_MIN_INTERVAL)"
        )
    return policy.keep_problem(keep_max)


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
        """Add the policy refresh (at wiring time: no database read here; requests: ``operations.requests``).

        The first refresh runs one refresh interval after the scheduler starts; ``refresh`` may be called at once.
        """
        config = self.ops.config
        self.scheduler.add_interval("backup-policies", config.policy_refresh_interval, self.refresh)
        if config.verify_schedule:
            self.scheduler.add_cron(VERIFY_JOB, config.verify_schedule, self._verify)

    def refresh(self) -> None:
        wanted: dict[str, str] = {}
        config = self.ops.config
        for policy in read_policies(self.ops.engine):
            if not policy.enabled:
                continue
            try:
                problem = policy_problem(policy, config.min_backup_interval, config.keep_max)
            except Exception as exc:  # one tenant's odd row never stops the others' schedules
                problem = f"tenant {policy.tenant!r}: backup policy could not be checked: {type(exc).__name__}"
            if problem is not None:
                self._report(policy, problem)
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

    def _report(self, policy: BackupPolicyRecord, problem: str) -> None:
        """Once per distinct policy value: an error line and a failed ``backup`` in the tenant's operations log."""
        key = (policy.tenant, f"{policy.schedule}|{policy.keep}")
        if key in self._reported:
            return
        self._reported.add(key)
        log.error("tenant=%s backup policy ignored: %s", policy.tenant, problem, extra={"tenant": policy.tenant})
        try:
            error = f"policy ignored: {problem}"
            record_operation(self.ops.engine, policy.tenant, "backup", "failed", trigger="schedule", error=error)
        except Exception:  # the database may be away for a moment; the error line is out, retried next refresh
            self._reported.discard(key)
            log.exception("tenant=%s recording the invalid backup policy failed", policy.tenant)

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
