"""Benchmark: the one-shot CLI as a whole process (start, connect, load, observe, plan, exit).

Creates a fleet on the real engine with a throwaway SQLite database and its own owner id (N tenants x services
a..f, a with 2 replicas, 32M and 0.25 CPU each: 7 containers per tenant, as in issue 12), converges it once with
``reconciler apply``, then runs each command 10 times as a fresh process and prints the median and the spread:

- ``--version``: the interpreter plus the CLI module's imports;
- ``plan``: a no-op plan (exit 0) of the converged fleet;
- ``apply``: a no-op pass (``Applied 0 changes``);
- ``status``: the status rows.
Beside the wall time, the median CPU time (user + system) of each command: on a loaded machine the wall time is
mostly waiting for a core.

Everything it created is removed at the end (data volumes included: they are its own), unless ``--keep DIR``
(then ``--reuse DIR`` measures the same fleet again without converging it). Usage:

    python bench/cli_start.py                      # 20 tenants, 140 containers
    python bench/cli_start.py --tenants 5 --runs 10
    python bench/cli_start.py --keep /tmp/fleet    # leave the fleet; later: --reuse /tmp/fleet
    python bench/cli_start.py --entry script       # the `reconciler` console script instead of python -m
    python bench/cli_start.py --reuse /tmp/fleet --code /work/main   # another checkout's code, same fleet (A/B)
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = "abcdef"
COMMANDS = (("--version",), ("plan",), ("apply",), ("status",))
# The commands run from here, not from a checkout: ``python -m`` puts the working directory first on sys.path.
NEUTRAL = tempfile.gettempdir()
EXPECTED_EXIT = {"--version": 0, "plan": 0, "apply": 0, "status": 0}


def fleet_yaml(count: int, prefix: str = "fleet") -> str:
    """N tenants x services a..f, a with 2 replicas: 7 containers per tenant."""
    lines = ["catalog:"]
    for name in SERVICES:
        lines.append(f'  {name}: {{image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.25}}')
    lines.append("tenants:")
    for i in range(count):
        lines += [f"  - name: {prefix}{i:03d}", f"    domain: {prefix}{i:03d}.erp.test", "    services:"]
        lines += [f"      {name}: {{replicas: {2 if name == 'a' else 1}}}" for name in SERVICES]
    return "\n".join(lines) + "\n"


def entry(kind: str) -> list[str]:
    if kind == "script":
        script = shutil.which("reconciler")
        if script is None:
            raise SystemExit("no `reconciler` console script on PATH")
        return [script]
    return [sys.executable, "-m", "reconciler.cli"]


def environment(workdir: Path, owner: str, code: Path = REPO, bytecode: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    if bytecode:
        # An installed package has its modules compiled (pip writes the .pyc files); a checkout run with
        # PYTHONDONTWRITEBYTECODE compiles every module of the project from source on every start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        PYTHONPATH=str(code),
        RECONCILER_DATABASE_URL=f"sqlite:///{workdir}/fleet.sqlite3",
        RECONCILER_OWNER_ID=owner,
        RECONCILER_NAME_PREFIX=owner,
        RECONCILER_LOG_LEVEL="WARNING",
    )
    return env


# CPU seconds (user + system) of each command run by ``cli``, in order: on a machine others load, the wall time
# mostly measures waiting for a core; the CPU time is what the command itself costs.
CPU_SECONDS: list[float] = []


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(command: list[str], args: tuple[str, ...], env: dict[str, str], expect: int = 0) -> float:
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, check=False, cwd=NEUTRAL)
    elapsed = time.perf_counter() - started
    CPU_SECONDS.append(_children_cpu() - cpu)
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    if args == ("apply",) and "Applied 0 changes" not in done.stdout:
        raise SystemExit(f"apply was not a no-op:\n{done.stdout[-2000:]}")
    return elapsed


def prepare(workdir: Path, owner: str, count: int, command: list[str]) -> float:
    env = environment(workdir, owner)
    fleet = workdir / "fleet.yaml"
    fleet.write_text(fleet_yaml(count))
    cli(command, ("db", "upgrade"), env)
    cli(command, ("tenants", "import", str(fleet)), env)
    started = time.perf_counter()
    done = subprocess.run([*command, "apply"], env=env, capture_output=True, text=True, check=False, cwd=NEUTRAL)
    if done.returncode != 0:
        raise SystemExit(f"converging failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (workdir / "owner").write_text(owner)
    return time.perf_counter() - started


def cleanup(owner: str) -> None:
    """Remove everything labelled with this benchmark's owner id, data volumes included (they are its own)."""
    import docker

    client = docker.from_env(timeout=120)
    label = {"label": [f"tenant-reconciler.owner={owner}"]}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for network in client.networks.list(filters=label):
        network.remove()
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)


def measure(
    workdir: Path, owner: str, command: list[str], runs: int, code: Path, bytecode: bool
) -> list[tuple[str, float, float, float, float]]:
    env = environment(workdir, owner, code, bytecode)
    rows = []
    for args in COMMANDS:
        cli(command, args, env, EXPECTED_EXIT[args[0]])  # warm the page cache once
        del CPU_SECONDS[:]
        times = [cli(command, args, env, EXPECTED_EXIT[args[0]]) for _ in range(runs)]
        cpu = statistics.median(CPU_SECONDS)
        rows.append((" ".join(args), statistics.median(times), min(times), max(times), cpu))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--entry", choices=("module", "script"), default="module")
    parser.add_argument("--keep", type=Path, help="create the fleet here and leave it (DB and containers)")
    parser.add_argument("--reuse", type=Path, help="measure a fleet left by --keep")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose code the measured commands run")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (compile from source every start)"
    )
    args = parser.parse_args()
    command = entry(args.entry)
    converge = None
    if args.reuse:
        workdir, owner = args.reuse, (args.reuse / "owner").read_text().strip()
    else:
        owner = f"c{secrets.token_hex(4)}"
        workdir = args.keep or Path(tempfile.mkdtemp(prefix="cli-start-"))
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        if not args.reuse:
            converge = prepare(workdir, owner, args.tenants, command)
        rows = measure(workdir, owner, command, args.runs, args.code, not args.no_bytecode)
    finally:
        if not (args.keep or args.reuse):
            cleanup(owner)
            shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()
    print(
        f"{args.tenants} tenants, {args.tenants * 7} containers, entry {args.entry}, {args.runs} runs each, {args.code}"
    )
    print("bytecode: " + ("compiled from source on every start" if args.no_bytecode else "compiled once, as installed"))
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if converge is not None:
        print(f"converge from empty (reconciler apply): {converge:.1f} s")
    print("| command | median s | min s | max s | CPU s (median) |\n|---|---|---|---|---|")
    for name, median, low, high, cpu in rows:
        print(f"| `{name}` | {median:.3f} | {low:.3f} | {high:.3f} | {cpu:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
