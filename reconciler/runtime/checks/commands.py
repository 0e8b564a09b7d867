"""``reconciler checks [TENANT] [--run] [--history N] [--json]``: the latest verdict of every check, and runs them now.

``reconciler.cli`` parses the arguments and builds the runtime; this module reads ``tenant_checks``
(``desired_state.check_results``) and prints one line per check, newest history first with ``--history``. ``--run``
runs the tenants' checks first (trigger ``manual``), through Traefik as after a rollout; it needs
``RECONCILER_CHECK_URL``. Exit code 1 when a listed check's latest run failed, so scripts can use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desired_state.check_results import StoredCheck
    from reconciler.runtime.wiring import Runtime

COMMAND = "checks"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    checks = sub.add_parser("checks", help="the latest result of each check (smoke test); --run runs them now")
    checks.add_argument("tenant", nargs="?")
    checks.add_argument("--run", action="store_true", help="run the checks now (trigger manual) before listing")
    checks.add_argument("--history", type=int, default=0, metavar="N", help="also the N newest results")
    checks.add_argument("--json", action="store_true")


def line(stored: StoredCheck) -> str:
    r = stored.result
    when = stored.checked_at.isoformat(timespec="seconds")
    return (
        f"{r.tenant:<20} {r.service:<8} {r.check:<16} {r.outcome:<7} {r.latency * 1000:>8.1f} ms  {r.image:<28} "
        f"{r.trigger:<9} {when}  {r.detail}"
    )


def as_dict(stored: StoredCheck) -> dict[str, object]:
    r = stored.result
    return {
        "id": stored.id,
        "tenant": r.tenant,
        "service": r.service,
        "check": r.check,
        "image": r.image,
        "outcome": r.outcome,
        "latency_seconds": r.latency,
        "detail": r.detail,
        "trigger": r.trigger,
        "checked_at": stored.checked_at.isoformat(),
    }


def run_command(args: argparse.Namespace, runtime: Runtime) -> int:
    # Imported here: the parser is built for every command, the table only for this one.
    from desired_state.check_results import latest_results, recent_results

    if args.run:
        if runtime.checks is None:
            print("error: checks need RECONCILER_CHECK_URL (Traefik's web entrypoint) and routing", file=sys.stderr)
            return 1
        runtime.alerts.start()
        try:
            runtime.checks.run([args.tenant] if args.tenant else None, trigger="manual")
        finally:
            runtime.alerts.stop()
    latest = latest_results(runtime.engine, args.tenant)
    history = recent_results(runtime.engine, args.tenant, args.history) if args.history > 0 else []
    if args.json:
        print(json.dumps({"latest": [as_dict(s) for s in latest], "history": [as_dict(s) for s in history]}, indent=2))
    else:
        if not latest:
            print("no check has run yet" + (f" for {args.tenant}" if args.tenant else ""))
        for stored in latest:
            print(line(stored))
        if history:
            print(f"-- {len(history)} newest results")
            for stored in history:
                print(line(stored))
    return 1 if any(s.result.failed for s in latest) else 0
