"""The tenant-operations rows on SQLite and PostgreSQL: exactly-once migrations, holds, request claims and
priorities (and their migration), pins, rollback writes and policies (``desired_state.operations``,
``desired_state.operation_requests`` and ``desired_state.backups``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from desired_state.backups import read_policies, set_policy
from desired_state.database import make_engine, upgrade
from desired_state.operation_recovery import close_abandoned
from desired_state.operation_requests import (
    claim_request,
    create_request,
    finish_request,
    get_request,
    pending_requests,
)
from desired_state.operations import finish_operation, holds, migration_succeeded, revert_migrations, start_operation
from desired_state.pins import read_pins, write_pin
from desired_state.service_image import set_service_image
from desired_state.tables import OperationRequest, OperationRow, Tenant, TenantService
from desired_state.yaml_io import import_yaml

pytestmark = pytest.mark.integration

TENANT = """
catalog:
  a: {image: "erp/demo-svc:1"}
tenants:
  - name: acme
    domain: acme.erp.test
    services:
      a: {}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'ops.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade(url)
    engine = make_engine(url)
    import_yaml(engine, TENANT)
    yield engine
    engine.dispose()


def _migrate(engine: Engine, status: str = "succeeded") -> int:
    operation_id = start_operation(engine, "acme", "migrate", service="a", from_image="x:1", to_image="x:2")
    finish_operation(engine, operation_id, status, output="migrated")
    return operation_id


def test_a_migration_succeeds_once_per_target_image(engine: Engine) -> None:
    assert migration_succeeded(engine, "acme", "a", "x:2") is None
    _migrate(engine, "failed")
    assert migration_succeeded(engine, "acme", "a", "x:2") is None
    _migrate(engine)
    found = migration_succeeded(engine, "acme", "a", "x:2")
    assert found is not None and found.output == "migrated"
    with pytest.raises(IntegrityError):
        _migrate(engine)


def test_a_restore_reverts_later_migrations_so_they_run_again(engine: Engine) -> None:
    taken = datetime.now(UTC) - timedelta(seconds=5)
    _migrate(engine)
    assert revert_migrations(engine, "acme", taken) == 1
    assert migration_succeeded(engine, "acme", "a", "x:2") is None
    _migrate(engine)  # allowed again: the unique index covers succeeded rows only
    assert revert_migrations(engine, "acme", datetime.now(UTC) + timedelta(seconds=5)) == 0


def test_a_running_restore_holds_the_tenant_until_it_is_abandoned(engine: Engine) -> None:
    assert holds(engine, timedelta(hours=1)) == {}
    operation_id = start_operation(engine, "acme", "restore", backup_id=1)
    assert "restore in progress" in holds(engine, timedelta(hours=1))["acme"]
    with engine.begin() as connection:
        old = datetime.now(UTC) - timedelta(hours=2)
        connection.execute(update(OperationRow).where(OperationRow.id == operation_id).values(started_at=old))
    assert holds(engine, timedelta(hours=1)) == {}
    with engine.connect() as connection:
        status, error = connection.execute(
            select(OperationRow.status, OperationRow.error).where(OperationRow.id == operation_id)
        ).one()
    assert status == "failed" and "abandoned" in error


def test_a_request_is_claimed_once(engine: Engine) -> None:
    request_id = create_request(engine, "acme", "backup")
    assert claim_request(engine, request_id)
    assert not claim_request(engine, request_id)


def test_a_pin_is_replaced_not_duplicated(engine: Engine) -> None:
    for reason in ("first", "second"):
        write_pin(
            engine, "acme", "a", pinned_image="x:1", failed_image="x:2", reason=reason, backup_id=3, operation_id=4
        )
    (pin,) = read_pins(engine, "acme")
    assert (pin.reason, pin.backup_id) == ("second", 3)


def test_rollback_sets_the_override_and_bumps_the_generation(engine: Engine) -> None:
    assert set_service_image(engine, "acme", "a", "x:1") is None
    with engine.connect() as connection:
        assert connection.execute(select(Tenant.generation).where(Tenant.name == "acme")).scalar_one() == 2
        assert connection.execute(select(TenantService.image)).scalar_one() == "x:1"
    with pytest.raises(ValueError, match="has no service 'b'"):
        set_service_image(engine, "acme", "b", "x:1")


