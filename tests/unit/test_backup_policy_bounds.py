"""Bounded backup policies: the shortest interval of a schedule, ``keep`` within 1..max, and an invalid policy as
that tenant's error in the operations log while the others stay scheduled (``operations.backup_schedule``).

The policies live in a real SQLite database; the scheduler is a recording stand-in (APScheduler itself is
exercised by the integration tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine

from desired_state.backups import BackupPolicyRecord, set_policy
from desired_state.database import make_engine, upgrade
from desired_state.operations import list_operations
from desired_state.yaml_io import import_yaml
from reconciler.runtime.operations.backup_schedule import BackupSchedule, policy_problem, shortest_interval
from reconciler.runtime.operations.common import OperationsConfig
from reconciler.runtime.operations.tenant_ops import TenantOps

START = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("*/2 * * * * *", 2),
        ("*/5 * * * *", 300),
        ("@hourly", 3600),
        ("@daily", 86400),
        ("0 3 * * 1-5", 86400),  # weekdays: the shortest gap is a day, not the weekend's three
        ("* 0 * * *", 60),  # every minute, but only in hour 0: the burst is found wherever it falls
        ("0,1 * * * *", 60),
    ],
)
def test_the_shortest_interval_of_a_schedule(schedule: str, seconds: float) -> None:
    assert shortest_interval(schedule, START) == seconds


def _policy(schedule: str = "@daily", keep: int = 7) -> BackupPolicyRecord:
    return BackupPolicyRecord(tenant="acme", schedule=schedule, keep=keep, enabled=True)


def test_a_policy_within_bounds_has_no_problem() -> None:
    assert policy_problem(_policy(), 300, 1000) is None
    assert policy_problem(_policy("*/2 * * * * *", keep=1), 2, 1) is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            _policy("* * * * *"),
            "tenant 'acme': backup policy field schedule = '* * * * *' runs every 60s; the shortest allowed "
            "interval is 300s (RECONCILER_BACKUP_MIN_INTERVAL)",
        ),
        (_policy("every day"), "tenant 'acme': backup policy field schedule is invalid: schedule 'every day' has 2"),
        (_policy("61 * * * *"), "tenant 'acme': backup policy field schedule is invalid:"),
        (_policy(keep=0), "tenant 'acme': backup policy field keep = 0 is out of range; use 1 to 1000"),
        (_policy(keep=-3), "tenant 'acme': backup policy field keep = -3 is out of range; use 1 to 1000"),
        (_policy(keep=70000), "tenant 'acme': backup policy field keep = 70000 is out of range; use 1 to 1000"),
    ],
)
def test_an_invalid_policy_names_tenant_field_and_value(policy: BackupPolicyRecord, message: str) -> None:
    problem = policy_problem(policy, 300, 1000)
    assert problem is not None and problem.startswith(message), problem


@dataclass
class _Scheduler:
    crons: dict[str, str] = field(default_factory=dict)

    def add_cron(self, job_id: str, cron: str, func: Callable[[], Any]) -> None:
        self.crons[job_id] = cron

    def add_interval(self, job_id: str, seconds: float, func: Callable[[], Any], *, jitter: float = 0.0) -> None:
        raise AssertionError("not used by refresh")

    def remove(self, job_id: str) -> None:
        self.crons.pop(job_id, None)

    def jobs(self) -> list[str]:
        return sorted(self.crons)


class _NoPins:
    def clear_stale_pins(self, desired: object) -> None:
        return None


@dataclass
class _Ops:
    """What ``BackupSchedule.refresh`` uses of ``TenantOps``: the database, the bounds and the pin guard."""

    engine: Engine
    config: OperationsConfig
    guard: _NoPins = field(default_factory=_NoPins)


TENANTS = """
catalog:
  a: {image: "erp/demo-svc:1"}
tenants:
  - {name: acme, domain: acme.erp.test, services: {a: {}}}
  - {name: globex, domain: globex.erp.test, services: {a: {}}}
  - {name: initech, domain: initech.erp.test, services: {a: {}}}
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'policies.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    import_yaml(engine, TENANTS)
    return engine


def test_an_invalid_policy_is_its_tenants_error_and_the_others_stay_scheduled(engine: Engine) -> None:
    set_policy(engine, "acme", "*/5 * * * *", keep=3)
    set_policy(engine, "globex", "* * * * *", keep=3)  # every minute: below the 5-minute bound
    set_policy(engine, "initech", "@daily", keep=0)  # used to become 7 silently
    scheduler = _Scheduler()
    schedule = BackupSchedule(cast(TenantOps, _Ops(engine, OperationsConfig())), scheduler)
    schedule.refresh()
    schedule.refresh()  # reported once per distinct policy, not once per refresh
    assert scheduler.crons == {"backup:acme": "*/5 * * * *"}
    failed = {op.tenant: op for op in list_operations(engine, kind="backup")}
    assert set(failed) == {"globex", "initech"}
    assert all(op.status == "failed" and op.trigger == "schedule" for op in failed.values())
    assert "field schedule = '* * * * *' runs every 60s" in (failed["globex"].error or "")
    assert "field keep = 0 is out of range" in (failed["initech"].error or "")
    assert len(list_operations(engine, kind="backup")) == 2

    set_policy(engine, "globex", "@hourly", keep=3)  # fixed in the UI: scheduled on the next refresh
    schedule.refresh()
    assert scheduler.crons == {"backup:acme": "*/5 * * * *", "backup:globex": "@hourly"}


def test_a_lower_bound_from_the_settings_lets_tests_schedule_every_two_seconds(engine: Engine) -> None:
    set_policy(engine, "acme", "*/2 * * * * *", keep=2)
    scheduler = _Scheduler()
    config = OperationsConfig(min_backup_interval=1)
    BackupSchedule(cast(TenantOps, _Ops(engine, config)), scheduler).refresh()
    assert scheduler.crons == {"backup:acme": "*/2 * * * * *"}
