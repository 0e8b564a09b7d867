"""Periodic jobs on APScheduler's ``BackgroundScheduler``: the resync now, scheduled backups later.

Built by ``runtime.wiring`` (one per process) so other parts register their jobs at wiring time
(``add_cron("backup-nightly", "30 2 * * *", func)``); the service runs the jobs only while this instance is the
leader: it starts the scheduler paused and resumes or pauses it as leadership comes and goes, so a standby never
runs a backup or a resync. Jobs never overlap themselves and a missed run is coalesced into one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.core.schedule import parse_schedule

log = logging.getLogger("reconciler.scheduler")

# A run that could not start on time (the process was busy or paused) still runs within this many seconds.
MISFIRE_GRACE = 60


class Scheduler:
    def __init__(self, timezone: tzinfo | str = "UTC") -> None:
        self._scheduler = BackgroundScheduler(
            timezone=timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE},
        )

    @staticmethod
    def _guarded(job_id: str, func: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                func()
            except Exception:
                log.exception("scheduled job %s failed", job_id)

        return run

    def add_interval(self, job_id: str, seconds: float, func: Callable[[], Any], *, jitter: float = 0.0) -> None:
        """Run ``func`` every ``seconds`` (± ``jitter`` seconds, so many instances do not fire together)."""
        trigger = IntervalTrigger(seconds=seconds, jitter=jitter or None)
        self._scheduler.add_job(self._guarded(job_id, func), trigger, id=job_id, name=job_id, replace_existing=True)

    def add_cron(self, job_id: str, cron: str, func: Callable[[], Any]) -> None:
        """Run ``func`` on a cron schedule in the scheduler's timezone: ``minute hour day month weekday``, six fields
        with seconds first, or ``@daily`` and friends; weekday numbers as in cron (0 is Sunday), see
        ``core.schedule``."""
        try:
            trigger = CronTrigger(timezone=self._scheduler.timezone, **parse_schedule(cron))
        except ValueError as exc:
            raise ValueError(f"job {job_id}: {cron!r} is not a crontab expression such as '30 2 * * *': {exc}") from exc
        self._scheduler.add_job(self._guarded(job_id, func), trigger, id=job_id, name=job_id, replace_existing=True)

    def remove(self, job_id: str) -> None:
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def jobs(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    def start(self, *, paused: bool = True) -> None:
        if not self._scheduler.running:
            self._scheduler.start(paused=paused)

    def resume(self) -> None:
        self.start(paused=False)
        self._scheduler.resume()

    def pause(self) -> None:
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
