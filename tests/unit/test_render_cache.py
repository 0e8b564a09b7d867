"""The render cache changes how fast a plan is made, never what: a warm plan equals a cold one, and an input that
changes a rendering (spec, uid, naming, healthcheck, defaults, backends, DNS target, entrypoint) is rendered anew."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import pytest

from desired_state.model import DesiredState
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.diff import SubnetPool
from reconciler.core.dns import RRset
from reconciler.core.resources import Container, ContainerDefaults, HealthCheck, Network, Snapshot, Volume
from reconciler.core.routes import RouteFile, parse_route_file
from reconciler.planning import (
    DnsSettings,
    Observed,
    PassContext,
    PassPlan,
    PlanSettings,
    RenderCache,
    RoutingSettings,
    ZoneState,
    plan_pass,
)
from reconciler.planning.routes import desired_route
from renderers.containers import Naming, render_tenant
from renderers.dns import DnsTarget, render_host_records
from renderers.traefik import RouteNaming

OWNER = "cache"
NAMING = Naming(prefix="erp", owner=OWNER)
ZONES = ("z0.test.", "z1.test.")
SETTINGS = PlanSettings(
    naming=NAMING,
    pool=SubnetPool("10.0.0.0/8", 26),
    routing=RoutingSettings("web"),
    dns=DnsSettings(zones=ZONES, target=DnsTarget(a=("127.0.0.1",), ttl=60)),
)
CATALOG = {s: {"image": "erp/demo-svc:1", "port": 8080, "health": "/health"} for s in "abc"} | {
    "a": {"image": "erp/demo-svc:1", "port": 8080, "public": True}
}
TENANTS = 40


def tenant_raw(i: int, **services: Any) -> dict[str, Any]:
    name = f"t{i:03d}"
    domain = f"{name}.{ZONES[i % 2].rstrip('.')}"
    raw: dict[str, Any] = {"b": {}, "c": {}, "a": {"replicas": 2}}
    if i % 4 == 0:
        raw["a"]["route"] = {"allow": ["10.0.0.0/8"]}
    if i % 5 == 0:
        raw["c"] = {
            "route": {"host": f"r.{domain}", "path": "/r"},
            "versions": [{"image": "erp/demo-svc:1", "weight": 90}, {"image": "erp/demo-svc:2", "weight": 10}],
        }
    raw.update(services)
    return {"name": name, "domain": domain, "state": "running", "services": raw}


def desired_state(**changed: dict[str, Any]) -> DesiredState:
    catalog = parse_catalog(CATALOG)
    tenants = {}
    for i in range(TENANTS):
        spec = build_tenant(changed.get(f"t{i:03d}", tenant_raw(i)), catalog)
        tenants[spec.name] = spec
    return DesiredState(catalog=catalog, tenants=tenants, errors={}, uids={"t001": "uid-1"})


def drifted_world(desired: DesiredState) -> Observed:
    """Converged, then drifted: t003 lost a container, t004's b runs an old image, t005 lost its network."""
    containers: list[Container] = []
    networks: list[Network] = []
    volumes: list[Volume] = []
    routes: dict[str, RouteFile] = {}
    zones: dict[str, list[RRset]] = {zone: [] for zone in ZONES}
    for index, spec in enumerate(desired.tenants.values()):
        rendered = render_tenant(spec, NAMING, uid=desired.uids.get(spec.name))
        assert rendered.network is not None and rendered.volume is not None
        if spec.name != "t005":
            networks.append(replace(rendered.network, subnet=f"10.0.{index}.0/26"))
        volumes.append(rendered.volume)
        running = []
        for number, want in enumerate(rendered.containers):
            have = replace(want, networks=(want.network,), env=None, ip=f"10.0.{index}.{number + 2}")
            running.append(have)
            if spec.name == "t003" and want.service == "b":
                continue
            if spec.name == "t004" and want.service == "b":
                have = replace(have, image="erp/demo-svc:0", spec_hash="stale")
            containers.append(have)
        route = desired_route(spec, running, False, naming=RouteNaming("erp"), entrypoint="web", owner=OWNER)
        assert route.content is not None
        routes[spec.name] = parse_route_file(spec.name, route.name, route.content)
        assert SETTINGS.dns is not None
        for zone, rrsets in render_host_records(spec, SETTINGS.dns.target, ZONES, OWNER).by_zone.items():
            zones[zone].extend(rrsets)
    snapshot = Snapshot(tuple(containers), tuple(networks), tuple(volumes), tuple(str(n.subnet) for n in networks))
    return Observed(snapshot, routes, {zone: ZoneState(rrsets=tuple(r)) for zone, r in zones.items()})


def plan(
    desired: DesiredState, world: Observed, cache: RenderCache | None, settings: PlanSettings = SETTINGS
) -> PassPlan:
    return plan_pass(desired, world, settings, PassContext(cache=cache))


def same(a: PassPlan, b: PassPlan) -> None:
    assert a.plan == b.plan
    assert a.rendered == b.rendered
    assert a.failed == b.failed and a.bindings == b.bindings


@pytest.fixture(scope="module")
def inputs() -> bytes:
    desired = desired_state()
    return pickle.dumps((desired, drifted_world(desired)))


