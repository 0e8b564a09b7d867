"""Backups of WordPress sites: the database (``mariadb-dump --single-transaction``) and a tar of wp-content, and
their restore. Called by the CLI (``reconciler site-backup`` / ``site-restore``) and the integration tests.

A backup is a directory ``<backup dir>/sites/<site>/<site>-<time>-<4 hex>/`` (mode 0700, written as ``.partial`` and
renamed when both files are complete) with ``database.sql`` (the dump, run inside the site's MariaDB container as
its root over the local socket, so no credential leaves the container) and ``wp-content.tar.gz`` (a helper
container from the FPM image mounts the content volume read-only). Files are 0600.

Scheduled (``RECONCILER_SITE_BACKUP_SCHEDULE``, cron, UTC): every valid wordpress site is backed up, then its
backups beyond the newest ``RECONCILER_SITE_BACKUP_KEEP`` are removed (only directories whose name is one we
generate; each removal logged). A failed backup removes nothing and never stops the other sites'.

Restore (an explicit instruction, logged), with the FPM container stopped meanwhile: the dump is fed to
``mariadb`` in the database container (its tables are dropped and recreated, so a post deleted since comes back),
then wp-content is extracted beside the live one and swapped in (``wp-content.new`` → ``wp-content``; the
previous one is removed only after the swap).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine

from desired_state.site_load import load_sites
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.resources import LABEL_OWNER
from reconciler.core.wordpress import LABEL_SITE, SiteNames, WordpressImages
from reconciler.drivers.docker.driver import DockerDriver
from reconciler.drivers.docker.sites import exec_streaming
from reconciler.runtime.operations.archives import STAMP_FORMAT, create_private, make_private_directory
from reconciler.runtime.operations.common import LABEL_ROLE
from reconciler.runtime.service.scheduler import Scheduler

log = logging.getLogger("reconciler.backups")

DUMP = "database.sql"
CONTENT = "wp-content.tar.gz"
_SWAP = (
    "set -e; rm -rf /data/wp-content.new /data/wp-content.old; mkdir /data/wp-content.new; "
    "tar xzf - -C /data/wp-content.new; "
    "if [ -d /data/wp-content ]; then mv /data/wp-content /data/wp-content.old; fi; "
    "mv /data/wp-content.new/wp-content /data/wp-content; rm -rf /data/wp-content.new /data/wp-content.old"
)


def _write(out: BinaryIO, chunk: bytes) -> None:
    out.write(chunk)


@dataclass(frozen=True)
class SiteBackup:
    site: str
    path: Path
    size: int
    seconds: float


@dataclass
class SiteBackups:
    docker: DockerDriver
    backup_dir: Path
    prefix: str
    owner: str
    images: WordpressImages = field(default_factory=WordpressImages)
    timeout: float = 3600.0

    def _labels(self, site: str, role: str) -> dict[str, str]:
        return {LABEL_OWNER: self.owner, LABEL_SITE: site, LABEL_ROLE: role}

    def _helper(self, names: SiteNames, role: str) -> str:
        return f"{names.base}-{role}-{os.urandom(4).hex()}"

    def directory(self, site: str) -> Path:
        return self.backup_dir / "sites" / site

    def backup(self, site: str) -> SiteBackup:
        began = time.monotonic()
        names = SiteNames(self.prefix, site)
        if self.docker.container(names.container("db")) is None:
            raise PermanentError(f"site {site!r}: no database container {names.container('db')} to back up")
        make_private_directory(self.directory(site))
        stamp = datetime.now(UTC).strftime(STAMP_FORMAT)
        target = self.directory(site) / f"{site}-{stamp}-{os.urandom(2).hex()}"  # two in one second: both kept
        partial = target.with_name(target.name + ".partial")
        partial.mkdir(mode=0o700)
        try:
            with os.fdopen(create_private(partial / DUMP), "wb") as out:
                dump = ["mariadb-dump", "--single-transaction", "--add-drop-table", "--databases", "wordpress"]
                exec_streaming(self.docker, names.container("db"), dump, timeout=self.timeout, stdout=out)
            with os.fdopen(create_private(partial / CONTENT), "wb") as out:
                result = self.docker.run_helper(
                    self.images.fpm,
                    ["tar", "czf", "-", "-C", "/data", "wp-content"],
                    name=self._helper(names, "backup"),
                    volume=names.volume("fpm"),
                    labels=self._labels(site, "site-backup"),
                    timeout=self.timeout,
                    read_only=True,
                    stdout=lambda chunk: _write(out, chunk),
                )
                if not result.ok:
                    raise TransientError(f"site {site!r}: tar of wp-content exited with {result.exit_code}")
            partial.rename(target)
        except BaseException:
            for leftover in partial.glob("*"):
                leftover.unlink(missing_ok=True)
            partial.rmdir()
            raise
        size = sum(f.stat().st_size for f in target.iterdir())
        backup = SiteBackup(site, target, size, time.monotonic() - began)
        log.info("site=%s backup %s (%d bytes, %.1fs)", site, target.name, size, backup.seconds)
        return backup

    def restore(self, site: str, path: Path) -> None:
        names = SiteNames(self.prefix, site)
        dump, content = path / DUMP, path / CONTENT
        if path.parent != self.directory(site) or not dump.is_file() or not content.is_file():
            raise PermanentError(f"site {site!r}: {path.name} is not a backup of this site")
        log.warning("site=%s restore from %s: database and wp-content replaced", site, path.name)
        fpm = self.docker.container(names.container("fpm"))
        if fpm is not None and fpm.running:  # no request sees half a restore; started again below
            self.docker.stop_container(fpm)
        try:
            with dump.open("rb") as source:
                exec_streaming(self.docker, names.container("db"), ["mariadb"], timeout=self.timeout, stdin=source)
            with content.open("rb") as source:
                result = self.docker.run_helper(
                    self.images.fpm,
                    ["sh", "-c", _SWAP],
                    name=self._helper(names, "restore"),
                    volume=names.volume("fpm"),
                    labels=self._labels(site, "site-restore"),
                    timeout=self.timeout,
                    stdin=source,
                )
        finally:
            if fpm is not None:
                self.docker.start_container(fpm)
        if not result.ok:
            raise TransientError(f"site {site!r}: wp-content not restored: {result.output.strip()[-300:]}")
        log.info("site=%s restored from %s", site, path.name)

    def prune(self, site: str, keep: int) -> list[Path]:
        """Remove all but the newest ``keep`` (at least 1) backups of ``site``: only names ``backup`` makes."""
        pattern = re.compile(rf"^{re.escape(site)}-[0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]{{4}}$")
        found = sorted(p for p in self.directory(site).iterdir() if p.is_dir() and pattern.match(p.name))
        doomed = found[: -max(keep, 1)]
        for path in doomed:
            shutil.rmtree(path)
            log.info("site=%s backup %s removed (retention: newest %d kept)", site, path.name, max(keep, 1))
        return doomed

    def backup_sites(self, sites: Iterable[str], keep: int) -> dict[str, str]:
        """Back up each site, then prune it; site → error for those that failed (logged, the others go on)."""
        errors: dict[str, str] = {}
        for site in sorted(sites):
            try:
                self.backup(site)
            except ReconcileError as exc:
                errors[site] = str(exc)
                log.error("site=%s scheduled backup failed: %s", site, exc)
                continue
            self.prune(site, keep)
        return errors


SITE_BACKUP_JOB = "site-backups"


def register_site_backups(scheduler: Scheduler, engine: Engine, backups: SiteBackups, cron: str, keep: int) -> None:
    """The scheduled backup of every valid wordpress site (``reconciler run``)."""

    def run() -> None:
        desired = load_sites(engine)
        backups.backup_sites([n for n, spec in desired.sites.items() if spec.wordpress is not None], keep)

    scheduler.add_cron(SITE_BACKUP_JOB, cron, run)
