"""Benchmark: the reconciler against Docker Compose v2 and the raw Docker SDK, the same fleet, one run.

Fleet-N (``--fleets 5 20``): tenants t0..tN-1 with services a..f on erp/demo-svc:1, a with 2 replicas, 32M and
0.25 CPU each, a bridge network (own subnet) and a data volume per tenant (bench/fleet.py). Peers, each under an
owner id of its own and cleaned up after itself (bench/peer_tools.py):

- ``sdk``: bench/peer_sdk.py, docker SDK 7, 4 tenants at a time; create + start, wait until running (the floor);
- ``compose-parallel`` / ``compose-serial``: Compose v2, one project per tenant, ``up -d``, 4 at a time / one by one;
- ``compose-wait``: as compose-parallel with a 1 s health check and ``up -d --wait`` (fleets up to ``--wait-max``);
- ``apply`` / ``apply-layers``: ``reconciler apply`` as a process on its own SQLite file; containers only / with
  routing and DNS through the script's own Traefik and PowerDNS (deploy/devstack.py; service a public);
- ``run``: ``reconciler run`` (4 workers) from empty, until every tenant's status row says Ready.

Scenarios: converge from empty (``--reps`` for fleets up to 5, ``--big-reps`` above; every repetition on a fresh
owner, so truly from empty); after the last converge, no-op re-runs as whole processes (``--noop-reps``; the
reconciler: ``apply`` and ``plan``) checked to change no container, and heals (``--heal-reps``): ``docker rm -f``
of t0's first replica of a, then one re-run (``run``: the wait for it to heal on its own). Peers take turns
within every repetition, so load from other work on the machine falls on all of them alike. Then
bench/heal_latency.py under `reconciler run` (``--heal-runs``). Prints markdown for docs/benchmarks.md (medians
and ratios) and, with ``--json FILE``, every sample. Usage::

    python bench/peers.py                       # fleets 5 and 20
    python bench/peers.py --quick               # fleet 2, 1 converge, 2 no-op, 1 heal, 5 heal runs
    python bench/peers.py --fleets 5 --peers sdk,apply --json peers.json
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "deploy"))

import devstack  # noqa: E402
import docker  # noqa: E402
import fleet as fl  # noqa: E402
import heal_latency  # noqa: E402
from peer_tools import PEERS, Peer, ReconcilerLayersPeer  # noqa: E402

SCENARIOS = {
    "converge": "converge from empty",
    "noop": "no-op re-run, whole process",
    "noop-plan": "no-op `reconciler plan`, whole process",
    "heal": "heal one removed container (one re-run; `run`: unattended)",
}
# Ratios printed under each table: (numerator, denominator).
RATIOS = [
    ("apply", "sdk"),
    ("apply", "compose-serial"),
    ("run", "sdk"),
    ("run", "compose-serial"),
    ("apply-layers", "sdk"),
    ("apply", "compose-parallel"),
]
Samples = dict[str, dict[str, list[float]]]  # peer → scenario → seconds


def build_peers(args: argparse.Namespace, client: docker.DockerClient, work: Path, size: int, stack: Any) -> list[Peer]:
    peers = []
    for key in args.keys:
        if key == "compose-wait" and size > args.wait_max:
            continue
        cls = PEERS[key]
        peers.append(cls(client, work, size, stack) if cls is ReconcilerLayersPeer else cls(client, work, size))
    return peers


def run_fleet(
    size: int, args: argparse.Namespace, client: docker.DockerClient, work: Path, stack: Any
) -> dict[str, Any]:
    reps = args.reps if size <= 5 else args.big_reps
    samples: Samples = defaultdict(lambda: defaultdict(list))
    facts: dict[str, Any] = {}
    peers = build_peers(args, client, work, size, stack)
    for rep in range(reps):
        for peer in peers:
            peer.prepare()
            try:
                log(f"fleet-{size} rep {rep + 1}/{reps}: {peer.key} converge ({peer.fleet.owner})")
                samples[peer.key]["converge"].append(peer.converge())
                log(f"fleet-{size} {peer.key} converged in {samples[peer.key]['converge'][-1]:.2f} s")
                check_running(client, peer)
                facts[peer.key] = peer.facts() | {"containers": peer.fleet.containers}
                if rep == reps - 1:
                    measure_reruns(args, client, peer, samples[peer.key])
            finally:
                peer.cleanup()
    containers = fl.Fleet(size, "count").containers
    return {"size": size, "containers": containers, "reps": reps, "samples": samples, "facts": facts}


def measure_reruns(
    args: argparse.Namespace, client: docker.DockerClient, peer: Peer, samples: dict[str, list[float]]
) -> None:
    for _ in range(args.noop_reps):
        before = fl.container_states(client, peer.fleet.owner)
        for scenario, seconds in peer.noop().items():
            samples[scenario].append(seconds)
            log(f"{peer.key} {scenario} {seconds:.2f} s")
        after = fl.container_states(client, peer.fleet.owner)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))[:3]
            raise RuntimeError(f"{peer.key}: a no-op re-run changed containers: {changed}")
    for _ in range(args.heal_reps):
        fl.victim(client, peer.fleet.owner).remove(force=True)
        samples["heal"].append(peer.heal())
        log(f"{peer.key} heal {samples['heal'][-1]:.2f} s")
        check_running(client, peer)
        time.sleep(1.0)  # `reconciler run` starts a tenant at most once a second; the same pause for every peer


def check_running(client: docker.DockerClient, peer: Peer) -> None:
    running = fl.running_count(client, peer.fleet.owner)
    if running != peer.fleet.containers:
        raise RuntimeError(f"{peer.key}: {running} containers running, {peer.fleet.containers} expected")


@contextmanager
def layer_stack(work: Path, needed: bool) -> Iterator[dict[str, Any]]:
    """Traefik and PowerDNS for ``apply-layers`` and the heal benchmark (Traefik only when no layers peer)."""
    traefik = devstack.Traefik(work / "traefik")
    powerdns = devstack.PowerDNS(work / "powerdns") if needed else None
    try:
        traefik.start()
        if powerdns is not None:
            powerdns.start()
        yield {"traefik": traefik, "env": traefik.env() | (powerdns.env() if powerdns else {})}
    finally:
        traefik.stop()
        if powerdns is not None:
            powerdns.stop()


# --------------------------------------------------------------------------------------------- output


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def cell(values: list[float]) -> str:
    m = median(values)
    return "—" if m is None else f"{m:.2f} s"


def fleet_table(result: dict[str, Any], keys: list[str]) -> str:
    samples: Samples = result["samples"]
    shown = [k for k in keys if k in samples]
    head = f"| fleet-{result['size']} ({result['containers']} containers) | " + " | ".join(
        PEERS[k].title for k in shown
    )
    lines = [head + " |", "|---|" + "---:|" * len(shown)]
    for scenario, what in SCENARIOS.items():
        if not any(samples[k].get(scenario) for k in shown):
            continue
        counts = sorted({len(samples[k][scenario]) for k in shown if samples[k].get(scenario)})
        reps = "/".join(str(c) for c in counts)
        lines.append(f"| {what} (median of {reps}) | " + " | ".join(cell(samples[k].get(scenario, [])) for k in shown))
        lines[-1] += " |"
    ratios = []
    for top, bottom in RATIOS:
        parts = []
        for scenario in SCENARIOS:
            a, b = median(samples.get(top, {}).get(scenario, [])), median(samples.get(bottom, {}).get(scenario, []))
            if a is not None and b:
                parts.append(f"{scenario} {a / b:.2f}x")
        if parts:
            ratios.append(f"- `{top}` / `{bottom}`: " + ", ".join(parts))
    return "\n".join([*lines, "", *ratios])


def machine_line(facts: dict[str, Any]) -> str:
    before, after = facts["load_before"], facts["load_after"]
    return (
        f"{facts['date']}; {facts['os']}, nproc {facts['nproc']}, {facts['memory_gib']} GiB, kernel "
        f"{facts['kernel']}, Docker {facts['docker']}, Compose {facts['compose']}, docker SDK "
        f"{facts['docker_sdk']}, Python {facts['python']}; load average before {before[0]:.2f} / "
        f"{before[1]:.2f} / {before[2]:.2f}, after {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f}; "
        f"run took {facts['wall_s'] / 60:.1f} min"
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {message}", file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleets", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of: {', '.join(PEERS)}")
    parser.add_argument("--reps", type=int, default=3, help="converges per peer, fleets up to 5 tenants")
    parser.add_argument("--big-reps", type=int, default=1, help="converges per peer, larger fleets")
    parser.add_argument("--noop-reps", type=int, default=5)
    parser.add_argument("--heal-reps", type=int, default=3)
    parser.add_argument("--heal-runs", type=int, default=20, help="bench/heal_latency.py runs; 0: skip")
    parser.add_argument("--wait-max", type=int, default=5, help="largest fleet for compose-wait")
    parser.add_argument("--quick", action="store_true", help="fleet 2, one of everything, 5 heal runs")
    parser.add_argument("--json", type=Path, help="write every sample and the machine facts here")
    args = parser.parse_args(argv)
    if args.quick:
        args.fleets, args.reps, args.big_reps, args.noop_reps, args.heal_reps, args.heal_runs = [2], 1, 1, 2, 1, 5
    args.keys = [k for k in args.peers.split(",") if k]
    if unknown := set(args.keys) - set(PEERS):
        parser.error(f"unknown peer(s) {sorted(unknown)}; known: {', '.join(PEERS)}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    # SIGTERM (a background run cannot be interrupted with SIGINT) still cleans up: containers, Traefik, PowerDNS.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    client = docker.from_env(timeout=120)
    facts = fl.machine_facts(client)
    results = []
    heal: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp, layer_stack(Path(tmp), "apply-layers" in args.keys) as stack:
        for size in args.fleets:
            results.append(run_fleet(size, args, client, Path(tmp), stack["env"]))
            # Each fleet as soon as it is done, so a long run that is cut short still leaves its figures.
            log("fleet-" + str(size) + " done:\n" + fleet_table(results[-1], args.keys))
            if args.json:
                fl.write_json(args.json, {"machine": facts, "fleets": results, "argv": argv})
        if args.heal_runs:
            log(f"heal latency under reconciler run, {args.heal_runs} runs")
            heal = heal_latency.measure(args.heal_runs, Path(tmp), traefik=stack["traefik"])
    facts |= {"load_after": os.getloadavg(), "wall_s": time.perf_counter() - started}
    print(f"Machine: {machine_line(facts)}\n")
    for result in results:
        print(fleet_table(result, args.keys) + "\n")
    if heal is not None:
        print(heal_latency.markdown(heal))
    compose = [r["facts"].get("compose-parallel", {}).get("limits_checked") for r in results]
    if any(compose):
        print(f"\nCompose containers' limits checked with docker inspect: {next(c for c in compose if c)}")
    if args.json:
        fl.write_json(args.json, {"machine": facts, "fleets": results, "heal_under_run": heal, "argv": argv})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