def test_policies_by_tenant_name(engine: Engine) -> None:
    set_policy(engine, "acme", "30 2 * * *", keep=3)
    set_policy(engine, "acme", "@daily", keep=0)
    (policy,) = read_policies(engine)
    # keep is read as written: 0 is the tenant's error (``keep_problem``), no longer silently 7.
    assert (policy.tenant, policy.schedule, policy.keep, policy.enabled) == ("acme", "@daily", 0, True)
    assert policy.keep_problem() == (
        "tenant 'acme': backup policy field keep = 0 is out of range; use 1 to 1000 "
        "(how many succeeded archives retention keeps)"
    )
    with pytest.raises(ValueError, match="not in the tenants table"):
        set_policy(engine, "nobody", "@daily", keep=1)


def test_last_successes_seed_the_backup_age_per_tenant(engine: Engine) -> None:
    from desired_state.backups import finish_backup, last_successes, start_backup

    older = start_backup(engine, "acme", "schedule", "a1.tar.gz")
    finish_backup(engine, older.id, status="succeeded", size_bytes=10, sha256="0" * 64)
    newer = start_backup(engine, "acme", "manual", "a2.tar.gz")
    newest = finish_backup(engine, newer.id, status="succeeded", size_bytes=10, sha256="1" * 64)
    failed = start_backup(engine, "globex", "schedule", "g1.tar.gz")
    finish_backup(engine, failed.id, status="failed", error="disk full")
    seeds = last_successes(engine)
    assert set(seeds) == {"acme"}
    assert newest.finished_at is not None
    assert abs(seeds["acme"].timestamp() - newest.finished_at.replace(tzinfo=seeds["acme"].tzinfo).timestamp()) < 1


def test_a_hostile_priority_is_that_requests_problem_not_a_failed_read(engine: Engine) -> None:
    good = create_request(engine, "acme", "backup", priority=5)
    bad = create_request(engine, "acme", "backup")
    # SQLite lets an INTEGER column hold text; PostgreSQL takes any 32-bit integer.
    hostile: object = "urgent" if engine.dialect.name == "sqlite" else 2**31 - 1
    with engine.begin() as connection:
        connection.execute(update(OperationRequest).where(OperationRequest.id == bad).values(priority=hostile))
    by_id = {r.id: r for r in pending_requests(engine)}
    assert (by_id[good].priority, by_id[good].problem) == (5, None)
    assert by_id[bad].priority == 0
    assert by_id[bad].problem == (
        f"request {bad} of tenant 'acme': field priority = {hostile!r} is not an integer from -100 to 100 "
        "(higher runs first; default 0)"
    )


def test_migration_0007_adds_the_priority_and_downgrades(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'm.sqlite3'}", request.getfixturevalue("postgres_url")):
        upgrade(url, "0006")
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO operation_requests (tenant, kind, restore, status) "
                        "VALUES ('acme', 'backup', false, 'pending')"
                    )
                )
            upgrade(url)
            (old,) = pending_requests(engine)
            assert (old.priority, old.problem) == (0, None)  # the server default: a row the UI wrote before
            _alembic(engine, "downgrade", "0006")
            assert "priority" not in {c["name"] for c in inspect(engine).get_columns("operation_requests")}
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM operation_requests")).scalar_one() == 1
            upgrade(url)
            assert "priority" in {c["name"] for c in inspect(engine).get_columns("operation_requests")}
        finally:
            engine.dispose()


def _alembic(engine: Engine, verb: str, revision: str) -> None:
    from alembic import command

    from desired_state.database import _alembic_config

    with engine.begin() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        getattr(command, verb)(config, revision)


def test_an_answer_never_overwrites_a_row_closed_by_recovery(engine: Engine) -> None:
    """A leader that lost its lock finishes a request a new leader's recovery already closed: the recovery stands."""
    request_id = create_request(engine, "acme", "backup")
    assert claim_request(engine, request_id)
    close_abandoned(engine, "test recovery")
    closed = get_request(engine, request_id)
    assert closed is not None and closed.status == "failed" and "abandoned" in (closed.error or "")
    assert finish_request(engine, request_id, "succeeded") is False
    after = get_request(engine, request_id)
    assert after is not None and after.status == "failed" and after.error == closed.error
