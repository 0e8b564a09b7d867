"""Periodic jobs on APScheduler's ``BackgroundScheduler``: the resync, scheduled backups, the operation-request poll.

Built by ``runtime.wiring`` (one per process) so other parts register their jobs at wiring time
(``add_cron("backup-nightly", "30 2 * * *", func)``); the service runs the jobs only while this instance is the
leader: it starts the scheduler paused and resumes or pauses it as leadership comes and goes, so a standby never
runs a backup or a resync. Jobs never overlap themselves and a missed run is coalesced into one.

Work a job hands to threads of its own (the request pool, ``operations.request_pool``) asks ``is_active`` before it
starts more outside a job run, and registers ``on_shutdown`` to be waited for when the service stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo
from functools import cached_property
from typing import TYPE_CHECKING, Any

from reconciler.core.schedule import parse_schedule

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("reconciler.scheduler")

# A run that could not start on time (the process was busy or paused) still runs within this many seconds.
MISFIRE_GRACE = 60


class Scheduler:
    def __init__(self, timezone: tzinfo | str = "UTC") -> None:
        self._timezone = timezone
        self._on_shutdown: list[Callable[[], Any]] = []

    @cached_property
    def _scheduler(self) -> BackgroundScheduler:
        # APScheduler is imported with the first job: a one-shot command that registers none never loads it.
        from apscheduler.schedulers.background import BackgroundScheduler

        return BackgroundScheduler(
            timezone=self._timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE},
        )

    @property
    def _built(self) -> bool:
        return "_scheduler" in self.__dict__

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
        from apscheduler.triggers.interval import IntervalTrigger

        trigger = IntervalTrigger(seconds=seconds, jitter=jitter or None)
        self._scheduler.add_job(self._guarded(job_id, func), trigger, id=job_id, name=job_id, replace_existing=True)

    def add_cron(self, job_id: str, cron: str, func: Callable[[], Any]) -> None:
        """Run ``func`` on a cron schedule in the scheduler's timezone: ``minute hour day month weekday``, six fields
        with seconds first, or ``@daily`` and friends; weekday numbers as in cron (0 is Sunday), see
        ``core.schedule``."""
        from apscheduler.triggers.cron import CronTrigger

        try:
            trigger = CronTrigger(timezone=self._scheduler.timezone, **parse_schedule(cron))
        except ValueError as exc:
            raise ValueError(f"job {job_id}: {cron!r} is not a crontab expression such as '30 2 * * *': {exc}") from exc
        self._scheduler.add_job(self._guarded(job_id, func), trigger, id=job_id, name=job_id, replace_existing=True)

    def remove(self, job_id: str) -> None:
        if self._built and self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def jobs(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs()) if self._built else []

    def on_shutdown(self, func: Callable[[], Any]) -> None:
        """Run ``func`` when the scheduler shuts down, after its jobs stopped firing (in registration order)."""
        self._on_shutdown.append(func)

    def is_active(self) -> bool:
        """Running and not paused: this instance leads and has not begun to stop."""
        if not self._built:
            return False
        from apscheduler.schedulers.base import STATE_RUNNING

        return bool(self._scheduler.state == STATE_RUNNING)

    def start(self, *, paused: bool = True) -> None:
        if not self._scheduler.running:
            self._scheduler.start(paused=paused)

    def resume(self) -> None:
        self.start(paused=False)
        self._scheduler.resume()

    def pause(self) -> None:
        if self._built and self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        if self._built and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for func in self._on_shutdown:
            self._guarded("shutdown", func)()
