"""Backups of WordPress sites: the database (``mariadb-dump --single-transaction``) and a tar of wp-content, and
their restore. Called by the CLI (``reconciler site-backup`` / ``site-restore``) and the integration tests.

A backup is a directory ``<backup dir>/sites/<site>/<site>-<time>/`` (mode 0700, written as ``.partial`` and
renamed when both files are complete) with ``database.sql`` (the dump, run inside the site's MariaDB container as
its root over the local socket, so no credential leaves the container) and ``wp-content.tar.gz`` (a helper
container from the FPM image mounts the content volume read-only). Files are 0600.

Restore (an explicit instruction, logged): the dump is fed to ``mariadb`` in the database container (its tables
are dropped and recreated, so a post deleted since comes back), then wp-content is extracted beside the live one
and swapped in (``wp-content.new`` → ``wp-content``; the previous one is removed only after the swap).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from reconciler.core.errors import PermanentError, TransientError
from reconciler.core.resources import LABEL_OWNER
from reconciler.core.wordpress import LABEL_SITE, SiteNames, WordpressImages
from reconciler.drivers.docker.driver import DockerDriver
from reconciler.drivers.docker.sites import exec_streaming
from reconciler.runtime.operations.archives import STAMP_FORMAT, create_private, make_private_directory
from reconciler.runtime.operations.common import LABEL_ROLE

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
        target = self.directory(site) / f"{site}-{stamp}"
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
        if not result.ok:
            raise TransientError(f"site {site!r}: wp-content not restored: {result.output.strip()[-300:]}")
        log.info("site=%s restored from %s", site, path.name)
