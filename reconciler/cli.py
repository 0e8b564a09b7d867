"""Command line: argument parsing and wiring only. Every command builds its settings in ``main``.

A one-shot command is a whole process, so what it imports is part of its latency: this module imports only the
standard library at start, and each command imports what it needs (settings and pydantic after the arguments are
parsed, storage and drivers in the command). ``tests/unit/test_cli_imports.py`` keeps it so.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import __version__
from reconciler.api import commands as api_commands
from reconciler.runtime.checks import commands as check_commands
from reconciler.runtime.operations import commands as ops_commands
from reconciler.runtime.operations import site_commands

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from reconciler.runtime.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
# Commands that change the world take the leader lock for their duration (one writer: ``service.leader``).
WRITER_COMMANDS = frozenset(
    {
        "apply",
        "backup",
        "restore",
        "rollback",
        "requests",
        "tenants purge",
        "tenants adopt",
        "tenants recreate-volume",
        "tenants move-data",
    }
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler", description="Converge tenants' containers, routes and DNS.")
    parser.add_argument("--version", action="version", version=f"tenant-reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply Alembic migrations up to the latest")
    db.add_parser("current", help="print the current schema revision")

    tenants = sub.add_parser("tenants", help="desired state as YAML; tenants' data").add_subparsers(
        dest="tenants_command", required=True
    )
    imp = tenants.add_parser("import", help="upsert catalog and tenants from a YAML file (all or nothing)")
    imp.add_argument("file", help="YAML file, or - for standard input")
    tenants.add_parser("export", help="print catalog and tenants as YAML")
    purge = tenants.add_parser("purge", help="delete a tenant's data volume (refused while containers exist)")
    purge.add_argument("name")
    purge.add_argument("--yes", action="store_true", help="confirm that the tenant's data is to be deleted")
    adopt = tenants.add_parser(
        "adopt", help="give a tenant that reuses a name the data volume and backups of the former tenant of that name"
    )
    adopt.add_argument("name")
    adopt.add_argument("--yes", action="store_true", help="confirm that this tenant is to get the former one's data")
    recreate = tenants.add_parser(
        "recreate-volume", help="let a tenant whose data volume was lost start on an empty one"
    )
    recreate.add_argument("name")
    recreate.add_argument("--yes", action="store_true", help="confirm that the tenant starts without its data")
    move = tenants.add_parser("move-data", help="move a tenant's data volume to another Swarm node (docs/swarm.md)")
    move.add_argument("name")
    move.add_argument("--to", required=True, metavar="NODE", help="the node's hostname (`docker node ls`)")
    move.add_argument("--yes", action="store_true", help="confirm: the tenant's stateful services stop meanwhile")

    for name, text in (("plan", "print the pending changes"), ("apply", "run exactly one pass")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--tenant", action="append", help="limit to this tenant (repeatable)")
        cmd.add_argument("--allow-mass-delete", action="store_true", help="let this pass remove many tenants")
        if name == "plan":
            cmd.add_argument("--json", action="store_true", help="machine-readable output")
            cmd.add_argument(
                "--show-values",
                action="store_true",
                help="with --json: include env values (secrets); without it env shows keys and a digest only",
            )
    run = sub.add_parser("run", help="reconcile continuously (resync, Docker events, nudges)")
    run.add_argument("--allow-mass-delete", action="store_true")
    nudge = sub.add_parser("nudge", help="ask the running reconciler to reconcile a tenant now (via RabbitMQ)")
    target = nudge.add_mutually_exclusive_group(required=True)
    target.add_argument("tenant", nargs="?", help="tenant name")
    target.add_argument("--all", action="store_true", help="every tenant")
    nudge.add_argument("--reason", default="", help="why (shown in the reconciler's log)")
    nudge.add_argument("--requested-by", default="", help="who asks (shown in the reconciler's log)")
    status = sub.add_parser("status", help="each tenant's phase, conditions and last error")
    status.add_argument("--json", action="store_true")
    ops_commands.add_parsers(sub)
    check_commands.add_parser(sub)
    site_commands.add_parsers(sub)
    api_commands.add_parsers(sub)
    _add_render_parser(sub)
    return parser


def _add_render_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = sub.add_parser("render", help="write desired state in other formats").add_subparsers(
        dest="render_command", required=True
    )
    compose = render.add_parser("compose", help="each tenant as a Compose file (docker compose / docker stack)")
    compose.add_argument("tenant", nargs="*", help="limit to these tenants (default: every tenant)")
    compose.add_argument("--out", type=Path, help="write DIR/<tenant>.compose.yaml instead of standard output")
    compose.add_argument("--redact", action="store_true", help="replace the tenants' own env values (secrets)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from pydantic import ValidationError

    from reconciler.runtime.settings import Settings
    from reconciler.runtime.telemetry.logs import configure_logging

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return EXIT_ERROR
    configure_logging(settings.log_level, json_logs=settings.log_json)
    try:
        return _dispatch(args, settings)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as exc:  # the CLI reports, the traceback goes to the debug log
        logging.getLogger("reconciler").debug("command failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _command(args: argparse.Namespace) -> str:
    return f"tenants {args.tenants_command}" if args.command == "tenants" else str(args.command)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = _command(args)
    if command not in WRITER_COMMANDS:
        return _run_command(args, settings)
    from desired_state.database import make_engine
    from reconciler.runtime.operations.recovery import recover_abandoned
    from reconciler.runtime.service.leader import AnotherInstance, holder_label, writer_lock

    try:
        with writer_lock(settings.database_url, settings.owner_id, command):
            engine = make_engine(settings.database_url)
            try:
                recover_abandoned(engine, holder_label(command))
            finally:
                engine.dispose()
            return _run_command(args, settings)
    except AnotherInstance as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _run_command(args: argparse.Namespace, settings: Settings) -> int:
    from desired_state.database import current_revision, make_engine, upgrade

    if args.command == "db":
        if args.db_command == "upgrade":
            upgrade(settings.database_url)
            print(f"database at revision {current_revision(settings.database_url)}")
        else:
            print(current_revision(settings.database_url) or "(empty)")
        return EXIT_OK
    if args.command == "tenants" and args.tenants_command == "move-data":
        from reconciler.runtime.operations.data_move import run_move_command
        from reconciler.runtime.wiring import build_runtime

        return run_move_command(args.name, args.to, args.yes, build_runtime(settings, schedule=False))
    if args.command == "tenants":
        return _tenants(args, settings, make_engine(settings.database_url))
    if args.command == "status":
        return _status(args, make_engine(settings.database_url))
    if args.command == "nudge":
        return _nudge(args, settings)
    if args.command in api_commands.COMMANDS:
        return api_commands.run_command(args, settings)
    if args.command == "render":
        from reconciler.runtime import render_compose

        return render_compose.run(settings, args.tenant or None, args.out, redact=args.redact)

    from reconciler.core.render_plan import render_json, render_text
    from reconciler.drivers.swarm import SwarmDriver
    from reconciler.runtime.passes.sites_step import SitesStep
    from reconciler.runtime.wiring import build_runtime

    # Only ``run`` starts the scheduler: the one-shot commands register no job (and never import APScheduler).
    runtime = build_runtime(settings, schedule=args.command == "run")
    if args.command in ops_commands.COMMANDS:
        return ops_commands.run_command(args, runtime)
    if args.command in site_commands.COMMANDS:
        return site_commands.run_command(args, runtime)
    if args.command == check_commands.COMMAND:
        return check_commands.run_command(args, runtime)
    if args.command == "plan":
        inputs = runtime.reconciler.compute(args.tenant, allow_mass_delete=args.allow_mass_delete)
        sites = runtime.reconciler.sites
        if isinstance(sites, SitesStep) and args.tenant is None:  # sites are planned by full passes only
            site_plan = sites.compute(allow_mass_delete=args.allow_mass_delete).shown
            inputs = replace(inputs, plan=inputs.plan.merged(site_plan))
        print(render_json(inputs.plan, show_values=args.show_values) if args.json else render_text(inputs.plan))
        for spec_error in inputs.desired.errors.values():
            print(f"Invalid: {spec_error}", file=sys.stderr)
        if isinstance(engine := runtime.reconciler.docker, SwarmDriver):  # what Swarm services cannot be given
            for gap in engine.hardening_gaps(runtime.reconciler.container_defaults):
                print(f"Note: {gap}", file=sys.stderr)
        if inputs.plan.errors:
            return EXIT_ERROR
        return EXIT_CHANGES if inputs.plan.changes else EXIT_OK
    if args.command == "apply":
        result = runtime.reconciler.run_pass(args.tenant, allow_mass_delete=args.allow_mass_delete, trigger="cli")
        site_run = runtime.reconciler.sites.last
        site_changes = site_run.every_applied if site_run is not None else []
        for change in [*result.applied, *site_changes]:
            print(f"{change.action.value:>3} {change.kind} {change.name}  # {change.reason}")
        for site, message in sorted(site_run.errors.items() if site_run is not None else []):
            print(f"failed: site {site}: {message}", file=sys.stderr)
        for tenant, message in sorted(result.errors.items()):
            print(f"failed: {tenant}: {message}", file=sys.stderr)
        site_refusals = site_run.planned.plan.errors if site_run is not None else ()
        for message in (*result.plan.errors, *site_refusals):
            print(f"refused: {message}", file=sys.stderr)
        applied = len(result.applied) + len(site_changes)
        print(f"Applied {applied} changes in {result.duration:.2f}s; {len(result.errors)} tenants failed.")
        sites_ok = site_run is None or not (site_run.errors or site_refusals)
        return EXIT_OK if result.ok and sites_ok else EXIT_ERROR
    if args.command == "run":
        from reconciler.runtime.service.run import run_service

        return run_service(runtime, allow_mass_delete=args.allow_mass_delete or settings.allow_mass_delete)
    raise AssertionError(args.command)


def _tenants(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from desired_state.yaml_io import YamlImportError, export_yaml, import_yaml

    if args.tenants_command == "import":
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        try:
            summary = import_yaml(engine, text)
        except YamlImportError as exc:
            print(f"error: {args.file}: {exc}\nnothing was written", file=sys.stderr)
            return EXIT_ERROR
        print(f"imported {args.file}: {summary}")
        return EXIT_OK
    if args.tenants_command == "export":
        print(export_yaml(engine), end="")
        return EXIT_OK
    from reconciler.runtime.operations.identity import adopt_tenant, recreate_volume
    from reconciler.runtime.operations.purge import purge_tenant

    if args.tenants_command == "adopt":
        return adopt_tenant(settings, args.name, confirmed=args.yes)
    if args.tenants_command == "recreate-volume":
        return recreate_volume(settings, args.name, confirmed=args.yes)
    return purge_tenant(settings, args.name, confirmed=args.yes)


def _nudge(args: argparse.Namespace, settings: Settings) -> int:
    from reconciler.runtime.service.nudges import Nudge, Topology, nudge_publisher, where

    if not settings.rabbitmq_url:
        print("error: RECONCILER_RABBITMQ_URL is not set; nudges go through RabbitMQ", file=sys.stderr)
        return EXIT_ERROR
    nudge = Nudge(tenant=None if args.all else args.tenant, reason=args.reason, requested_by=args.requested_by)
    topology = Topology(settings.rabbitmq_exchange, settings.rabbitmq_queue)
    try:
        with nudge_publisher(settings.rabbitmq_url, topology) as publisher:
            publisher.publish(nudge)
    except Exception as exc:  # pika's errors name the cause; the URL (with its password) stays out
        print(
            f"error: nudge not sent to RabbitMQ at {where(settings.rabbitmq_url)}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    print(f"nudged {nudge.describe()} via exchange {topology.exchange!r}")
    return EXIT_OK


def _status(args: argparse.Namespace, engine: Engine) -> int:
    import json
    from dataclasses import asdict

    from desired_state.check_results import StoredCheck, latest_results
    from desired_state.status import read_statuses

    statuses = read_statuses(engine)
    checks: dict[str, list[StoredCheck]] = {}
    for stored in latest_results(engine):
        checks.setdefault(stored.result.tenant, []).append(stored)
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], default=str, indent=2))
        return EXIT_OK
    if not statuses:
        print("no tenant status yet (run `reconciler apply` or `reconciler run`)")
    for status in statuses:
        when = status.last_reconciled_at.isoformat(timespec="seconds") if status.last_reconciled_at else "-"
        print(f"{status.tenant:<24} {status.phase:<12} gen={status.observed_generation} at={when}")
        for condition in status.conditions:
            detail = f": {condition.message}" if condition.message else ""
            print(f"    {condition.type}={condition.status} ({condition.reason}){detail}")
        if status.last_error:
            print(f"    last error: {status.last_error}")
        for stored in checks.get(status.tenant, []):
            r = stored.result
            figures = f"{r.outcome} on {r.image} ({r.trigger}, {r.latency * 1000:.0f} ms)"
            print(f"    check {r.service}/{r.check}: {figures}: {r.detail}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
