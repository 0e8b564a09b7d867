"""Usage arithmetic (core.usage), cgroup file reading (drivers.usage) for the v1 and v2 layouts, and the gauges.

The machines here run cgroup v1; the v2 and systemd layouts are laid out in a temporary directory with the
files and formats the kernel writes, so the reader is checked on all of them.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from reconciler.core.usage import ContainerSample, ServiceUsage, aggregate, cpu_cores
from reconciler.drivers.usage import _Cgroups, _from_stats_api
from reconciler.runtime.telemetry.usage import UsageMetrics

MIB = 1024 * 1024


def sample(
    cid: str, service: str = "a", *, cpu: float, at: float, memory: int = MIB, limit: int | None = 64 * MIB
) -> ContainerSample:
    return ContainerSample(cid, "acme", service, memory, limit, cpu, at)


def test_cpu_cores_is_cpu_time_over_wall_time() -> None:
    assert cpu_cores(sample("x", cpu=10.0, at=100.0), sample("x", cpu=10.5, at=102.0)) == 0.25
    assert cpu_cores(None, sample("x", cpu=1.0, at=1.0)) is None
    assert cpu_cores(sample("x", cpu=5.0, at=1.0), sample("x", cpu=1.0, at=2.0)) is None  # restarted in place
    assert cpu_cores(sample("x", cpu=1.0, at=2.0), sample("x", cpu=1.0, at=2.0)) is None


def test_aggregate_sums_containers_per_service() -> None:
    previous = {"1": sample("1", cpu=0.0, at=0.0), "2": sample("2", cpu=0.0, at=0.0)}
    current = [
        sample("1", cpu=1.0, at=2.0, memory=10 * MIB),
        sample("2", cpu=2.0, at=2.0, memory=20 * MIB),
        sample("3", "b", cpu=7.0, at=2.0, memory=5 * MIB, limit=None),  # new: no CPU figure yet
    ]
    assert aggregate(previous, current) == [
        ServiceUsage("acme", "a", 30 * MIB, 128 * MIB, 1.5, 2),
        ServiceUsage("acme", "b", 5 * MIB, None, None, 1),
    ]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cgroup_v1_cgroupfs_layout(tmp_path: Path) -> None:
    cid = "c" * 64
    _write(
        tmp_path,
        {
            f"memory/docker/{cid}/memory.usage_in_bytes": "10485760\n",
            f"memory/docker/{cid}/memory.limit_in_bytes": "67108864\n",
            f"memory/docker/{cid}/memory.stat": "cache 4096\ntotal_inactive_file 2097152\ntotal_rss 1\n",
            f"cpuacct/docker/{cid}/cpuacct.usage": "2500000000\n",
        },
    )
    assert _Cgroups(str(tmp_path)).read(cid) == (8 * MIB, 64 * MIB, 2.5)


def test_cgroup_v1_unlimited_and_systemd_layout(tmp_path: Path) -> None:
    cid = "d" * 64
    scope = f"system.slice/docker-{cid}.scope"
    _write(
        tmp_path,
        {
            f"memory/{scope}/memory.usage_in_bytes": "1048576\n",
            f"memory/{scope}/memory.limit_in_bytes": "9223372036854771712\n",
            f"memory/{scope}/memory.stat": "total_inactive_file 0\n",
            f"cpu,cpuacct/{scope}/cpuacct.usage": "1000000000\n",
        },
    )
    assert _Cgroups(str(tmp_path)).read(cid) == (MIB, None, 1.0)


def test_cgroup_v2_layout(tmp_path: Path) -> None:
    cid = "e" * 64
    scope = f"system.slice/docker-{cid}.scope"
    _write(
        tmp_path,
        {
            "cgroup.controllers": "cpuset cpu io memory pids\n",
            f"{scope}/memory.current": "5242880\n",
            f"{scope}/memory.max": "max\n",
            f"{scope}/memory.stat": "anon 1\nfile 2\ninactive_file 1048576\n",
            f"{scope}/cpu.stat": "usage_usec 750000\nuser_usec 500000\nsystem_usec 250000\n",
        },
    )
    cgroups = _Cgroups(str(tmp_path))
    assert cgroups.read(cid) == (4 * MIB, None, 0.75)
    (tmp_path / scope / "memory.max").write_text("33554432\n")
    assert cgroups.read(cid) == (4 * MIB, 32 * MIB, 0.75)


def test_missing_or_vanished_container_reads_as_none(tmp_path: Path) -> None:
    cid = "f" * 64
    cgroups = _Cgroups(str(tmp_path))
    assert cgroups.read(cid) is None
    _write(tmp_path, {f"memory/docker/{cid}/memory.stat": "", f"cpuacct/docker/{cid}/cpuacct.usage": "1\n"})
    assert cgroups.read(cid) is None  # found the dirs, but usage_in_bytes is gone: stopped meanwhile


def test_stats_api_figures() -> None:
    raw = {
        "memory_stats": {"usage": 3 * MIB, "limit": 64 * MIB, "stats": {"total_inactive_file": MIB}},
        "cpu_stats": {"cpu_usage": {"total_usage": 4_000_000_000}},
    }
    assert _from_stats_api(raw) == (2 * MIB, 64 * MIB, 4.0)
    assert _from_stats_api({"memory_stats": {}, "cpu_stats": {}}) is None  # a stopped container


def test_gauges_follow_the_latest_collection() -> None:
    registry = CollectorRegistry()
    metrics = UsageMetrics()
    registry.register(metrics)
    metrics.update([ServiceUsage("acme", "a", 10, 100, 0.5, 2), ServiceUsage("acme", "b", 20, None, None, 1)], 0.01)
    text = generate_latest(registry).decode()
    assert 'reconciler_tenant_memory_bytes{service="a",tenant="acme"} 10.0' in text
    assert 'reconciler_tenant_memory_limit_bytes{service="a",tenant="acme"} 100.0' in text
    assert 'reconciler_tenant_memory_limit_bytes{service="b"' not in text
    assert 'reconciler_tenant_cpu_cores{service="a",tenant="acme"} 0.5' in text
    assert 'reconciler_tenant_containers{service="b",tenant="acme"} 1.0' in text
    metrics.update([], 0.0)
    assert 'tenant="acme"' not in generate_latest(registry).decode()
