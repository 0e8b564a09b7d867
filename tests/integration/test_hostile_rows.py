"""Hostile rows stay local: random nonsense written straight into every desired-state column of one tenant
(and one catalog entry only it uses) never stops the load, never changes the other tenants, and never puts
the tenant's secret env value into an error message. Property-based (hypothesis), on SQLite and PostgreSQL.

Values are written with plain SQL, bypassing every validation as the web UI could; on PostgreSQL only what the
column types accept (no NUL in text, integers in range), on SQLite anything.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from desired_state.database import make_engine, upgrade
from desired_state.load import load_desired_state
from desired_state.model import DesiredState
from desired_state.yaml_io import import_yaml

GOOD = """\
catalog:
  a: {image: "erp/demo-svc:1", memory: 64M, cpus: 0.25, public: true}
  b: {image: "erp/demo-svc:1", migrate: ["/bin/erp-migrate"]}
tenants:
  - name: acme
    domain: acme.erp.test
    services:
      a: {replicas: 2, route: {deny: [203.0.113.0/24]}}
      b: {env: {ERP_LOCALE: fa_IR}}
  - name: globex
    domain: globex.erp.test
    services:
      a: {}
"""
SECRET_PREFIX = "s3cr3t-"
_names = itertools.count()

# Text a UI could store: unicode, long, control characters, number-like, path-like.
hostile_text = st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from("x\u0000é😀/"), st.integers(300, 70_000)).map(lambda c: c[0] * c[1]),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1", "0", "9" * 400, "../../etc/passwd", "/a/../b", "lots", ""]),
    st.from_regex(r"[a-z0-9./:-]{1,60}", fullmatch=True),
)
huge_int = st.one_of(st.integers(), st.integers(min_value=2**63, max_value=2**70), st.integers(max_value=-(2**63)))
json_scalar = st.one_of(
    st.none(), st.booleans(), huge_int, st.floats(allow_nan=False, allow_infinity=False), hostile_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(hostile_text, inner, max_size=5),
    max_leaves=8,
)
hostile_json_text = st.one_of(
    json_value.map(json.dumps),
    # Long lists: distinct IPv6 /128s (the deny list of issue 11), or CIDRs mixed with junk.
    st.integers(400, 1200).map(lambda n: json.dumps([f"2001:db8::{i:x}" for i in range(n)])),
    st.integers(400, 1200).map(lambda n: json.dumps(["10.0.0.0/8", "x", 1, None] * (n // 4))),
    st.sampled_from(["[[[[[[[[", "{", "NaN", '"\\u0000"', "[" * 5000 + "]" * 5000]),
)


def _column(postgres: bool, kind: str) -> st.SearchStrategy[Any]:
    """Hostile values a column of this kind accepts on the backend (SQLite's columns accept anything)."""
    # PostgreSQL refuses NUL in text, text past varchar(n) and JSON that does not parse: the UI cannot write those.
    pg_text = hostile_text.map(lambda s: s.replace("\x00", "")[: 64 if kind == "text64" else 255])
    if not postgres:
        anything = st.one_of(hostile_text, huge_int, st.floats(), st.none())
        return hostile_json_text if kind == "json" else anything
    return {
        "text": pg_text,
        "text64": pg_text,
        "int": st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "bigint": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "float": st.floats(),
        "bool": st.booleans(),
        "json": hostile_json_text.filter(_parses),
    }[kind]


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _insert(connection: Any, table: str, values: dict[str, Any], json_columns: tuple[str, ...] = ()) -> int:
    postgres = connection.dialect.name == "postgresql"
    # sqlite3 cannot bind integers past 64 bits; as text, SQLite's column affinity stores them as it would the UI's.
    values = {k: str(v) if isinstance(v, int) and not -(2**63) <= v < 2**63 else v for k, v in values.items()}
    names = ", ".join(values)
    params = ", ".join(f"CAST(:{k} AS json)" if postgres and k in json_columns else f":{k}" for k in values)
    row = connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({params}) RETURNING id"), values)
    return int(row.scalar_one())


@st.composite
def hostile_tenant(draw: st.DrawFn, postgres: bool) -> dict[str, Any]:
    col = lambda kind: draw(_column(postgres, kind))  # noqa: E731
    secret = SECRET_PREFIX + draw(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8))
    bad_key = draw(st.one_of(hostile_text, st.just("1BAD KEY")))
    env = {"DB_PASSWORD": secret, bad_key.replace("\x00", "") if postgres else bad_key: col("text")}
    return {
        "secret": secret,
        "catalog": {
            "image": col("text") or "x",
            "port": col("int"),
            "health_path": col("text"),
            "memory": col("text64"),
            "cpus": col("float"),
            "migrate_command": col("json"),
            "public": col("bool"),
            "checks": col("json"),
            "checks_rollback": col("bool"),
        },
        "tenant": {"domain": col("text") or "x", "state": col("text") or "x", "generation": col("bigint")},
        "service": {
            "image": col("text"),
            "replicas": col("int"),
            "memory": col("text64"),
            "cpus": col("float"),
            "checks": col("json"),
        },
        "env": draw(st.one_of(st.just(json.dumps(env)), hostile_json_text.map(lambda t: t))),
        "env_with_secret": json.dumps(env),
        "route": {"host": col("text"), "path": col("text"), "allow": col("json"), "deny": col("json")},
        "version": {"image": col("text") or "x", "replicas": col("int"), "weight": col("int") or 0},
    }


