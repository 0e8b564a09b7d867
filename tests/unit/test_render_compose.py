"""Compose files rendered from tenants' ``DesiredTenant`` (``renderers.compose``): golden files for a two-tenant
example, validation against the Compose specification, subnets as the planner allocates them, redaction.

The schema is in ../shared/specs (``tests.shared_specs``): without it (a clone on its own) the schema test skips;
in CI a missing schema fails. Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 python -m pytest tests/unit/test_render_compose.py`` and review the diff.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.diff import SubnetPool, diff
from reconciler.core.resources import ContainerDefaults, DesiredTenant, HealthCheck, Snapshot
from renderers.compose import REDACTED, compose_subnets, compose_text, holds_secrets, render_compose
from renderers.containers import Naming, render_tenant
from tests.shared_specs import spec_path

GOLDEN = Path(__file__).parent.parent / "golden" / "compose"
CATALOG = parse_catalog(
    {
        "web": {"image": "erp/demo-svc:1", "public": True, "memory": "64M", "cpus": 0.25},
        "worker": {"image": "erp/demo-svc:1", "memory": "32M", "cpus": 0.1},
    }
)
NAMING = Naming(prefix="erp", owner="example")
POOL = SubnetPool("10.213.0.0/16", 26)
HEALTH = HealthCheck(command="wget -q -O /dev/null http://127.0.0.1:{port}{health}", interval=5, start_period=2)
ACME = {
    "web": {"replicas": 2, "env": {"DB_PASSWORD": "s3cret-acme"}},
    "worker": {"versions": [{"image": "erp/demo-svc:1", "replicas": 1}, {"image": "erp/demo-svc:2", "replicas": 1}]},
}
GLOBEX: dict[str, Any] = {"web": {}}


def rendered(name: str, services: dict[str, Any], state: str = "running") -> DesiredTenant:
    spec = build_tenant({"name": name, "domain": f"{name}.erp.test", "state": state, "services": services}, CATALOG)
    return render_tenant(spec, NAMING, healthcheck=HEALTH, defaults=ContainerDefaults(), uid=f"uid-{name}")


def example() -> dict[str, DesiredTenant]:
    return {"acme": rendered("acme", ACME), "globex": rendered("globex", GLOBEX, state="stopped")}


def documents() -> dict[str, dict[str, Any]]:
    tenants = example()
    subnets = compose_subnets(tenants, POOL)
    return {name: render_compose(tenant, subnets[name]) for name, tenant in tenants.items()}


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_compose_files_match_their_golden_files(tenant: str) -> None:
    text = compose_text(documents()[tenant], tenant)
    path = GOLDEN / f"{tenant}.compose.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{tenant} differs from its golden file"


def test_compose_files_follow_the_compose_specification() -> None:
    schema = json.loads(spec_path("compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    for tenant, document in documents().items():
        errors = [f"{tenant}: {list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors


def test_services_carry_replicas_limits_health_and_rolling_updates() -> None:
    acme = documents()["acme"]
    assert sorted(acme["services"]) == ["web", "worker", "worker-b"]
    web = acme["services"]["web"]
    assert web["deploy"]["replicas"] == 2
    assert web["deploy"]["resources"]["limits"] == {"cpus": "0.25", "memory": f"{64 * 1024**2}b", "pids": 512}
    assert web["deploy"]["update_config"] == {"parallelism": 1, "order": "start-first", "failure_action": "rollback"}
    assert web["healthcheck"]["test"] == ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"]
    assert acme["services"]["worker-b"]["image"] == "erp/demo-svc:2"
    assert "ERP_REPLICA" not in web["environment"]  # replicas of one Compose service share one environment
    assert all(replicas == 0 for replicas in _replicas(documents()["globex"]))  # stopped: kept, scaled to zero


def _replicas(document: dict[str, Any]) -> list[int]:
    return [service["deploy"]["replicas"] for service in document["services"].values()]


def test_subnets_are_the_ones_the_planner_gives_an_empty_engine() -> None:
    tenants = example()
    subnets = compose_subnets(tenants, POOL)
    planned = diff(tenants, Snapshot(), pool=POOL)
    created = {c.tenant: c.after.subnet for c in planned.changes if c.kind == "network"}  # type: ignore[union-attr]
    assert subnets == created
    assert all(ipaddress.ip_network(s).subnet_of(ipaddress.ip_network(POOL.pool)) for s in subnets.values())  # type: ignore[arg-type]


def test_subnets_avoid_subnets_in_use() -> None:
    tenants = example()
    first = compose_subnets(tenants, POOL)
    moved = compose_subnets(tenants, POOL, used=[first["acme"]])
    assert moved["acme"] != first["acme"]
    assert len(set(moved.values())) == 2


def test_redact_replaces_the_tenants_own_values_only() -> None:
    acme = rendered("acme", ACME)
    assert holds_secrets(acme)
    assert not holds_secrets(rendered("globex", GLOBEX))
    text = compose_text(render_compose(acme, "10.213.0.0/26", redact=True), "acme")
    assert "s3cret-acme" not in text
    env = render_compose(acme, "10.213.0.0/26", redact=True)["services"]["web"]["environment"]
    assert env["DB_PASSWORD"] == REDACTED
    assert env["ERP_TENANT"] == "acme"


def test_an_absent_tenant_has_no_compose_file() -> None:
    gone = rendered("gone", GLOBEX, state="absent")
    with pytest.raises(ValueError, match="'gone' is absent"):
        render_compose(gone, "10.213.0.0/26")
