"""Benchmark: a no-op reconcile pass for N tenants, and the calls it makes to Docker, Traefik and PowerDNS.

Creates N tenants (one container each) on the real engine with a throwaway SQLite database and its own owner
id, converges them, then times no-op passes in two set-ups:

- ``bare``: no routing or DNS stage (containers, networks, volumes only);
- ``layers``: with routing and DNS, through its own Traefik and PowerDNS (deploy/devstack.py, free 127.0.0.1
  ports); every tenant's service is public (one router each) and the tenants' domains are spread over two zones.

Per no-op pass it counts Docker calls by kind, PowerDNS requests by method, Traefik API reads and file writes,
and checks the bounds of docs/benchmarks.md (an AssertionError names the one broken): an empty plan, at most 3
Docker list calls and no mutating one, one GET per zone and nothing else, no file written, at most one API read.
Everything it created is removed at the end (data volumes included: they are its own). Usage:

    python bench/noop_pass.py 10 50                  # both set-ups; prints a markdown table for docs/benchmarks.md
    python bench/noop_pass.py --modes layers 50      # one set-up
    python bench/noop_pass.py --profile 20 --modes layers 50   # also cProfile the no-op passes (top 20 by cumtime)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "deploy"))

import devstack  # noqa: E402
import docker  # noqa: E402

from desired_state.database import upgrade  # noqa: E402
from desired_state.yaml_io import import_yaml  # noqa: E402
from reconciler.runtime.settings import Settings  # noqa: E402
from reconciler.runtime.wiring import Runtime, build_runtime  # noqa: E402

NOOP_PASSES = 20  # enough for a p95 (the 19th of 20)
MODES = ("bare", "layers")


def tenants_yaml(
    count: int, *, prefix: str = "bench", replicas: int = 1, public: bool = False, domains: tuple[str, ...] = ()
) -> str:
    """N tenants with one small service each (shared with bench/usage_collection.py).

    ``domains``: tenant i gets ``<name>.<domains[i % len]>`` (default ``<name>.erp.test``)."""
    flag = ", public: true" if public else ""
    lines = [
        "catalog:",
        f'  a: {{image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.05{flag}}}',
        "tenants:",
    ]
    for i in range(count):
        parent = domains[i % len(domains)] if domains else "erp.test"
        lines += [
            f"  - name: {prefix}{i:03d}",
            f"    domain: {prefix}{i:03d}.{parent}",
            "    services:",
            f"      a: {{replicas: {replicas}}}",
        ]
    return "\n".join(lines) + "\n"


def cleanup(owner: str) -> None:
    """Remove everything labelled with this benchmark's owner id, data volumes included (they are its own)."""
    client = docker.from_env(timeout=120)
    label = {"label": [f"tenant-reconciler.owner={owner}"]}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for network in client.networks.list(filters=label):
        network.remove()
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)


def bench_runtime(tmp: str, owner: str, tenants_text: str, stages: Mapping[str, Any] | None = None) -> Runtime:
    """A reconciler on a throwaway SQLite database in ``tmp``, tenants imported; routing and DNS only with
    ``stages`` (settings naming Traefik and PowerDNS)."""
    settings = Settings(
        database_url=f"sqlite:///{tmp}/bench.sqlite3", owner_id=owner, name_prefix=owner, **(stages or {})
    )
    upgrade(settings.database_url)
    runtime = build_runtime(settings, with_stages=bool(stages))
    import_yaml(runtime.engine, tenants_text)
    return runtime


@contextmanager
def layer_stack(tmp: Path) -> Iterator[dict[str, Any]]:
    """Its own Traefik and PowerDNS on free 127.0.0.1 ports; yields the settings that point the reconciler at
    them (zones are set per run)."""
    traefik = devstack.Traefik(tmp / "traefik")
    powerdns = devstack.PowerDNS(tmp / "powerdns")
    try:
        traefik.start()
        powerdns.start()
        yield {
            "traefik_dynamic_dir": str(traefik.dynamic_dir),
            "traefik_api_url": traefik.api_url,
            "powerdns_url": powerdns.api_url,
            "powerdns_api_key": powerdns.api_key,
        }
    finally:
        traefik.stop()
        powerdns.stop()


