"""Routes and weighted versions in the desired-state store: migration, YAML round trip, loading, validation,
cross-tenant conflicts. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, insert, select, update

from desired_state.database import make_engine, upgrade
from desired_state.load import load_desired_state
from desired_state.tables import Tenant, TenantService, TenantServiceRoute, TenantServiceVersion
from desired_state.yaml_io import export_yaml, import_yaml

pytestmark = pytest.mark.integration

ROUTED = """\
catalog:
  a: {image: "erp/demo-svc:1", public: true}
  b: {image: "erp/demo-svc:1", port: 9090}
tenants:
  - name: acme
    domain: acme.erp.test
    services:
      a:
        replicas: 2
        route: {deny: [203.0.113.7, "2001:db8::/32"]}
        versions:
          - {image: "erp/demo-svc:1", weight: 90}
          - {image: "erp/demo-svc:2", weight: 10, replicas: 1}
      b:
        route: {host: reports.acme.erp.test, path: /r/, allow: [10.0.0.0/8]}
  - name: globex
    domain: globex.erp.test
    services:
      b: {route: {}}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'routes.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = make_engine(url)
    upgrade(built)
    yield built
    built.dispose()


def test_yaml_routes_and_versions_load_as_specs(engine: Engine) -> None:
    summary = import_yaml(engine, ROUTED, source="routed.yaml")
    assert summary.created == 2
    state = load_desired_state(engine)
    assert state.errors == {}
    a = state.tenants["acme"].service("a")
    assert a is not None and a.route is not None
    assert (a.route.host, a.route.path, a.route.deny) == ("acme.erp.test", None, ("203.0.113.7/32", "2001:db8::/32"))
    assert [(v.track, v.image, v.replicas, v.weight) for v in a.tracks()] == [
        ("", "erp/demo-svc:1", 2, 90),
        ("b", "erp/demo-svc:2", 1, 10),
    ]
    b = state.tenants["acme"].service("b")
    assert b is not None and b.route is not None
    assert (b.route.address, b.route.allow) == ("reports.acme.erp.test/r", ("10.0.0.0/8",))
    # An empty route exposes a non-public service at the tenant's domain.
    globex = state.tenants["globex"].service("b")
    assert globex is not None and globex.route is not None and globex.route.address == "globex.erp.test"


def test_export_round_trips_routes_and_versions(engine: Engine) -> None:
    import_yaml(engine, ROUTED)
    exported = export_yaml(engine)
    document = yaml.safe_load(exported)
    acme = next(t for t in document["tenants"] if t["name"] == "acme")
    assert acme["services"]["a"]["route"] == {"deny": ["203.0.113.7/32", "2001:db8::/32"]}
    assert acme["services"]["a"]["versions"] == [
        {"image": "erp/demo-svc:1", "weight": 90},
        {"image": "erp/demo-svc:2", "replicas": 1, "weight": 10},
    ]
    assert acme["services"]["b"]["route"] == {"host": "reports.acme.erp.test", "path": "/r", "allow": ["10.0.0.0/8"]}
    globex = next(t for t in document["tenants"] if t["name"] == "globex")
    assert globex["services"]["b"] == {"replicas": 1, "route": {}}
    again = import_yaml(engine, exported)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert export_yaml(engine) == exported


def test_changing_weights_replaces_only_version_rows(engine: Engine) -> None:
    import_yaml(engine, ROUTED)
    with engine.connect() as connection:
        route_ids = set(connection.execute(select(TenantServiceRoute.id)).scalars())
        generation = connection.execute(select(Tenant.generation).where(Tenant.name == "acme")).scalar_one()
    summary = import_yaml(engine, ROUTED.replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50"))
    assert summary.changed_tenants == ("acme",)
    with engine.connect() as connection:
        assert set(connection.execute(select(TenantServiceRoute.id)).scalars()) == route_ids
        weights = connection.execute(select(TenantServiceVersion.weight).order_by(TenantServiceVersion.position))
        assert list(weights.scalars()) == [50, 50]
        assert connection.execute(select(Tenant.generation).where(Tenant.name == "acme")).scalar_one() == generation + 1
    a = load_desired_state(engine).tenants["acme"].service("a")
    assert a is not None and [v.weight for v in a.versions] == [50, 50]


def test_invalid_yaml_route_is_reported_with_its_position(engine: Engine) -> None:
    from desired_state.yaml_io import YamlImportError

    with pytest.raises(YamlImportError) as caught:
        import_yaml(engine, ROUTED.replace("10.0.0.0/8", "10.0.0.0/33"), source="bad.yaml")
    problem = caught.value.problems[0]
    assert problem.startswith("bad.yaml:15:")
    assert "services.b.route.allow" in problem and "10.0.0.0/33" in problem


def _service_id(engine: Engine, tenant: str, service: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(TenantService.id)
                .join(Tenant, Tenant.id == TenantService.tenant_id)
                .where(Tenant.name == tenant, TenantService.service == service)
            ).scalar_one()
        )


def _ui_writes(engine: Engine, table: Any, **values: Any) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(table).values(created_at=now, updated_at=now, **values))


def test_rows_written_by_the_ui_are_validated_per_tenant(engine: Engine) -> None:
    import_yaml(engine, ROUTED.split("  - name: globex")[0])
    import_yaml(
        engine,
        ROUTED.split("tenants:")[0] + "tenants:\n  - {name: globex, domain: globex.erp.test, services: {a: {}}}\n",
    )
    service = _service_id(engine, "globex", "a")
    # Malformed JSON text (possible on SQLite), a bad CIDR, a zero weight sum: each stays with its tenant.
    _ui_writes(engine, TenantServiceRoute, tenant_service_id=service, allow=["300.0.0.0/8"])
    state = load_desired_state(engine)
    assert set(state.tenants) == {"acme"}
    error = state.errors["globex"]
    assert (error.field, error.value) == ("services.a.route.allow", ["300.0.0.0/8"])

    with engine.begin() as connection:
        connection.execute(update(TenantServiceRoute).values(allow=None))
    for position in (0, 1):
        _ui_writes(
            engine,
            TenantServiceVersion,
            tenant_service_id=service,
            position=position,
            image=f"erp/demo-svc:{position + 1}",
            weight=0,
        )
    error = load_desired_state(engine).errors["globex"]
    assert error.field == "services.a.versions" and "sum to 0" in error.message


def test_base_domain_and_route_conflicts(engine: Engine) -> None:
    import_yaml(engine, ROUTED.split("  - name: globex")[0])
    state = load_desired_state(engine, base_domain="erp.test")
    assert "acme" in state.tenants
    state = load_desired_state(engine, base_domain="example.com")
    error = state.errors["acme"]
    assert (error.tenant, error.field, error.value) == ("acme", "domain", "acme.erp.test")
    assert "example.com" in error.message

    # A newer tenant claiming acme's reports host loses; acme keeps serving.
    import_yaml(
        engine,
        ROUTED.split("tenants:")[0]
        + "tenants:\n  - name: newco\n    domain: newco.erp.test\n    services:\n"
        + "      b: {route: {host: reports.acme.erp.test, path: /r/x}}\n",
    )
    state = load_desired_state(engine)
    assert "acme" in state.tenants
    error = state.errors["newco"]
    assert (error.field, error.value) == ("services.b.route", "reports.acme.erp.test/r/x")
    assert "'acme'" in error.message