def fresh(inputs: bytes) -> tuple[DesiredState, Observed]:
    """New objects equal by value, as the run loop loads and observes anew every pass."""
    desired, world = pickle.loads(inputs)
    return desired, world


def test_a_warm_plan_equals_the_cold_one(inputs: bytes) -> None:
    cold = plan(*fresh(inputs), None)
    assert cold.plan.changes, "the drifted world must need changes, or this compares empty plans"
    cache = RenderCache()
    first = plan(*fresh(inputs), cache)
    same(first, cold)
    for _ in range(2):
        same(plan(*fresh(inputs), cache), cold)
    hits = cache.stats()
    # Every tenant was served from the cache on the warm plans: containers, route (running tenants with changes
    # planned get a route keyed by the planned backends, equal on every pass) and records.
    assert hits["containers"] == (2 * TENANTS, TENANTS)
    assert hits["records"] == (2 * TENANTS, TENANTS)
    assert hits["routes"][0] == 2 * hits["routes"][1] > 0
    # The converged tenants are remembered as such; the drifted ones (t003, t004, t005) are not.
    assert len(cache.converged) == TENANTS - 3 and not {"t003", "t004", "t005"} & set(cache.converged)


def test_a_converged_tenant_whose_containers_change_is_diffed_again(inputs: bytes) -> None:
    cache = RenderCache()
    plan(*fresh(inputs), cache)
    assert "t020" in cache.converged
    desired, world = fresh(inputs)
    gone = tuple(c for c in world.snapshot.containers if not c.name.startswith("erp-t020-c-"))
    stopped = tuple(replace(c, state="exited") if c.name.startswith("erp-t021-b-") else c for c in gone)
    world = replace(world, snapshot=replace(world.snapshot, containers=stopped))
    uncached = plan(desired, world, None)
    assert {"t020", "t021"} <= {c.tenant for c in uncached.plan.changes if c.kind == "container"}
    same(plan(desired, world, cache), uncached)
    assert "t020" not in cache.converged


def _changed_settings() -> list[tuple[str, PlanSettings]]:
    assert SETTINGS.dns is not None
    return [
        ("naming", replace(SETTINGS, naming=Naming(prefix="erq", owner=OWNER))),
        ("healthcheck", replace(SETTINGS, healthcheck=HealthCheck(command="probe {port}{health}"))),
        ("defaults", replace(SETTINGS, container_defaults=ContainerDefaults(pids_limit=64))),
        ("dns target", replace(SETTINGS, dns=replace(SETTINGS.dns, target=DnsTarget(a=("127.0.0.2",), ttl=60)))),
        ("entrypoint", replace(SETTINGS, routing=RoutingSettings("websecure"))),
    ]


@pytest.mark.parametrize("label,settings", _changed_settings(), ids=[label for label, _ in _changed_settings()])
def test_a_changed_setting_is_rendered_anew(inputs: bytes, label: str, settings: PlanSettings) -> None:
    cache = RenderCache()
    warm = plan(*fresh(inputs), cache)
    plan(*fresh(inputs), cache)
    uncached = plan(*fresh(inputs), None, settings)
    assert uncached.plan != warm.plan, f"{label}: the setting must change the plan, or this test proves nothing"
    same(plan(*fresh(inputs), cache, settings), uncached)


def test_a_changed_spec_uid_or_backend_is_rendered_anew(inputs: bytes) -> None:
    cache = RenderCache()
    plan(*fresh(inputs), cache)
    desired = desired_state(
        t010=tenant_raw(10, b={"replicas": 2}),  # containers, route and nothing else
        t011=tenant_raw(11) | {"domain": "t011.z0.test"},  # route and records (another zone)
        t012=tenant_raw(12, a={"replicas": 2, "route": {"deny": ["10.9.0.0/16"]}}),  # route only
    )
    desired = replace(desired, uids={"t001": "uid-1", "t002": "uid-2"})  # labels of t002's new objects
    world = fresh(inputs)[1]
    moved = tuple(
        replace(c, ip="10.0.13.60") if c.name.startswith("erp-t013-a-0-") else c for c in world.snapshot.containers
    )
    world = replace(world, snapshot=replace(world.snapshot, containers=moved))  # t013's route: a new server URL
    uncached = plan(desired, world, None)
    warm_unchanged = plan(*fresh(inputs), None)
    changed = {c.tenant for c in uncached.plan.changes} - {c.tenant for c in warm_unchanged.plan.changes}
    assert {"t010", "t011", "t012", "t013"} <= changed
    assert uncached.rendered["t002"] != warm_unchanged.rendered["t002"]  # the uid label
    same(plan(desired, world, cache), uncached)


def test_the_cache_is_bounded_and_a_failed_render_is_not_kept(inputs: bytes) -> None:
    cache = RenderCache(max_tenants=5)
    same(plan(*fresh(inputs), cache), plan(*fresh(inputs), None))
    assert len(cache.containers.entries) == len(cache.records.entries) == len(cache.specs) == 5
    assert len(cache.routes.entries) <= 5
    desired, _ = fresh(inputs)
    spec = desired.tenants["t000"]

    def broken() -> RouteFile:
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        cache.route(spec, (), False, (RouteNaming("erp"), "web", OWNER), broken)
    assert "t000" not in cache.routes.entries
    with pytest.raises(ValueError, match="max_tenants"):
        RenderCache(max_tenants=0)