class Counts:
    """Calls to every external system so far, read from the drivers' own counters."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        router, dns = runtime.reconciler.router, runtime.reconciler.dns
        self.traefik = getattr(router, "driver", None)
        self.powerdns = getattr(dns, "driver", None)

    def now(self) -> Counter[str]:
        counts: Counter[str] = Counter({f"docker {k}": v for k, v in self.runtime.docker.calls.items()})
        if self.traefik is not None:
            counts["traefik api_reads"] = self.traefik.api_reads
            counts["traefik writes"] = self.traefik.writes
        if self.powerdns is not None:
            counts.update({f"pdns {k}": v for k, v in self.powerdns.requests.items()})
        return counts


def check_noop(calls: Counter[str], zones: int, layers: bool) -> None:
    """The bounds a no-op pass must keep (docs/benchmarks.md)."""
    assert calls["docker list"] <= 3, f"{calls['docker list']} Docker list calls (bound 3)"
    assert calls["docker mutate"] == 0, f"{calls['docker mutate']} mutating Docker calls"
    if not layers:
        return
    assert calls["pdns GET"] == zones, f"{calls['pdns GET']} PowerDNS GETs for {zones} zones"
    others = {k: v for k, v in calls.items() if k.startswith("pdns ") and k != "pdns GET" and v}
    assert not others, f"PowerDNS requests other than GET: {others}"
    assert calls["traefik writes"] == 0, f"{calls['traefik writes']} Traefik files written"
    assert calls["traefik api_reads"] <= 1, f"{calls['traefik api_reads']} Traefik API reads (bound 1)"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def run(count: int, stack: Mapping[str, Any] | None, profile: int) -> dict[str, Any]:
    owner = f"b{secrets.token_hex(4)}"
    zones = [f"a.{owner}.test.", f"b.{owner}.test."] if stack is not None else []
    stages = {**stack, "powerdns_zones": zones} if stack is not None else None
    text = tenants_yaml(count, public=stack is not None, domains=tuple(z.rstrip(".") for z in zones))
    with tempfile.TemporaryDirectory() as tmp:
        runtime = bench_runtime(tmp, owner, text, stages)
        counts = Counts(runtime)
        profiler = cProfile.Profile() if profile else None
        try:
            started = time.perf_counter()
            first = runtime.reconciler.run_pass()
            converge = time.perf_counter() - started
            assert first.ok, first.errors
            durations: list[float] = []
            per_pass: list[Counter[str]] = []
            for _ in range(NOOP_PASSES):
                before = counts.now()
                started = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                result = runtime.reconciler.run_pass()
                if profiler is not None:
                    profiler.disable()
                durations.append(time.perf_counter() - started)
                assert result.ok, result.errors
                assert result.plan.empty, f"a no-op pass planned changes: {result.plan.changes[:3]}"
                calls = counts.now()
                calls.subtract(before)
                check_noop(calls, len(zones), stack is not None)
                per_pass.append(calls)
            if profiler is not None:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
                title = f"--- profile of {NOOP_PASSES} no-op passes, {count} tenants, {mode_name(stack)}"
                print(title, file=sys.stderr)
                print(out.getvalue(), file=sys.stderr)
            return {
                "tenants": count,
                "mode": mode_name(stack),
                "zones": len(zones),
                "converge_s": converge,
                "median_ms": statistics.median(durations) * 1000,
                "p95_ms": p95(durations) * 1000,
                "max_ms": max(durations) * 1000,
                "calls": per_pass[-1],
                "same_calls": all(c == per_pass[-1] for c in per_pass),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        finally:
            for stage in (counts.traefik, counts.powerdns):
                if stage is not None:
                    with suppress(Exception):
                        stage.close()
            runtime.engine.dispose()
            cleanup(owner)


def mode_name(stack: Mapping[str, Any] | None) -> str:
    return "bare" if stack is None else "layers"


def calls_text(row: dict[str, Any]) -> str:
    calls: Counter[str] = row["calls"]
    text = f"Docker {calls['docker list']} list, {calls['docker mutate']} mutating"
    if row["mode"] == "layers":
        pdns = ", ".join(f"{v} {k[5:]}" for k, v in sorted(calls.items()) if k.startswith("pdns ") and v)
        text += (
            f"; PowerDNS {pdns or 'none'} ({row['zones']} zones); "
            f"Traefik {calls['traefik api_reads']} API read, {calls['traefik writes']} writes"
        )
    return text + ("" if row["same_calls"] else " (varied between passes)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("counts", nargs="*", type=int, default=[10, 50])
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: bare, layers")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N functions (stderr)")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown mode(s) {sorted(unknown)}; known: {', '.join(MODES)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, layer_stack(Path(tmp)) if "layers" in modes else _none() as stack:
        for count in args.counts:  # the set-ups take turns, so load from other work falls on both alike
            rows += [run(count, stack if mode == "layers" else None, args.profile) for mode in modes]
    print(
        f"| tenants | layers | converge from empty | no-op pass median / p95 / max ({NOOP_PASSES} passes) "
        "| calls per no-op pass | max RSS |"
    )
    print("|---:|---|---:|---:|---|---:|")
    for r in rows:
        layers = "containers" if r["mode"] == "bare" else "containers, routes, DNS"
        print(
            f"| {r['tenants']} | {layers} | {r['converge_s']:.1f} s "
            f"| {r['median_ms']:.0f} / {r['p95_ms']:.0f} / {r['max_ms']:.0f} ms "
            f"| {calls_text(r)} | {r['max_rss_mb']:.0f} MB |"
        )
    return 0


@contextmanager
def _none() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
