"""Benchmark (issue 11): planning time with a 1000-entry deny list on one route, against the same fleet without it.

Loads the desired state from a throwaway SQLite database and plans it (``plan_pass``, no engine: an empty
snapshot), 20 tenants, median of 7 runs each. The hostile list is refused by the loader with a clear error for
that tenant (bounds in docs/schema.md), so planning costs what it costs without it. Usage:

    python bench/deny_list_plan.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from desired_state.database import make_engine, upgrade
from desired_state.load import load_desired_state
from desired_state.yaml_io import import_yaml
from reconciler.core.resources import Snapshot
from reconciler.planning import Observed, PlanSettings, RoutingSettings, plan_pass
from renderers.containers import Naming

RUNS = 7


def fleet(count: int) -> str:
    lines = ["catalog:", '  a: {image: "erp/demo-svc:1", public: true}', "tenants:"]
    for i in range(count):
        lines += [f"  - name: t{i}", f"    domain: t{i}.erp.test", "    services:", "      a: {}"]
    return "\n".join(lines) + "\n"


def plan_seconds(url: str) -> tuple[float, int]:
    engine = make_engine(url)
    settings = PlanSettings(naming=Naming("bench", "bench"), routing=RoutingSettings())
    times = []
    errors = 0
    for _ in range(RUNS):
        began = time.perf_counter()
        desired = load_desired_state(engine)
        plan_pass(desired, Observed(Snapshot(), routes={}), settings)
        times.append(time.perf_counter() - began)
        errors = len(desired.errors)
    engine.dispose()
    return statistics.median(times), errors


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(make_engine(url))
        import_yaml(make_engine(url), fleet(20))
        plain, _ = plan_seconds(url)
        deny = json.dumps([f"2001:db8::{i:x}" for i in range(1000)])
        with make_engine(url).begin() as connection:
            service = connection.execute(
                text("SELECT s.id FROM tenant_services s JOIN tenants t ON t.id = s.tenant_id WHERE t.name = 't0'")
            ).scalar_one()
            connection.execute(
                text("INSERT INTO tenant_service_routes (tenant_service_id, deny) VALUES (:s, :d)"),
                {"s": service, "d": deny},
            )
        hostile, errors = plan_seconds(url)
    print("| fleet | load + plan, median | invalid tenants |")
    print("|---|---|---|")
    print(f"| 20 tenants | {plain * 1000:.1f} ms | 0 |")
    label = "20 tenants, one with a 1000-entry IPv6 deny list"
    print(f"| {label} | {hostile * 1000:.1f} ms ({hostile / plain:.2f}x) | {errors} |")


if __name__ == "__main__":
    main()
