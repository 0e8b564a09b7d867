"""The tenant-operation commands of the CLI: ``backup``, ``restore``, ``rollback``, ``backups``, ``operations`` and
``requests``. ``reconciler.cli`` parses the arguments and builds the runtime; this module runs the command on the
runtime's ``TenantOps`` and prints the outcome. Errors are the project's own: they name the tenant and the fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.runtime.wiring import Runtime

COMMANDS = ("backup", "restore", "rollback", "backups", "operations", "requests")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser("backup", help="archive a tenant's data volume now (retention applies after it)")
    backup.add_argument("tenant")
    restore = sub.add_parser("restore", help="restore a tenant's data volume from a backup (checksum checked first)")
    restore.add_argument("tenant")
    restore.add_argument("backup_id", type=int, help="id from `reconciler backups TENANT`")
    rollback = sub.add_parser(
        "rollback", help="go back to the image before the tenant's failed (pinned) or last upgrade"
    )
    rollback.add_argument("tenant")
    rollback.add_argument("--restore", action="store_true", help="also restore the backup taken before the upgrade")
    rollback.add_argument("--service", help="only this service")
    for name, text in (
        ("backups", "list backups (newest last)"),
        ("operations", "history: deploys, upgrades, migrations, backups, restores, rollbacks, data moves"),
    ):
        listing = sub.add_parser(name, help=text)
        listing.add_argument("tenant", nargs="?")
        listing.add_argument("--json", action="store_true")
    sub.add_parser(
        "requests",
        help="carry out pending operation requests now, RECONCILER_OPERATION_CONCURRENCY tenants at a time, and wait "
        "(`reconciler run` polls them)",
    )


def run_command(args: argparse.Namespace, runtime: Runtime) -> int:
    # Imported here: the parser is built for every command, these only for the operation commands.
    from desired_state.backups import list_backups
    from desired_state.identity import backups_of
    from desired_state.operations import list_operations
    from reconciler.core.errors import ReconcileError
    from reconciler.runtime.operations.requests import process_requests

    ops = runtime.operations
    assert ops is not None
    if args.command == "backups":
        # A tenant sees the backups of its uid only, never those of a former tenant of the same name.
        backups = backups_of(runtime.engine, args.tenant) if args.tenant else list_backups(runtime.engine)
        return _print_rows([asdict(b) for b in backups], args.json, _backup_line)
    if args.command == "operations":
        rows = [asdict(o) for o in list_operations(runtime.engine, args.tenant)]
        return _print_rows(rows, args.json, _operation_line)
    runtime.alerts.start()
    try:
        if args.command == "backup":
            record = ops.backup(args.tenant, "manual")
            print(
                f"backup {record.id} of {args.tenant}: {record.file_name}, {record.size_bytes} bytes, "
                f"sha256 {record.sha256}, {record.duration_seconds or 0:.1f}s"
            )
        elif args.command == "restore":
            restored, passed = ops.restore(args.tenant, args.backup_id)
            print(f"restored backup {args.backup_id} ({restored.backup.file_name}) into tenant {args.tenant}")
            if passed is not None and args.tenant in passed.errors:
                print(f"error: restarting {args.tenant}: {passed.errors[args.tenant]}", file=sys.stderr)
                return 1
        elif args.command == "rollback":
            result = ops.rollback(args.tenant, restore=args.restore, service=args.service)
            for target in result.targets:
                print(f"rolled back {args.tenant}/{target.service}: {target.from_image} -> {target.to_image}")
            if result.restored is not None:
                print(f"restored backup {result.restored.backup.id} taken before the upgrade")
        elif args.command == "requests":
            print(f"{process_requests(ops)} request(s) carried out")
        else:
            raise AssertionError(args.command)
    except ReconcileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.alerts.stop()
    return 0


def _print_rows(rows: list[dict[str, object]], as_json: bool, line: Callable[[dict[str, object]], str]) -> int:
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
    else:
        for row in rows:
            print(line(row))
    return 0


def _backup_line(row: dict[str, object]) -> str:
    detail = f"{row['size_bytes']} bytes sha256 {str(row['sha256'])[:16]}" if row["status"] == "succeeded" else ""
    error = f" error: {row['error']}" if row["error"] else ""
    head = f"{row['id']:>5} {row['tenant']:<20} {row['status']:<10} {row['trigger']:<12}"
    return f"{head} {row['started_at']} {detail}{error}"


def _operation_line(row: dict[str, object]) -> str:
    what = f"{row['service'] or ''} {row['from_image'] or ''} -> {row['to_image'] or ''}" if row["to_image"] else ""
    error = f" error: {row['error']}" if row["error"] else ""
    return f"{row['id']:>5} {row['tenant']:<20} {row['kind']:<9} {row['status']:<10} {row['started_at']} {what}{error}"
