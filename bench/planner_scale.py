"""Benchmark: the pure planner (``reconciler.planning.plan_pass``) at fleet scale, without any I/O.

Builds N synthetic tenants (services a..f, a with 2 replicas; a public at the tenant's domain, every 4th tenant with
an allow list on it, every 10th with a second version of c at weight 10 behind a route of its own; domains spread
over four DNS zones) as a ``DesiredState``, and the world they converge to as an ``Observed`` (containers with
addresses, networks with subnets, volumes, one Traefik file per tenant, the rrsets of every zone), so the plan is
empty. A second world has 1% drift: of every 100 tenants one lost a container, one runs an old image of b, and every
500th lost its network. Each world, in a fresh process each, is planned 5 times without a cache (median; what
``reconciler plan`` does), then with a ``RenderCache``: once cold (empty cache) and 5 times warm (median; the
steady state of ``reconciler run``), each warm plan on new input objects equal by value to the first (unpickled,
as the loop loads and observes anew every pass). Memory: ``tracemalloc`` peak of one more plan (without and with
the warm cache) and ``ru_maxrss`` of the process once the inputs are built and at the end (cache included). Usage:

    python bench/planner_scale.py                  # 10 000 tenants, both worlds; a markdown table
    python bench/planner_scale.py --tenants 2000 --profile 25     # also cProfile one plan (top 25, cumulative)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pickle
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from desired_state.model import DesiredState  # noqa: E402
from desired_state.specs import TenantSpec, build_tenant, parse_catalog  # noqa: E402
from reconciler.core.diff import SubnetPool  # noqa: E402
from reconciler.core.dns import RRset  # noqa: E402
from reconciler.core.resources import Container, Network, Snapshot, Volume  # noqa: E402
from reconciler.core.routes import RouteFile, parse_route_file  # noqa: E402
from reconciler.planning import (  # noqa: E402
    DnsSettings,
    Observed,
    PassContext,
    PlanSettings,
    RenderCache,
    RoutingSettings,
    ZoneState,
    plan_pass,
)
from reconciler.planning.routes import desired_route  # noqa: E402
from renderers.containers import Naming, render_tenant  # noqa: E402
from renderers.dns import DnsTarget, render_host_records  # noqa: E402
from renderers.traefik import RouteNaming  # noqa: E402

RUNS = 5
OWNER = "scale"
NAMING = Naming(prefix="erp", owner=OWNER)
ZONES = ("z0.test.", "z1.test.", "z2.test.", "z3.test.")
# /26 per tenant: a /8 holds 262 144 of them, enough for any fleet this benchmark builds.
POOL = SubnetPool("10.0.0.0/8", 26)
SETTINGS = PlanSettings(
    naming=NAMING,
    pool=POOL,
    routing=RoutingSettings("web"),
    dns=DnsSettings(zones=ZONES, target=DnsTarget(a=("127.0.0.1",), ttl=60)),
)
CATALOG = {
    name: {"image": "erp/demo-svc:1", "port": 8080, "health": "/health", "memory": "32M", "cpus": 0.25}
    for name in "abcdef"
} | {"a": {"image": "erp/demo-svc:1", "port": 8080, "memory": "32M", "cpus": 0.25, "public": True}}


def tenant_raw(i: int) -> dict[str, Any]:
    name = f"t{i:05d}"
    domain = f"{name}.{ZONES[i % len(ZONES)].rstrip('.')}"
    services: dict[str, Any] = {s: {} for s in "bcdef"}
    services["a"] = {"replicas": 2}
    if i % 4 == 0:
        services["a"]["route"] = {"allow": ["10.0.0.0/8", "192.168.0.0/16"], "deny": ["10.66.0.0/16"]}
    if i % 10 == 0:
        services["c"] = {
            "route": {"host": f"reports.{domain}", "path": "/r"},
            "versions": [{"image": "erp/demo-svc:1", "weight": 90}, {"image": "erp/demo-svc:2", "weight": 10}],
        }
    return {"name": name, "domain": domain, "state": "running", "services": services}


def desired_state(count: int) -> DesiredState:
    catalog = parse_catalog(CATALOG)
    tenants: dict[str, TenantSpec] = {}
    for i in range(count):
        spec = build_tenant(tenant_raw(i), catalog)
        tenants[spec.name] = spec
    return DesiredState(catalog=catalog, tenants=tenants, errors={})


def converged(desired: DesiredState) -> Observed:
    """The world ``desired`` converges to, as the drivers would report it."""
    containers: list[Container] = []
    networks: list[Network] = []
    volumes: list[Volume] = []
    routes: dict[str, RouteFile] = {}
    zones: dict[str, list[RRset]] = {zone: [] for zone in ZONES}
    route_naming = RouteNaming(NAMING.prefix)
    for index, spec in enumerate(desired.tenants.values()):
        rendered = render_tenant(spec, NAMING)
        base = (10 << 24) + index * 64
        subnet = f"{base >> 24}.{(base >> 16) & 255}.{(base >> 8) & 255}.{base & 255}/26"
        if rendered.network is not None:
            networks.append(replace(rendered.network, subnet=subnet))
        if rendered.volume is not None:
            volumes.append(rendered.volume)
        running = []
        for number, want in enumerate(rendered.containers):
            address = base + number + 2
            ip = f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}"
            have = replace(want, networks=(want.network,), env=None, memory=None, cpus=None, ip=ip, healthcheck=None)
            containers.append(have)
            running.append(have)
        route = desired_route(spec, running, False, naming=route_naming, entrypoint="web", owner=OWNER)
        if route.content is not None:
            routes[spec.name] = parse_route_file(spec.name, route.name, route.content)
        assert SETTINGS.dns is not None
        records = render_host_records(spec, SETTINGS.dns.target, ZONES, OWNER)
        for zone, rrsets in records.by_zone.items():
            zones[zone].extend(rrsets)
    snapshot = Snapshot(
        containers=tuple(containers),
        networks=tuple(networks),
        volumes=tuple(volumes),
        used_subnets=tuple(n.subnet for n in networks if n.subnet),
    )
    return Observed(snapshot, routes, {zone: ZoneState(rrsets=tuple(r)) for zone, r in zones.items()})


def drifted(world: Observed) -> Observed:
    """1% drift: per 100 tenants one container gone, one b on an old image; every 500th tenant's network gone."""
    snapshot = world.snapshot
    tenants = sorted(snapshot.tenants())
    lost = {t for i, t in enumerate(tenants) if i % 100 == 1}
    stale = {t for i, t in enumerate(tenants) if i % 100 == 2}
    unattached = {t for i, t in enumerate(tenants) if i % 500 == 3}
    containers = []
    for c in snapshot.containers:
        if c.tenant in lost and c.service == "d":
            continue
        if c.tenant in stale and c.service == "b":
            c = replace(c, image="erp/demo-svc:0", spec_hash="stale")
        if c.tenant in unattached:
            c = replace(c, networks=())
        containers.append(c)
    networks = tuple(n for n in snapshot.networks if n.tenant not in unattached)
    snapshot = replace(
        snapshot,
        containers=tuple(containers),
        networks=networks,
        used_subnets=tuple(n.subnet for n in networks if n.subnet),
    )
    return replace(world, snapshot=snapshot)


