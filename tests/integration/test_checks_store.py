"""Checks in the database (SQLite and the session's PostgreSQL): YAML import and export carry them, a hostile row
stays its tenant's error, ``tenant_checks`` keeps each check's latest verdict and retention is bounded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from desired_state.check_results import latest_results, prune_results, recent_results, record_results
from desired_state.check_tables import TenantCheckRow
from desired_state.database import make_engine, upgrade
from desired_state.load import load_desired_state
from desired_state.tables import CatalogService, Tenant, TenantService
from desired_state.yaml_io import export_yaml, import_yaml
from reconciler.core.checks import CheckResult

pytestmark = pytest.mark.integration

DOCUMENT = """\
catalog:
  a:
    image: erp/demo-svc:1
    public: true
    checks:
    - name: home
      path: /
      body_contains: version=1
    checks_rollback: false
tenants:
- name: acme
  domain: acme.erp.test
  services:
    a:
      checks:
      - name: api
        path: /api/status
        json_path: data.state
        json_value: up
        timeout: 2.5
- name: globex
  domain: globex.erp.test
  services:
    a:
      checks: []
- name: initech
  domain: initech.erp.test
  services:
    a: {}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'checks.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_yaml_carries_checks_both_ways_and_a_reimport_changes_nothing(engine: Engine) -> None:
    import_yaml(engine, DOCUMENT)
    desired = load_desired_state(engine)
    assert desired.errors == {}
    acme, globex, initech = (desired.tenants[n].services[0] for n in ("acme", "globex", "initech"))
    assert [(c.name, c.json_path, c.json_value, c.timeout) for c in acme.checks] == [("api", "data.state", "up", 2.5)]
    assert globex.checks == ()
    assert [c.body_contains for c in initech.checks] == ["version=1"] and initech.checks_rollback is False
    exported = export_yaml(engine)
    assert "checks: []" in exported and "checks_rollback: false" in exported and "json_value: up" in exported
    summary = import_yaml(engine, exported)
    assert (summary.updated, summary.unchanged, summary.catalog_updated) == (0, 3, 0)


def test_a_hostile_checks_row_is_its_tenants_error_only(engine: Engine) -> None:
    import_yaml(engine, DOCUMENT)
    with engine.begin() as connection:
        acme = connection.execute(select(Tenant.id).where(Tenant.name == "acme")).scalar_one()
        connection.execute(
            update(TenantService)
            .where(TenantService.tenant_id == acme)
            .values(checks=[{"name": "x", "path": "/" + "%" * 5000, "evil": True}])
        )
    desired = load_desired_state(engine)
    problem = desired.errors["acme"]
    assert problem.field.startswith("services.a.checks.0") and len(problem.shown) <= 60
    assert set(desired.tenants) == {"globex", "initech"}


def test_a_broken_catalog_check_is_reported_on_the_tenants_that_use_it(engine: Engine) -> None:
    import_yaml(engine, DOCUMENT)
    with engine.begin() as connection:
        connection.execute(update(CatalogService).values(checks={"not": "a list"}))
    desired = load_desired_state(engine)
    # acme and globex declare their own lists, initech inherits the broken one: all three use the entry.
    assert "catalog entry 'a' is invalid: checks" in str(desired.errors["initech"])


def result(check: str, outcome: str, image: str = "erp/demo-svc:1") -> CheckResult:
    return CheckResult("acme", "a", check, image, outcome, 0.02, "status 200", "schedule")  # type: ignore[arg-type]


def test_latest_results_and_bounded_retention(engine: Engine) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    record_results(engine, [result("home", "passed"), result("old", "failed")], long_ago)
    for minute in range(5):
        record_results(engine, [result("home", "failed" if minute == 4 else "passed")], datetime.now(UTC))
    latest = {(s.result.check, s.result.outcome) for s in latest_results(engine, "acme")}
    assert latest == {("home", "failed"), ("old", "failed")}
    gone = prune_results(engine, keep=2, before=datetime.now(UTC) - timedelta(days=14))
    # home: 6 rows, 2 kept; old: its only (and latest) row stays however old.
    assert gone == 4
    rows = [(s.result.check, s.result.outcome) for s in recent_results(engine, "acme")]
    assert rows == [("home", "failed"), ("home", "passed"), ("old", "failed")]
    with engine.begin() as connection:
        connection.execute(
            insert(TenantCheckRow).values(
                tenant="acme",
                service="a",
                check_name="home",
                image="x",
                outcome="weird",
                latency_seconds=0,
                detail="",
                trigger="manual",
                checked_at=datetime.now(UTC),
            )
        )
    # A row written by hand with an unknown outcome reads as failed, never as passed.
    assert next(s for s in latest_results(engine, "acme") if s.result.check == "home").result.failed
