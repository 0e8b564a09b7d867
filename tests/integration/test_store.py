"""The desired-state store against real databases: SQLite files and a throwaway PostgreSQL cluster.

Covers migrations, loading (good and bad tenants side by side), YAML import/export and status write-back.
Every test runs on both backends through the ``database_url`` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, delete, event, insert, inspect, select, text, update

from desired_state import database
from desired_state.database import current_revision, head_revision, make_engine, upgrade
from desired_state.load import load_desired_state
from desired_state.model import Condition, TenantStatus
from desired_state.specs import TenantSpec
from desired_state.status import read_status, read_statuses, write_status, write_statuses
from desired_state.tables import Base, CatalogService, Tenant, TenantService, TenantStatusRow
from desired_state.yaml_io import ImportSummary, YamlImportError, export_yaml, import_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "tenants.yaml"

BRIEF_EXAMPLE = """\
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 64M, cpus: 0.25}
  b: {image: "erp/demo-svc:1", port: 8080}
tenants:
  - name: acme
    domain: acme.erp.test
    state: running
    services:
      a: {replicas: 2}
      b: {image: "erp/demo-svc:2", env: {ERP_LOCALE: fa_IR}}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def empty_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    upgrade(empty_engine)
    return empty_engine


def _now() -> datetime:
    return datetime.now(UTC)


def _add_catalog(engine: Engine, name: str, **fields: Any) -> None:
    values = {"image": "erp/demo-svc:1", "port": 8080, "health_path": "/health", "memory": "64M", "cpus": 0.25}
    values.update(fields)
    with engine.begin() as connection:
        connection.execute(insert(CatalogService).values(name=name, created_at=_now(), updated_at=_now(), **values))


def _add_tenant(engine: Engine, name: str, services: dict[str, dict[str, Any]], **fields: Any) -> int:
    """Insert a tenant the way the web UI would, bypassing every validation."""
    values: dict[str, Any] = {"domain": f"{name.lower().strip('!_')}.erp.test", "state": "running", "generation": 1}
    values.update(fields)
    with engine.begin() as connection:
        tenant_id: int = connection.execute(
            insert(Tenant).values(name=name, created_at=_now(), updated_at=_now(), **values).returning(Tenant.id)
        ).scalar_one()
        for service, override in services.items():
            connection.execute(insert(TenantService).values(tenant_id=tenant_id, service=service, **override))
    return tenant_id


def _count_selects(engine: Engine) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    return statements


# ------------------------------------------------------------------------------------------- migrations