def _plan(desired: DesiredState, world: Observed, world_name: str, cache: RenderCache | None) -> tuple[float, int]:
    context = PassContext(cache=cache) if cache is not None else None
    started = time.perf_counter()
    result = plan_pass(desired, world, SETTINGS, context)
    took = time.perf_counter() - started
    assert not result.failed, list(result.failed.items())[:3]
    assert world_name == "drift" or result.plan.empty, result.plan.changes[:3]
    return took, len(result.plan.changes)


def _traced_peak(desired: DesiredState, world: Observed, cache: RenderCache | None) -> float:
    gc.collect()
    tracemalloc.start()
    plan_pass(desired, world, SETTINGS, PassContext(cache=cache) if cache is not None else None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def measure(count: int, world_name: str, profile: int) -> dict[str, Any]:
    started = time.perf_counter()
    desired = desired_state(count)
    world = converged(desired)
    if world_name == "drift":
        world = drifted(world)
    built = time.perf_counter() - started
    # Each warm plan gets inputs equal by value but new objects (as the run loop loads and observes anew every
    # pass): unpickled from this copy, made before any plan, so no per-tenant index of the snapshot is in it.
    inputs = pickle.dumps((desired, world), protocol=pickle.HIGHEST_PROTOCOL)
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gc.collect()
    uncached = []
    changes = 0
    for _ in range(RUNS):
        took, changes = _plan(desired, world, world_name, None)
        uncached.append(took)
    traced_uncached = _traced_peak(desired, world, None)
    containers = len(world.snapshot.containers)
    del desired, world  # the cached plans hold one copy of the inputs at a time, as the run loop does
    gc.collect()
    cache = RenderCache()
    fresh_desired, fresh_world = pickle.loads(inputs)
    cold, cold_changes = _plan(fresh_desired, fresh_world, world_name, cache)
    assert cold_changes == changes
    warm = []
    for _ in range(RUNS):
        del fresh_desired, fresh_world
        fresh_desired, fresh_world = pickle.loads(inputs)
        gc.collect()
        took, warm_changes = _plan(fresh_desired, fresh_world, world_name, cache)
        assert warm_changes == changes
        warm.append(took)
    del fresh_desired, fresh_world
    fresh_desired, fresh_world = pickle.loads(inputs)
    traced_warm = _traced_peak(fresh_desired, fresh_world, cache)
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(plan_pass, fresh_desired, fresh_world, SETTINGS, PassContext(cache=cache))
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    return {
        "tenants": count,
        "world": world_name,
        "containers": containers,
        "pickled_mb": len(inputs) / 2**20,
        "changes": changes,
        "build_s": built,
        "median_s": statistics.median(uncached),
        "max_s": max(uncached),
        "cold_s": cold,
        "warm_median_s": statistics.median(warm),
        "warm_max_s": max(warm),
        "traced_peak_mb": traced_uncached,
        "traced_warm_mb": traced_warm,
        "rss_inputs_mb": rss_inputs,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--worlds", nargs="+", choices=("converged", "drift"), default=["converged", "drift"])
    parser.add_argument("--profile", type=int, default=0, help="cProfile one plan, print the top N (cumulative)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.tenants, args.worlds[0], args.profile)))
        return 0
    rows = []
    for world in args.worlds:
        command = [sys.executable, __file__, "--child", "--tenants", str(args.tenants), "--worlds", world]
        command += ["--profile", str(args.profile)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        sys.stderr.write(done.stderr)
        rows.append(json.loads(done.stdout))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; median (max) of {RUNS}, fresh process per world")
    print(
        "| tenants | world | containers | changes | no cache s | cold s | warm s | tracemalloc peak MB "
        "(no cache / warm) | max RSS MB (inputs / end) | pickled copy MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['tenants']} | {r['world']} | {r['containers']} | {r['changes']} "
            f"| {r['median_s']:.2f} ({r['max_s']:.2f}) | {r['cold_s']:.2f} "
            f"| {r['warm_median_s']:.2f} ({r['warm_max_s']:.2f}) "
            f"| {r['traced_peak_mb']:.0f} / {r['traced_warm_mb']:.0f} "
            f"| {r['rss_inputs_mb']:.0f} / {r['maxrss_mb']:.0f} | {r['pickled_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