def _write(engine: Engine, rows: dict[str, Any]) -> str:
    """The hostile tenant (two services: the hostile catalog entry's and ``a``) and its catalog entry."""
    n = next(_names)
    name, entry = f"hostile-{n}", f"h{n}"
    with engine.begin() as connection:
        _insert(connection, "catalog_services", {"name": entry, **rows["catalog"]}, ("migrate_command", "checks"))
        tenant_id = _insert(connection, "tenants", {"name": name, **rows["tenant"]})
        for service, env in ((entry, rows["env"]), ("a", rows["env_with_secret"])):
            service_id = _insert(
                connection,
                "tenant_services",
                {"tenant_id": tenant_id, "service": service, **rows["service"], "env": env},
                ("env", "checks"),
            )
            _insert(
                connection,
                "tenant_service_routes",
                {"tenant_service_id": service_id, **rows["route"]},
                ("allow", "deny"),
            )
            _insert(
                connection,
                "tenant_service_versions",
                {"tenant_service_id": service_id, "position": 0, **rows["version"]},
            )
    return name


def _erase(engine: Engine) -> None:
    """Remove the hostile rows (services, routes and versions go with their tenant: ON DELETE CASCADE)."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM tenants WHERE name LIKE 'hostile-%'"))
        connection.execute(text("DELETE FROM catalog_services WHERE name NOT IN ('a', 'b')"))


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, DesiredState]]:
    url = (
        f"sqlite:///{tmp_path / 'hostile.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    upgrade(engine)
    import_yaml(engine, GOOD)
    yield engine, load_desired_state(engine)
    engine.dispose()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_hostile_rows_of_one_tenant_stay_with_that_tenant(
    seeded: tuple[Engine, DesiredState], data: st.DataObject
) -> None:
    engine, before = seeded
    rows = data.draw(hostile_tenant(engine.dialect.name == "postgresql"))
    try:
        name = _write(engine, rows)
    except DBAPIError:
        assume(False)  # a value this backend's column types refuse: the UI could not have written it either
    try:
        after = load_desired_state(engine)
    finally:
        _erase(engine)

    assert {"acme", "globex"} <= set(after.tenants)
    for good in ("acme", "globex"):
        assert after.tenants[good] == before.tenants[good]
    assert name in after.known
    for error in after.errors.values():
        assert rows["secret"] not in str(error)
        assert len(str(error)) < 2000


# ------------------------------------------------------------------------------------ the cases of issue 11


def _service_row(engine: Engine, tenant: str, service: str, **columns: Any) -> None:
    with engine.begin() as connection:
        tenant_id = connection.execute(text("SELECT id FROM tenants WHERE name = :n"), {"n": tenant}).scalar_one()
        connection.execute(text("DELETE FROM tenant_services WHERE tenant_id = :t"), {"t": tenant_id})
        _insert(
            connection, "tenant_services", {"tenant_id": tenant_id, "service": service, **columns}, ("env", "checks")
        )


@pytest.mark.parametrize(
    ("columns", "field"),
    [
        ({"memory": "9" * 60}, "services.a.memory"),
        ({"env": json.dumps({"DB_PASSWORD": "s3cr3t-nul\u0000"})}, "services.a.env"),
        ({"env": json.dumps({"DB_PASSWORD": "s3cr3t-key", "1 BAD": "x"})}, "services.a.env"),
        ({"env": json.dumps(["DB_PASSWORD", "s3cr3t-list"])}, "services.a.env"),
        ({"env": json.dumps("s3cr3t-string")}, "services.a.env"),
        ({"replicas": 2**31 - 1}, "services.a.replicas"),
        ({"cpus": float("inf")}, "services.a.cpus"),
        ({"checks": json.dumps({"name": "home"})}, "services.a.checks"),
        ({"checks": json.dumps([{"name": "home", "path": "/", "timeout": 1e308}])}, "services.a.checks.0.timeout"),
        ({"checks": json.dumps([{"name": "home", "path": "/" + "x" * 10_000}])}, "services.a.checks.0.path"),
    ],
)
def test_one_bad_service_row_is_that_tenants_error(
    seeded: tuple[Engine, DesiredState], columns: dict[str, Any], field: str
) -> None:
    engine, before = seeded
    _service_row(engine, "globex", "a", **columns)
    after = load_desired_state(engine)
    assert after.tenants["acme"] == before.tenants["acme"]
    assert after.errors["globex"].field == field
    assert "s3cr3t" not in str(after.errors["globex"])


def test_a_broken_catalog_row_only_affects_its_tenants(seeded: tuple[Engine, DesiredState]) -> None:
    engine, before = seeded
    with engine.begin() as connection:
        connection.execute(text("UPDATE catalog_services SET memory = :m WHERE name = 'b'"), {"m": "9" * 60})
    after = load_desired_state(engine)
    assert after.tenants["globex"] == before.tenants["globex"]  # uses a only
    assert "catalog entry 'b' is invalid" in after.errors["acme"].message