def test_upgrade_creates_schema_on_empty_database_and_is_idempotent(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None

    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    upgrade(empty_engine)  # a second reconciler starting must find nothing to do
    assert current_revision(empty_engine) == head_revision()

    tables = set(inspect(empty_engine).get_table_names())
    assert {"catalog_services", "tenants", "tenant_services", "tenant_statuses"} <= tables


def test_migration_matches_the_table_classes(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_accepts_a_url(database_url: str) -> None:
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_deleting_a_tenant_cascades_to_its_services_but_not_its_status(engine: Engine) -> None:
    _add_catalog(engine, "a")
    tenant_id = _add_tenant(engine, "acme", {"a": {"replicas": 1}})
    write_status(engine, TenantStatus(tenant="acme", phase="Ready"))

    with engine.begin() as connection:
        connection.execute(delete(Tenant).where(Tenant.id == tenant_id))
        remaining = connection.execute(select(TenantService.id)).all()

    assert remaining == []
    status = read_status(engine, "acme")
    assert status is not None and status.phase == "Ready"


# ----------------------------------------------------------------------------------------------- load


def test_load_reports_exactly_the_bad_tenants_and_loads_the_good_ones(engine: Engine) -> None:
    _add_catalog(engine, "a", public=True)
    _add_catalog(engine, "b", migrate_command=["/bin/erp-migrate"], memory=None, cpus=None)
    _add_tenant(
        engine, "acme", {"a": {"replicas": 2}, "b": {"image": "erp/demo-svc:2", "env": {"ERP_LOCALE": "fa_IR"}}}
    )
    _add_tenant(engine, "globex", {"a": {}}, generation=7)
    _add_tenant(engine, "negative", {"a": {"replicas": -1}})
    _add_tenant(engine, "hungry", {"b": {"memory": "lots"}})
    _add_tenant(engine, "Bad_Name!", {"a": {}})
    _add_tenant(engine, "ghost", {"a": {}, "zz": {}})

    state = load_desired_state(engine)

    assert sorted(state.tenants) == ["acme", "globex"]
    assert sorted(state.errors) == ["Bad_Name!", "ghost", "hungry", "negative"]
    assert state.known == {"acme", "globex", "negative", "hungry", "Bad_Name!", "ghost"}
    assert (state.errors["negative"].field, state.errors["negative"].value) == ("services.a.replicas", -1)
    assert (state.errors["hungry"].field, state.errors["hungry"].value) == ("services.b.memory", "lots")
    assert (state.errors["Bad_Name!"].field, state.errors["Bad_Name!"].value) == ("name", "Bad_Name!")
    assert state.errors["ghost"].field == "services.zz"
    assert "not in the service catalog" in state.errors["ghost"].message
    assert state.generations == {"acme": 1, "globex": 7, "negative": 1, "hungry": 1, "Bad_Name!": 1, "ghost": 1}

    acme = state.tenants["acme"]
    assert isinstance(acme, TenantSpec)
    a, b = acme.service("a"), acme.service("b")
    assert a is not None and b is not None
    assert (a.replicas, a.memory, a.cpus, a.public) == (2, 64 * 1024**2, 0.25, True)
    # NULL catalog columns fall back to the platform defaults in specs.
    assert (b.image, b.memory, b.cpus, b.migrate, b.env) == (
        "erp/demo-svc:2",
        128 * 1024**2,
        0.5,
        ("/bin/erp-migrate",),
        (("ERP_LOCALE", "fa_IR"),),
    )


def test_load_uses_a_constant_number_of_queries(engine: Engine) -> None:
    _add_catalog(engine, "a")
    for i in range(12):
        _add_tenant(engine, f"tenant-{i}", {"a": {"replicas": 1}})
    selects = _count_selects(engine)

    state = load_desired_state(engine)

    assert len(state.tenants) == 12
    # catalog, tenants, tenant services, their routes and their versions
    assert len(selects) == 5


def test_invalid_catalog_entry_only_affects_tenants_using_it(engine: Engine) -> None:
    _add_catalog(engine, "a")
    _add_catalog(engine, "c", memory="lots")
    _add_tenant(engine, "acme", {"a": {}})
    _add_tenant(engine, "globex", {"a": {}, "c": {}})

    state = load_desired_state(engine)

    assert sorted(state.tenants) == ["acme"]
    error = state.errors["globex"]
    assert error.field == "services.c"
    assert "catalog entry 'c' is invalid" in error.message and "'lots'" in error.message
    assert sorted(state.catalog) == ["a"]


def test_env_that_is_not_an_object_is_reported_on_its_tenant(engine: Engine) -> None:
    _add_catalog(engine, "a")
    _add_tenant(engine, "acme", {"a": {"env": ["ERP_LOCALE=fa_IR"]}})
    _add_tenant(engine, "globex", {"a": {"env": {"ERP_LOCALE": "fa_IR"}}})

    state = load_desired_state(engine)

    assert sorted(state.tenants) == ["globex"]
    assert state.errors["acme"].field == "services.a.env"


def test_malformed_env_json_is_reported_on_its_tenant(tmp_path: Path) -> None:
    """SQLite only: PostgreSQL's json type refuses malformed JSON on write, so it cannot be stored there."""
    engine = make_engine(f"sqlite:///{tmp_path / 'json.sqlite3'}")
    upgrade(engine)
    _add_catalog(engine, "a")
    acme = _add_tenant(engine, "acme", {"a": {}})
    _add_tenant(engine, "globex", {"a": {}})
    with engine.begin() as connection:
        connection.execute(text("UPDATE tenant_services SET env = '{not json' WHERE tenant_id = :id"), {"id": acme})

    state = load_desired_state(engine)
    exported = export_yaml(engine)
    engine.dispose()

    assert sorted(state.tenants) == ["globex"]
    assert state.errors["acme"].field == "services.a.env"
    assert "not valid JSON" in state.errors["acme"].message
    assert "env: '{not json'" in exported


def test_load_of_an_empty_database(engine: Engine) -> None:
    state = load_desired_state(engine)
    assert (state.tenants, state.errors, state.catalog, state.generations) == ({}, {}, {}, {})


# ------------------------------------------------------------------------------------------------- YAML


def _generations(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {name: gen for name, gen in connection.execute(select(Tenant.name, Tenant.generation))}


def test_import_of_the_documented_format(engine: Engine) -> None:
    summary = import_yaml(engine, BRIEF_EXAMPLE)

    assert summary == ImportSummary(created=1, catalog_created=2, changed_tenants=("acme",))
    acme = load_desired_state(engine).tenants["acme"]
    a, b = acme.service("a"), acme.service("b")
    assert a is not None and b is not None
    assert (a.replicas, a.memory, b.image, b.env) == (2, 64 * 1024**2, "erp/demo-svc:2", (("ERP_LOCALE", "fa_IR"),))


def test_example_file_round_trips_through_export_and_import(engine: Engine) -> None:
    first = import_yaml(engine, EXAMPLE.read_text(), source=str(EXAMPLE))
    assert first.created == 3 and first.catalog_created == 6
    exported = export_yaml(engine)

    again = import_yaml(engine, exported)

    assert again == ImportSummary(unchanged=3, catalog_unchanged=6)
    assert export_yaml(engine) == exported
    assert _generations(engine) == {"acme": 1, "globex": 1, "initech": 1}
    state = load_desired_state(engine)
    assert sorted(state.tenants) == ["acme", "globex", "initech"] and state.errors == {}
    containers = sum(s.replicas for t in state.tenants.values() if t.state == "running" for s in t.services)
    assert containers <= 8


def test_export_prints_memory_normalised_and_invalid_values_as_stored(engine: Engine) -> None:
    _add_catalog(engine, "a", memory="65536k", migrate_command=["/bin/erp-migrate", "--yes"], public=True)
    _add_tenant(engine, "acme", {"a": {"replicas": -1, "memory": "lots", "env": {"B": "2", "A": "1"}}})

    exported = export_yaml(engine)

    assert "memory: 64M" in exported
    assert "memory: lots" in exported and "replicas: -1" in exported
    assert exported.index("A: '1'") < exported.index("B: '2'")
    with pytest.raises(YamlImportError, match=r"services\.a\.replicas"):
        import_yaml(engine, exported)


def test_import_bumps_generation_only_for_changed_tenants(engine: Engine) -> None:
    import_yaml(engine, EXAMPLE.read_text())
    changed = EXAMPLE.read_text().replace("domain: globex.erp.test", "domain: globex.example.test")
    assert changed != EXAMPLE.read_text()

    summary = import_yaml(engine, changed)

    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 2)
    assert summary.changed_tenants == ("globex",)
    assert _generations(engine) == {"acme": 1, "globex": 2, "initech": 1}


def test_import_sets_services_exactly_and_leaves_other_tenants_alone(engine: Engine) -> None:
    import_yaml(engine, EXAMPLE.read_text())
    import_yaml(engine, BRIEF_EXAMPLE.replace("a: {replicas: 2}", "c: {replicas: 1}"))

    state = load_desired_state(engine)

    assert sorted(state.tenants) == ["acme", "globex", "initech"]
    assert [s.name for s in state.tenants["acme"].services] == ["b", "c"]
    assert _generations(engine)["acme"] == 2
    # The brief's catalog entry for a replaced the example's: explicit fields only, the rest default.
    assert state.catalog["a"].public is False and state.catalog["c"].memory == 32 * 1024**2


def test_import_treats_other_spellings_of_the_same_memory_as_unchanged(engine: Engine) -> None:
    _add_catalog(engine, "a", memory="65536K")
    _add_tenant(engine, "acme", {"a": {"memory": "64m", "replicas": 2}}, domain="acme.erp.test")
    document = """
tenants:
  - {name: acme, domain: acme.erp.test, state: running, services: {a: {replicas: 2, memory: 64M}}}
"""
    assert import_yaml(engine, document) == ImportSummary(unchanged=1)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("catalog: {a: {image: x}\n", r"t\.yaml:2:1: YAML syntax error"),
        ("tenants:\n  - name: acme\n  domain: x\n", r"t\.yaml:3:3: YAML syntax error"),
        ("catalog: {a: !!python/object:os.system {}}\n", r"t\.yaml:1:14: YAML syntax error"),
        ("", r"t\.yaml: the document is empty"),
        ("- just a list\n", r"t\.yaml:1:1: expected a mapping"),
        ("tenant: []\n", r"t\.yaml:1:9: tenant: unknown top-level key"),
        ("tenants: {acme: {}}\n", r"t\.yaml:1:10: tenants: must be a list"),
        ("catalog: {a: {image: 'erp/demo-svc:1'}, a: {image: x}}\n", r"t\.yaml:1:41: duplicate key 'a' in catalog"),
    ],
)
def test_import_reports_malformed_documents_with_their_position(engine: Engine, document: str, expected: str) -> None:
    import_yaml(engine, EXAMPLE.read_text())
    before = export_yaml(engine)

    with pytest.raises(YamlImportError, match=expected):
        import_yaml(engine, document, source="t.yaml")

    assert export_yaml(engine) == before


