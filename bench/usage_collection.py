"""Benchmark: does collecting per-tenant usage slow a reconcile pass? And what does one collection cost?

Creates TENANTS tenants with two containers each (50 containers by default) on the real engine, with a throwaway
SQLite database and its own owner id, converges them, then runs no-op passes back to back in three conditions:
no collector; the collector on its own thread reading cgroup files every second; the collector using the Docker
stats API (16 in parallel) every second. The conditions take turns in short blocks (ROUNDS rounds), so load from
other work on the machine falls on all of them alike. The collector writes its rows into the same database,
as in production. The production default interval is 15 s, so these are far heavier than real use. Also times
one collection of each kind and one classic `stats(stream=False)` call. Everything it created is removed at the
end. Usage:

    python bench/usage_collection.py [tenants] [seconds per block]     # default 25 tenants, 5 s
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from reconciler.drivers.usage import UsageSampler
from reconciler.runtime.passes.reconcile import Reconciler
from reconciler.runtime.telemetry.usage import UsageCollector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noop_pass import bench_runtime, cleanup, tenants_yaml

COLLECT_INTERVAL = 1.0
ROUNDS = 4


def passes_for(reconciler: Reconciler, seconds: float) -> list[float]:
    durations = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        result = reconciler.run_pass()
        durations.append(time.perf_counter() - started)
        assert result.ok and result.plan.empty, "a no-op pass planned changes"
    return durations


def summary(durations: list[float]) -> str:
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{len(durations)} | {statistics.median(durations) * 1000:.0f} ms | {p95 * 1000:.0f} ms "
        f"| {max(durations) * 1000:.0f} ms"
    )


def main(argv: list[str]) -> int:
    tenants = int(argv[0]) if argv else 25
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    owner = f"u{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        runtime = bench_runtime(tmp, owner, tenants_yaml(tenants, prefix="use", replicas=2))
        try:
            first = runtime.reconciler.run_pass()
            assert first.ok, first.errors
            samplers = {source: UsageSampler(owner, source=source) for source in ("cgroup", "docker-api")}
            containers = len(samplers["cgroup"].running())
            collect_rows = []
            for source, sampler in samplers.items():
                collector = UsageCollector(sampler, runtime.engine, COLLECT_INTERVAL)
                collector.collect_once()  # the first one also samples new containers twice
                started = time.perf_counter()
                collector.collect_once()
                collect_rows.append((source, time.perf_counter() - started))
            one_id = samplers["cgroup"].running()[0][0]
            started = time.perf_counter()
            samplers["cgroup"].api.stats(one_id, stream=False)
            classic = time.perf_counter() - started

            conditions: dict[str, list[float]] = {"no collector": []}
            for _ in range(ROUNDS):
                conditions["no collector"] += passes_for(runtime.reconciler, seconds)
                for source, sampler in samplers.items():
                    stop = threading.Event()
                    thread = UsageCollector(sampler, runtime.engine, COLLECT_INTERVAL).start(stop)
                    time.sleep(0.5)  # past the first collection, which samples every container twice
                    name = f"collector every {COLLECT_INTERVAL:g} s, {source}"
                    conditions.setdefault(name, []).extend(passes_for(runtime.reconciler, seconds))
                    stop.set()
                    thread.join()
            rows = list(conditions.items())
            for sampler in samplers.values():
                sampler.close()
        finally:
            runtime.engine.dispose()
            cleanup(owner)

    print(f"{containers} containers in {tenants} tenants; {ROUNDS} rounds of {seconds:g} s of no-op passes each\n")
    print("| condition | passes | median | p95 | max |")
    print("|---|---:|---:|---:|---:|")
    for name, durations in rows:
        print(f"| {name} | {summary(durations)} |")
    print("\n| one collection of all containers | duration |")
    print("|---|---:|")
    for source, took in collect_rows:
        print(f"| {source} | {took * 1000:.0f} ms |")
    print(f"| one `stats(stream=False)` call (for comparison) | {classic * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
