"""Benchmark: a no-op reconcile pass for N tenants, and the Docker API calls it makes.

Creates N tenants (one container each) on the real engine with a throwaway SQLite database and its own owner
id, converges them, then times no-op passes and counts Docker calls by kind. Everything it created is removed
at the end (data volumes included: they are its own). Usage:

    python bench/noop_pass.py 10 50          # prints a markdown table for docs/benchmarks.md
"""

from __future__ import annotations

import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker

from desired_state.database import upgrade
from desired_state.yaml_io import import_yaml
from reconciler.runtime.settings import Settings
from reconciler.runtime.wiring import Runtime, build_runtime

NOOP_PASSES = 7


def tenants_yaml(count: int, *, prefix: str = "bench", replicas: int = 1) -> str:
    """N tenants with one small service each (shared with bench/usage_collection.py)."""
    lines = [
        "catalog:",
        '  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.05}',
        "tenants:",
    ]
    for i in range(count):
        lines += [
            f"  - name: {prefix}{i:03d}",
            f"    domain: {prefix}{i:03d}.erp.test",
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


def bench_runtime(tmp: str, owner: str, tenants_text: str) -> Runtime:
    """A reconciler (no routing or DNS stage) on a throwaway SQLite database in ``tmp``, tenants imported."""
    os.environ.update(
        {
            "RECONCILER_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "RECONCILER_OWNER_ID": owner,
            "RECONCILER_NAME_PREFIX": owner,
        }
    )
    settings = Settings()
    upgrade(settings.database_url)
    runtime = build_runtime(settings, with_stages=False)
    import_yaml(runtime.engine, tenants_text)
    return runtime


def run(count: int) -> dict[str, float]:
    owner = f"b{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        runtime = bench_runtime(tmp, owner, tenants_yaml(count))
        try:
            started = time.perf_counter()
            first = runtime.reconciler.run_pass()
            converge = time.perf_counter() - started
            assert first.ok, first.errors
            durations = []
            calls = {}
            for _ in range(NOOP_PASSES):
                before = dict(runtime.docker.calls)
                started = time.perf_counter()
                result = runtime.reconciler.run_pass()
                durations.append(time.perf_counter() - started)
                assert result.ok and result.plan.empty, "a no-op pass planned changes"
                calls = {k: v - before.get(k, 0) for k, v in runtime.docker.calls.items() if v - before.get(k, 0)}
            return {
                "tenants": count,
                "converge_s": converge,
                "noop_median_ms": statistics.median(durations) * 1000,
                "noop_max_ms": max(durations) * 1000,
                "list_calls": calls.get("list", 0),
                "mutate_calls": calls.get("mutate", 0),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        finally:
            runtime.engine.dispose()
            cleanup(owner)


def main(argv: list[str]) -> int:
    counts = [int(a) for a in argv] or [10, 50]
    rows = [run(c) for c in counts]
    print(
        "| tenants (containers) | converge from empty | no-op pass (median / max) | Docker calls per no-op pass "
        "| max RSS |"
    )
    print("|---:|---:|---:|---|---:|")
    for r in rows:
        print(
            f"| {r['tenants']:.0f} | {r['converge_s']:.1f} s "
            f"| {r['noop_median_ms']:.0f} ms / {r['noop_max_ms']:.0f} ms "
            f"| {r['list_calls']:.0f} list, {r['mutate_calls']:.0f} mutating | {r['max_rss_mb']:.0f} MB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