def test_invalid_field_is_reported_with_line_column_and_path_and_nothing_is_written(engine: Engine) -> None:
    import_yaml(engine, EXAMPLE.read_text())
    before, generations = export_yaml(engine), _generations(engine)
    document = """\
catalog:
  a: {image: "erp/demo-svc:3"}
tenants:
  - name: newco
    domain: newco.erp.test
    services: {a: {}}
  - name: acme
    domain: acme.erp.test
    services:
      a: {replicas: -1}
  - name: Bad_Name!
    domain: bad.erp.test
  - name: globex
    domain: globex.erp.test
    services: {zz: {}}
"""

    with pytest.raises(YamlImportError) as caught:
        import_yaml(engine, document, source="t.yaml")

    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("t.yaml:10:21: tenants[1] (tenant 'acme'): services.a.replicas = -1: ")
    assert problems[1].startswith("t.yaml:11:11: tenants[2] (tenant 'Bad_Name!'): name = 'Bad_Name!': ")
    assert problems[2].startswith("t.yaml:15:20: tenants[3] (tenant 'globex'): services.zz = 'zz': ")
    assert "not in the service catalog" in problems[2]
    assert export_yaml(engine) == before and _generations(engine) == generations


def test_invalid_catalog_entry_in_the_file_is_reported_and_blocks_the_import(engine: Engine) -> None:
    document = """\
catalog:
  a: {image: "erp/demo-svc:1", memory: lots}
  b: {image: "erp/demo-svc:1", migrate: /bin/erp-migrate}
tenants:
  - {name: acme, domain: acme.erp.test, services: {a: {}}}
"""
    with pytest.raises(YamlImportError) as caught:
        import_yaml(engine, document, source="t.yaml")

    problems = caught.value.problems
    assert problems[0].startswith("t.yaml:2:40: catalog.a: memory = 'lots': is not a size")
    assert problems[1].startswith("t.yaml:3:41: catalog.b: migrate = '/bin/erp-migrate': ")
    assert problems[2].startswith("t.yaml:5:55: tenants[0] (tenant 'acme'): services.a = 'a': catalog entry 'a'")
    assert export_yaml(engine) == "catalog: {}\ntenants: []\n"


