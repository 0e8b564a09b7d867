"""Benchmark: the memory of the planner in ``reconciler run``'s steady state, in one fresh process.

``bench/planner_scale.py`` reports the planner's own allocations and a process peak inflated by its copies of
the inputs. This script keeps one set of inputs, as a pass holds them: it builds N synthetic tenants and their
converged world (the same fleet as planner_scale.py), then plans with one ``RenderCache`` as the run loop does,
once cold and ``--warm`` times warm, and prints the process's RSS (``ru_maxrss``: the peak, cache included) after
the inputs are built and at the end, with each plan's time. Usage::

    python bench/planner_memory.py [--tenants 10000] [--warm 5]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import planner_scale as scale

from reconciler.planning import PassContext, RenderCache, plan_pass


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--warm", type=int, default=5)
    args = parser.parse_args(argv)
    desired = scale.desired_state(args.tenants)
    world = scale.converged(desired)
    gc.collect()
    inputs = rss_mb()
    cache = RenderCache()
    times = []
    for _ in range(1 + args.warm):
        started = time.perf_counter()
        result = plan_pass(desired, world, scale.SETTINGS, PassContext(cache=cache))
        times.append(time.perf_counter() - started)
        assert result.plan.empty and not result.failed
    print(
        f"tenants {args.tenants}: max RSS {inputs:.0f} MB with the inputs built, {rss_mb():.0f} MB at the end "
        f"(cold plan and cache included); cold plan {times[0]:.2f} s, warm median {statistics.median(times[1:]):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
