"""The WordPress sites' backup commands of the CLI: ``site-backup SITE`` and ``site-restore SITE BACKUP``
(``runtime.operations.site_backups``). Archives go under ``RECONCILER_BACKUP_DIR``/sites/<site>/."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.core.errors import ReconcileError

if TYPE_CHECKING:
    from reconciler.runtime.wiring import Runtime

COMMANDS = ("site-backup", "site-restore")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser("site-backup", help="dump a WordPress site's database and archive its wp-content now")
    backup.add_argument("site")
    restore = sub.add_parser("site-restore", help="restore a WordPress site's database and wp-content from a backup")
    restore.add_argument("site")
    restore.add_argument("backup", help="the backup's directory name, as site-backup printed it")


def run_command(args: argparse.Namespace, runtime: Runtime) -> int:
    from reconciler.runtime.operations.site_backups import SiteBackups  # the docker SDK only when needed

    settings = runtime.settings
    if not settings.backup_dir:
        print("RECONCILER_BACKUP_DIR is not set: no place for site backups")
        return 1
    backups = SiteBackups(runtime.docker, Path(settings.backup_dir), settings.name_prefix, settings.owner_id)
    try:
        if args.command == "site-backup":
            done = backups.backup(args.site)
            print(f"backup of site {args.site}: {done.path.name}, {done.size} bytes, {done.seconds:.1f}s")
        else:
            backups.restore(args.site, backups.directory(args.site) / Path(args.backup).name)
            print(f"restored site {args.site} from {Path(args.backup).name}")
    except ReconcileError as exc:
        print(f"failed: {exc}")
        return 1
    return 0