def test_import_validates_against_the_database_catalog(engine: Engine) -> None:
    import_yaml(engine, EXAMPLE.read_text())
    document = "tenants:\n  - {name: hooli, domain: hooli.erp.test, services: {f: {replicas: 2}}}\n"

    assert import_yaml(engine, document).created == 1
    hooli = load_desired_state(engine).tenants["hooli"].service("f")
    assert hooli is not None and hooli.replicas == 2


def test_duplicate_tenant_names_are_refused(engine: Engine) -> None:
    document = """\
catalog: {a: {image: "erp/demo-svc:1"}}
tenants:
  - {name: acme, domain: acme.erp.test}
  - {name: acme, domain: other.erp.test}
"""
    with pytest.raises(YamlImportError, match=r"t\.yaml:4:12: tenants\[1\]\.name: tenant 'acme' is listed twice"):
        import_yaml(engine, document, source="t.yaml")


# ----------------------------------------------------------------------------------------------- status


def test_status_round_trip_and_last_transition_changes_only_with_the_status(engine: Engine) -> None:
    t0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    ready = Condition(type="Ready", status="True", reason="AllReplicasReady", message="2/2")
    valid = Condition(type="Valid", status="True", reason="SpecValid")
    first = TenantStatus(
        tenant="acme",
        phase="Ready",
        conditions=(ready, valid),
        observed_generation=3,
        applied_hash="abc123",
        last_reconciled_at=t0,
    )

    written = write_status(engine, first, now=t0)

    assert written.condition("Ready") == Condition("Ready", "True", "AllReplicasReady", "2/2", t0)
    assert read_status(engine, "acme") == written

    # Same status later, new message: the transition time stays.
    later = TenantStatus(
        tenant="acme",
        phase="Ready",
        conditions=(Condition("Ready", "True", "AllReplicasReady", "3/3", last_transition=t0 + timedelta(hours=2)),),
        observed_generation=4,
    )
    write_status(engine, later, now=t0 + timedelta(hours=1))
    stored = read_status(engine, "acme")
    assert stored is not None
    assert stored.condition("Ready") == Condition("Ready", "True", "AllReplicasReady", "3/3", t0)
    assert stored.condition("Valid") is None
    assert (stored.observed_generation, stored.applied_hash, stored.last_reconciled_at) == (4, None, None)

    # The status flips: now it moves.
    t2 = t0 + timedelta(hours=3)
    failing = TenantStatus(
        tenant="acme",
        phase="Degraded",
        conditions=(Condition("Ready", "False", "ContainerUnhealthy", "1/3"),),
        last_error="container acme-a-2 unhealthy",
    )
    write_status(engine, failing, now=t2)
    stored = read_status(engine, "acme")
    assert stored is not None and stored.condition("Ready") == Condition(
        "Ready", "False", "ContainerUnhealthy", "1/3", t2
    )
    assert (stored.phase, stored.last_error) == ("Degraded", "container acme-a-2 unhealthy")


