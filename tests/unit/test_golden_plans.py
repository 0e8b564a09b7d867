"""Golden plan cases: each file in tests/golden/plans holds what runs now (``applied`` plus mutations of the
world), what the database says (``desired``) and the expected ``reconciler plan`` text. One runner for all, and
it calls the runtime's own planning function (``reconciler.planning.plan_pass``) with every policy the runtime
uses (ownership, pins, a crash-loop hold, DNS upsert-only, the mass-delete guard).

A case may turn on the route layer (``routing: true``) and the DNS layer (``dns: {zones, a, policy}``); the
observed route files and zones are then what the ``applied`` state would have produced, changed by ``world``:
``removed_routes`` / ``edited_routes`` (tenant → file text), ``records`` (extra rrsets, foreign or ours),
``removed_records``. ``pins`` (tenant → [{service, image, reason}]) and ``crash_loops`` ([slot names]) exercise
the runtime's other policies; ``canaries`` (tenant → [{service, stable, canary, state, weight, step, reason}],
the ``tenant_canaries`` rows) the canary analysis's weights. Identity: ``uids`` (tenant → uid of the desired
rows), ``bindings`` ([{volume, tenant, uid, state}], the ``data_volumes`` rows) and, in ``world``,
``removed_volumes`` and ``extra_volumes`` ([{name, tenant, uid}], e.g. a former tenant's volume). An extra
container with ``like_desired: true`` is the container the desired spec renders for its slot (name, image, spec
hash: the new half of an interrupted replacement), ``ip`` gives it an address, and ``world.unrouted`` lists
containers the observed route files leave out.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_golden_plans.py`` and review
the diff of the golden files like code.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from desired_state.model import DesiredState, VolumeBinding
from desired_state.specs import SpecError, TenantSpec, build_tenant, parse_catalog
from reconciler.core.canary_steps import Canary
from reconciler.core.crashloop import CrashLoop, SlotKey, slot_key, withhold_crash_looping
from reconciler.core.dns import OwnerMark, RRset
from reconciler.core.plan import Plan
from reconciler.core.render_plan import render_text
from reconciler.core.resources import Container, Network, Snapshot, Volume
from reconciler.core.routes import RouteFile, parse_route_file
from reconciler.core.upgrades import Pin
from reconciler.planning import DnsSettings, Observed, PassContext, PlanSettings, RoutingSettings, ZoneState, plan_pass
from reconciler.planning.routes import desired_route
from renderers.containers import Naming, render_tenant
from renderers.dns import DnsTarget, render_host_records
from renderers.traefik import RouteNaming


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so golden plans read like the CLI output they are."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)

CASES = sorted((Path(__file__).parent.parent / "golden" / "plans").glob("*.yaml"))
OWNER = "golden"
NAMING = Naming(prefix="erp", owner=OWNER)
ROUTE_NAMING = RouteNaming("erp")


def _desired(catalog_raw: dict[str, Any], tenants_raw: list[dict[str, Any]]) -> DesiredState:
    catalog = parse_catalog(catalog_raw)
    tenants: dict[str, TenantSpec] = {}
    errors: dict[str, SpecError] = {}
    for raw in tenants_raw:
        try:
            spec = build_tenant(raw, catalog)
        except SpecError as exc:
            errors[str(raw.get("name"))] = exc
            continue
        tenants[spec.name] = spec
    return DesiredState(catalog=catalog, tenants=tenants, errors=errors)


def _dns_settings(case: dict[str, Any]) -> DnsSettings | None:
    raw = case.get("dns")
    if not raw:
        return None
    target = DnsTarget(a=tuple(raw.get("a", ["127.0.0.1"])), cname=raw.get("cname"), ttl=int(raw.get("ttl", 60)))
    return DnsSettings(zones=tuple(raw.get("zones", ["erp.test."])), target=target, policy=raw.get("policy", "sync"))


def _like_desired(extra: dict[str, Any], desired: DesiredState | None) -> Container | None:
    if not extra.get("like_desired") or desired is None:
        return None
    rendered = render_tenant(desired.tenants[extra["tenant"]], NAMING).containers
    return next(c for c in rendered if (c.service, c.replica) == (extra["service"], extra["replica"]))


def _snapshot(case: dict[str, Any], applied: DesiredState, desired: DesiredState | None = None) -> Snapshot:
    world = case.get("world", {})
    states: dict[str, str] = world.get("states", {})
    removed: set[str] = set(world.get("removed_containers", []))
    missing_networks: set[str] = set(world.get("removed_networks", []))
    containers: list[Container] = []
    networks: list[Network] = []
    for index, spec in enumerate(applied.tenants.values()):
        tenant = render_tenant(spec, NAMING)
        if tenant.network and tenant.tenant not in missing_networks:
            networks.append(replace(tenant.network, subnet=f"10.213.{index}.0/26"))
        for number, want in enumerate(tenant.containers):
            slot = f"{want.tenant}-{want.service}{'-' + want.track if want.track else ''}-{want.replica}"
            if slot in removed:
                continue
            state = states.get(slot, "running" if want.state == "running" else "exited")
            attached = () if tenant.tenant in missing_networks else (want.network,)
            ip = f"10.213.{index}.{number + 2}" if state == "running" and attached else None
            containers.append(
                replace(want, state=state, networks=attached, env=None, memory=None, cpus=None, ip=ip, healthcheck=None)
            )
    for extra in world.get("extra_containers", []):
        labels = extra.get("labels", {"tenant-reconciler.managed": "true", "tenant-reconciler.owner": OWNER})
        like = _like_desired(extra, desired)
        container = Container(
            name=extra.get("name", like.name if like else ""),
            tenant=extra["tenant"],
            service=extra["service"],
            replica=extra["replica"],
            image=extra.get("image", like.image if like else "erp/demo-svc:1"),
            spec_hash=extra.get("spec_hash", like.spec_hash if like else "stale"),
            network=f"erp-{extra['tenant']}",
            volume="",
            port=8080,
            state=extra.get("state", "running"),
            networks=(f"erp-{extra['tenant']}",),
            labels=like.labels if like else tuple(sorted(labels.items())),
            ip=extra.get("ip"),
        )
        containers.append(container)
    volumes = [v for spec in applied.tenants.values() if (v := render_tenant(spec, NAMING).volume) is not None]
    volumes = [v for v in volumes if v.name not in world.get("removed_volumes", [])]
    volumes += [Volume(v["name"], v["tenant"], uid=v.get("uid")) for v in world.get("extra_volumes", [])]
    return Snapshot(
        containers=tuple(containers),
        networks=tuple(networks),
        volumes=tuple(volumes),
        used_subnets=tuple(n.subnet for n in networks if n.subnet),
    )


def _routes(case: dict[str, Any], applied: DesiredState, snapshot: Snapshot) -> dict[str, RouteFile]:
    world = case.get("world", {})
    files: dict[str, RouteFile] = {}
    for name, spec in applied.tenants.items():
        if spec.state != "running" or name in world.get("removed_routes", []):
            continue
        unrouted = set(world.get("unrouted", []))
        running = [c for c in snapshot.for_tenant(name).containers if c.running and c.ip and c.name not in unrouted]
        route = desired_route(spec, running, False, naming=ROUTE_NAMING, entrypoint="web", owner=OWNER)
        if route.content is not None:
            files[name] = parse_route_file(name, route.name, route.content)
    for name, text in world.get("edited_routes", {}).items():
        files[name] = parse_route_file(name, ROUTE_NAMING.file(name), text)
    return files


def _zones(case: dict[str, Any], applied: DesiredState, settings: DnsSettings) -> dict[str, ZoneState]:
    world = case.get("world", {})
    removed = {tuple(r) for r in world.get("removed_records", [])}
    by_zone: dict[str, list[RRset]] = {zone: [] for zone in settings.zones}
    for spec in applied.tenants.values():
        if spec.state != "running":
            continue
        records = render_host_records(spec, settings.target, settings.zones, OWNER)
        for zone, rrsets in records.by_zone.items():
            by_zone[zone].extend(r for r in rrsets if (r.name, r.type) not in removed)
    for raw in world.get("records", []):
        mark = OwnerMark(raw["owner"], raw["tenant"]) if raw.get("owner") else None
        rrset = RRset.of(raw["name"], raw["type"], int(raw.get("ttl", 60)), raw["records"], mark)
        by_zone[raw.get("zone", settings.zones[0])].append(rrset)
    return {zone: ZoneState(rrsets=tuple(rrsets)) for zone, rrsets in by_zone.items()}


def _context(case: dict[str, Any], desired: DesiredState) -> PassContext:
    pins = {
        tenant: [Pin(tenant, p["service"], p["image"], p["failed_image"], p["reason"]) for p in raw]
        for tenant, raw in case.get("pins", {}).items()
    }
    held: dict[SlotKey, CrashLoop] = {}
    for slot in case.get("crash_loops", []):
        tenant, service, replica = slot.split("/")
        for want in render_tenant(desired.tenants[tenant], NAMING).containers:
            if want.service == service and want.replica == int(replica):
                key = slot_key(want)
                held[key] = CrashLoop(key, want.name, 5, 120.0, "exited with code 1", hold_until=30.0)

    def crash_loop_hold(plan: Plan) -> Plan:
        return withhold_crash_looping(plan, held, now=0.0)

    canaries = {
        tenant: [
            Canary(
                tenant,
                c["service"],
                c["stable"],
                c["canary"],
                c["state"],
                c.get("weight"),
                c.get("step", 0),
                c["reason"],
            )
            for c in raw
        ]
        for tenant, raw in case.get("canaries", {}).items()
    }
    scope = case.get("scope")
    return PassContext(
        canaries=canaries,
        scope=frozenset(scope) & desired.known if scope is not None else None,
        pins=pins,
        policies=(crash_loop_hold,) if held else (),
        allow_mass_delete=bool(case.get("allow_mass_delete", False)),
        bindings={
            b["volume"]: VolumeBinding(b["volume"], b["tenant"], b["uid"], b["state"]) for b in case.get("bindings", [])
        },
    )


def plan_text(case: dict[str, Any]) -> str:
    desired = replace(_desired(case["catalog"], case.get("desired", [])), uids=dict(case.get("uids", {})))
    applied = _desired(case["catalog"], case.get("applied", []))
    snapshot = _snapshot(case, applied, desired)
    dns = _dns_settings(case)
    routing = RoutingSettings("web") if case.get("routing") else None
    observed = Observed(
        snapshot=snapshot,
        routes=_routes(case, applied, snapshot) if routing else None,
        zones=_zones(case, applied, dns) if dns else None,
    )
    settings = PlanSettings(naming=NAMING, routing=routing, dns=dns)
    result = plan_pass(desired, observed, settings, _context(case, desired))
    return render_text(result.plan).strip() + "\n"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_plan(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    actual = plan_text(case)
    if os.environ.get("UPDATE_GOLDEN"):
        case["expected"] = actual
        path.write_text(yaml.dump(case, Dumper=_LiteralDumper, sort_keys=False, width=120))
    assert actual == case["expected"], f"{path.name}: {case.get('description', '')}"


def test_every_case_is_described() -> None:
    assert len(CASES) >= 10
    for path in CASES:
        assert yaml.safe_load(path.read_text()).get("description"), path.name
