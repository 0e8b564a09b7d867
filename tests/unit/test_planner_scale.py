"""Planning a large fleet stays linear: the snapshot is split by tenant once per plan, not scanned per tenant, and
subnets in use are parsed once however many networks the plan creates. Structural counts, not times (timings are
bench/planner_scale.py's job)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from functools import cached_property

import pytest

from desired_state.model import DesiredState
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core import subnets
from reconciler.core.diff import SubnetPool
from reconciler.core.resources import Container, Network, Snapshot, Volume
from reconciler.planning import PlanSettings, plan_pass
from reconciler.planning.inputs import Observed
from renderers.containers import Naming, render_tenant

TENANTS = 2000
NAMING = Naming(prefix="erp", owner="scale")
SETTINGS = PlanSettings(naming=NAMING, pool=SubnetPool("10.0.0.0/8", 26))


def fleet(count: int) -> tuple[DesiredState, Snapshot]:
    catalog = parse_catalog({"a": {"image": "erp/demo-svc:1", "port": 8080}, "b": {"image": "erp/demo-svc:1"}})
    tenants = {}
    containers: list[Container] = []
    networks: list[Network] = []
    volumes: list[Volume] = []
    for i in range(count):
        spec = build_tenant(
            {"name": f"t{i:04d}", "domain": f"t{i:04d}.erp.test", "services": {"a": {"replicas": 2}, "b": {}}}, catalog
        )
        tenants[spec.name] = spec
        rendered = render_tenant(spec, NAMING)
        assert rendered.network is not None and rendered.volume is not None
        networks.append(replace(rendered.network, subnet=str(ipaddress.ip_network((0x0A000000 + i * 64, 26)))))
        volumes.append(rendered.volume)
        containers += [replace(c, networks=(c.network,), env=None, memory=None, cpus=None) for c in rendered.containers]
    snapshot = Snapshot(tuple(containers), tuple(networks), tuple(volumes), tuple(str(n.subnet) for n in networks))
    return DesiredState(catalog=catalog, tenants=tenants, errors={}), snapshot


def test_a_converged_fleet_is_split_by_tenant_once(monkeypatch: pytest.MonkeyPatch) -> None:
    desired, snapshot = fleet(TENANTS)
    builds = []
    index = Snapshot.__dict__["_by_tenant"].func

    def counted(self: Snapshot) -> object:
        builds.append(len(self.containers))
        return index(self)

    patched = cached_property(counted)
    patched.__set_name__(Snapshot, "_by_tenant")
    monkeypatch.setattr(Snapshot, "_by_tenant", patched)
    result = plan_pass(desired, Observed(snapshot), SETTINGS)
    assert result.plan.empty
    assert builds == [TENANTS * 3]  # one pass over every container, for all the tenants' lookups


def test_networks_created_in_one_plan_parse_the_subnets_in_use_once(monkeypatch: pytest.MonkeyPatch) -> None:
    desired, snapshot = fleet(TENANTS)
    gone = {f"t{i:04d}" for i in range(0, TENANTS, 100)}  # 20 tenants lost their network
    networks = tuple(n for n in snapshot.networks if n.tenant not in gone)
    snapshot = replace(snapshot, networks=networks, used_subnets=tuple(str(n.subnet) for n in networks))
    parses = []
    interval = subnets._interval

    def counted(subnet: str) -> tuple[int, int] | None:
        parses.append(subnet)
        return interval(subnet)

    monkeypatch.setattr(subnets, "_interval", counted)
    plan = plan_pass(desired, Observed(snapshot), SETTINGS).plan
    created = [c.after.subnet for c in plan.changes if c.kind == "network" and c.after is not None]
    assert len(created) == len(gone)
    assert len(parses) == len(networks) + len(gone)  # each in use once, each new one once (was: in use x new)
    allocated = [ipaddress.ip_network(s) for s in created]
    in_use = [ipaddress.ip_network(s) for s in snapshot.used_subnets]
    for i, subnet in enumerate(allocated):
        assert not any(subnet.overlaps(other) for other in in_use + allocated[:i] + allocated[i + 1 :]), subnet