def test_status_keeps_non_utc_times_as_the_same_instant(engine: Engine) -> None:
    tehran = datetime(2025, 3, 1, 15, 30, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tehran"))
    status = TenantStatus(
        tenant="acme",
        phase="Ready",
        conditions=(Condition("Ready", "True", "Ok", last_transition=tehran),),
        last_reconciled_at=tehran,
    )

    write_status(engine, status)
    stored = read_status(engine, "acme")

    assert stored is not None and stored.last_reconciled_at == tehran
    assert stored.last_reconciled_at.tzinfo == UTC
    ready = stored.condition("Ready")
    assert ready is not None and ready.last_transition == tehran


def test_read_statuses_lists_all_sorted_and_unknown_tenant_is_none(engine: Engine) -> None:
    for name in ("globex", "acme", "initech"):
        write_status(engine, TenantStatus(tenant=name, phase="Pending"))
    write_status(engine, TenantStatus(tenant="acme", phase="Invalid", last_error="replicas = -1"))

    statuses = read_statuses(engine)

    assert [s.tenant for s in statuses] == ["acme", "globex", "initech"]
    assert (statuses[0].phase, statuses[0].last_error) == ("Invalid", "replicas = -1")
    assert read_status(engine, "nobody") is None
    with engine.connect() as connection:
        raw = connection.execute(select(TenantStatusRow.conditions, TenantStatusRow.updated_at)).all()
    assert all(conditions == [] and updated is not None for conditions, updated in raw)


def test_status_conditions_are_stored_as_json_the_ui_can_read(engine: Engine) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    write_status(engine, TenantStatus("acme", "Ready", (Condition("Ready", "True", "Ok", "fine"),)), now=t0)

    with engine.connect() as connection:
        stored = connection.execute(text("SELECT CAST(conditions AS TEXT) FROM tenant_statuses")).scalar_one()

    assert json.loads(stored) == [
        {"type": "Ready", "status": "True", "reason": "Ok", "message": "fine", "last_transition": t0.isoformat()}
    ]


# ---------------------------------------------------------------------------------------------- database


def test_database_url_defaults_to_sqlite_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database.database_url(None) == f"sqlite:///{tmp_path / 'reconciler.sqlite3'}"
    assert database.database_url("  ") == database.database_url(None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/erp", "postgresql+psycopg2://postgres@127.0.0.1:5432/erp"),
        ("postgresql+psycopg2://u:p@db/erp", "postgresql+psycopg2://u:p@db/erp"),
        ("postgres://u:p@db/erp", "postgresql+psycopg2://u:p@db/erp"),
        ("sqlite:////var/lib/reconciler/db.sqlite3", "sqlite:////var/lib/reconciler/db.sqlite3"),
    ],
)
def test_database_url_accepts_postgresql_and_sqlite(url: str, expected: str) -> None:
    assert database.database_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u:secret@db/erp", "postgresql+asyncpg://u:secret@db/erp", "not a url"])
def test_database_url_refuses_other_backends_without_echoing_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="not") as caught:
        database.database_url(url)
    assert "secret" not in str(caught.value)


def test_sqlite_engine_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fk.sqlite3'}")
    try:
        upgrade(engine)
        with pytest.raises(Exception, match="FOREIGN KEY"), engine.begin() as connection:
            connection.execute(insert(TenantService).values(tenant_id=999, service="a"))
    finally:
        engine.dispose()


