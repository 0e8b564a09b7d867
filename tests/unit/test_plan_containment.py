"""One tenant's planning failure is that tenant's (issue 11): the others are planned as usual."""

from __future__ import annotations

from desired_state.model import DesiredState
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.diff import SubnetPool
from reconciler.core.resources import Snapshot
from reconciler.planning import Observed, PlanSettings, plan_pass
from renderers.containers import Naming

CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1"}})


def _desired(*names: str) -> DesiredState:
    tenants = {n: build_tenant({"name": n, "domain": f"{n}.erp.test", "services": {"a": {}}}, CATALOG) for n in names}
    return DesiredState(catalog=CATALOG, tenants=tenants, errors={})


def test_an_exhausted_subnet_pool_blocks_only_the_tenants_it_cannot_serve() -> None:
    # A pool with room for exactly one /26: the first tenant (by name) gets it, the second is its own error.
    settings = PlanSettings(naming=Naming("erp", "t"), pool=SubnetPool("10.213.0.0/26", 26))
    result = plan_pass(_desired("acme", "globex"), Observed(Snapshot()), settings)
    assert {c.tenant for c in result.plan.changes} == {"acme"}
    assert set(result.failed) == {"globex"}
    assert "no free /26 left in subnet pool" in result.failed["globex"]
    assert any(b.tenant == "globex" and b.reason == "PlanFailed" for b in result.plan.blocked)
