"""Benchmark: the sites stage with N sites on a real Nginx: first apply, a no-op pass, one changed site, and the
cost of ``nginx -t`` and of a confirmed reload at that size.

Starts its own Nginx (free 127.0.0.1 port, a throwaway state dir) and a throwaway SQLite database; N redirect and
forward sites (every third forward caches). Checks the bounds of docs/sites.md: a no-op pass writes no file and
reloads nothing; a pass with one changed site writes one file and reloads once. Everything is removed at the end.

    python bench/sites_nginx.py 10 100 500      # prints a markdown table for docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, update

from deploy.devstack import free_port
from desired_state.database import make_engine, upgrade
from desired_state.site_tables import Site
from reconciler.core.policies import MassDeleteLimits
from reconciler.drivers.nginx import NginxDriver
from reconciler.runtime.passes.sites_step import SitesStep
from renderers.nginx import NginxLayout


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(count: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-sites-"))
    root.chmod(0o755)
    engine = make_engine(f"sqlite:///{root / 'bench.db'}")
    upgrade(engine)
    layout = NginxLayout(
        listen=f"127.0.0.1:{free_port()}", prefix="bench", owner="bench", state_dir=str(root / "nginx")
    )
    driver = NginxDriver(Path(layout.state_dir), "bench")
    step = SitesStep(engine, driver, layout, MassDeleteLimits())
    try:
        with engine.begin() as connection:
            for i in range(count):
                options = (
                    {"target": f"https://new{i}.example.test/"}
                    if i % 2
                    else {"upstream": f"http://10.0.{i // 250}.{i % 250 + 1}:8080", "cache": i % 3 == 0}
                )
                kind = "redirect" if i % 2 else "forward"
                connection.execute(
                    insert(Site).values(name=f"s{i}", kind=kind, host=f"s{i}.example.test", options=options)
                )
        first = _timed(step.run)
        calls = dict(driver.calls)
        noop = statistics.median(_timed(step.run) for _ in range(3))
        assert driver.calls == calls, f"a no-op pass wrote or reloaded: {driver.calls} vs {calls}"
        with engine.begin() as connection:
            connection.execute(
                update(Site).where(Site.name == "s1").values(options={"target": "https://x.example.test/"})
            )
        one = _timed(step.run)
        assert driver.calls["write"] == calls["write"] + 1 and driver.calls["reload"] == calls["reload"] + 1
        test = statistics.median(_timed(lambda: driver.test({})) for _ in range(3))
        reload = statistics.median(_timed(driver.reload) for _ in range(3))
        return {"first": first, "noop": noop, "one": one, "test": test, "reload": reload}
    finally:
        driver.stop()
        engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="+", type=int)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| sites | first apply | no-op pass | one site changed | `nginx -t` | confirmed reload |")
    print("|---|---|---|---|---|---|")
    for count in args.counts:
        r = run(count)
        print(
            f"| {count} | {r['first']:.2f} s | {r['noop'] * 1000:.0f} ms | {r['one'] * 1000:.0f} ms | "
            f"{r['test'] * 1000:.0f} ms | {r['reload'] * 1000:.0f} ms |"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