def test_tenants_update_bumps_generation_like_the_ui(engine: Engine) -> None:
    """The UI's edit: the documented UPDATE statement from docs/schema.md works as written."""
    _add_tenant(engine, "acme", {}, domain="acme.erp.test")
    with engine.begin() as connection:
        connection.execute(
            update(Tenant)
            .where(Tenant.name == "acme")
            .values(state="stopped", generation=Tenant.generation + 1, updated_at=_now())
        )
    assert _generations(engine) == {"acme": 2}
    assert load_desired_state(engine).tenants["acme"].state == "stopped"


def _statements(engine: Engine) -> list[str]:
    """Every statement the engine sends from now on (the verb and table), executemany counted once."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()[:1]).upper())

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_a_pass_of_unchanged_statuses_reads_once_and_touches_only_the_pass_time(engine: Engine) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    ready = Condition("Ready", "True", "AllReplicasReady", "1/1")
    first = [TenantStatus(f"t{i}", "Ready", (ready,), observed_generation=1, last_reconciled_at=t0) for i in range(30)]
    write_statuses(engine, first, now=t0)

    t1 = t0 + timedelta(minutes=5)
    again = [TenantStatus(s.tenant, "Ready", (ready,), observed_generation=1, last_reconciled_at=t1) for s in first]
    seen = _statements(engine)
    written = write_statuses(engine, again, now=t1)

    # One SELECT for the 30 rows and one UPDATE (executemany) of the pass time; no per-tenant statement.
    assert [s for s in seen if s in ("SELECT", "INSERT", "UPDATE")] == ["SELECT", "UPDATE"]
    assert [s.condition("Ready") for s in written] == [Condition("Ready", "True", "AllReplicasReady", "1/1", t0)] * 30
    stored = read_statuses(engine)
    assert [s.last_reconciled_at for s in stored] == [t1] * 30
    assert all(s.condition("Ready") == Condition("Ready", "True", "AllReplicasReady", "1/1", t0) for s in stored)
    with engine.connect() as connection:
        updated = connection.execute(select(TenantStatusRow.updated_at)).scalars().all()
    assert updated == [t1] * 30


def test_a_pass_writes_changed_and_new_rows_in_full_in_one_statement(engine: Engine) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    ready = Condition("Ready", "True", "Ok")
    write_statuses(engine, [TenantStatus(n, "Ready", (ready,), observed_generation=1) for n in ("a", "b", "c")], now=t0)

    t1 = t0 + timedelta(hours=1)
    failing = Condition("Ready", "False", "ContainerUnhealthy", "0/1")
    batch = [
        TenantStatus("a", "Ready", (ready,), observed_generation=1),  # unchanged
        TenantStatus("b", "Degraded", (failing,), observed_generation=1, last_error="b-a-1 unhealthy"),
        TenantStatus("c", "Ready", (ready,), observed_generation=2),  # generation moved
        TenantStatus("d", "Pending"),  # new
    ]
    seen = _statements(engine)
    write_statuses(engine, batch, now=t1)

    # Read, upsert the changed rows, touch the unchanged one, then b's Ready transition into the condition history
    # (one insert for the pass, and the bound kept with one delete: desired_state.condition_history).
    assert [s for s in seen if s in ("SELECT", "INSERT", "UPDATE", "DELETE")] == [
        "SELECT",
        "INSERT",
        "UPDATE",
        "INSERT",
        "DELETE",
    ]
    stored = {s.tenant: s for s in read_statuses(engine)}
    assert stored["a"].condition("Ready") == Condition("Ready", "True", "Ok", "", t0)
    assert (stored["b"].phase, stored["b"].last_error) == ("Degraded", "b-a-1 unhealthy")
    assert stored["b"].condition("Ready") == Condition("Ready", "False", "ContainerUnhealthy", "0/1", t1)
    assert (stored["c"].observed_generation, stored["c"].condition("Ready")) == (
        2,
        Condition("Ready", "True", "Ok", "", t0),
    )
    assert stored["d"].phase == "Pending"

    # A tenant listed twice in one batch: the later entry wins, its transition measured against the earlier.
    t2 = t1 + timedelta(hours=1)
    write_statuses(
        engine, [TenantStatus("a", "Degraded", (failing,)), TenantStatus("a", "Degraded", (failing,))], now=t2
    )
    again = read_status(engine, "a")
    assert again is not None and (again.phase, again.condition("Ready")) == (
        "Degraded",
        Condition("Ready", "False", "ContainerUnhealthy", "0/1", t2),
    )
