"""Backups and restores of a tenant's data volume, through short-lived helper containers.

Called by the CLI (``reconciler backup`` / ``restore``), the request processor (``runtime.operations.requests``), the
scheduler (``operations.backup_schedule``) and the upgrade gate (``operations.upgrades``, the pre-upgrade backup).

Backup: a helper container mounts the volume read-only and runs ``tar czf - -C /data .``; the archive is streamed
through the Docker CLI into ``<backup dir>/<tenant>/<tenant>-<time>-<id>.tar.gz`` (written as ``.partial`` and
renamed when complete) while its SHA-256 and size are computed, so nothing assumes where Docker keeps volumes on
the host. The ``backups`` row records status, size, checksum and duration; an ``operations`` row records the
backup in the history. Retention runs right after a backup succeeded, never after a failure.

Restore: the archive's checksum is verified first (a mismatch refuses the restore and touches nothing); then the
tenant is held (a running ``restore`` operation: passes leave the tenant alone), its containers are stopped, the
archive is extracted into a staging directory inside the volume and only then swapped in, and the hold is
released. The caller then runs a pass for the tenant, which starts the containers under their names and routes
them again through the executor's normal start path.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from desired_state.backups import BackupRecord, finish_backup, get_backup, list_backups, mark_pruned, start_backup
from desired_state.operations import finish_operation, record_operation, revert_migrations, start_operation
from desired_state.pins import read_pins
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.retention import BackupEntry, to_prune
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations.common import (
    Alert,
    OperationsConfig,
    OperationsMetrics,
    helper_labels,
    helper_name,
    log_alert,
)
from renderers.containers import Naming

log = logging.getLogger("reconciler.backups")

ARCHIVE_SUFFIX = ".tar.gz"
_READ_CHUNK = 1024 * 1024
# Extract into a staging directory inside the volume, then swap: a failed extraction leaves the data as it was.
# Globs that match nothing stay literal in sh, hence the existence tests.
_RESTORE_SCRIPT = r"""
set -e
stage="/data/$1"
rm -rf "$stage"
mkdir "$stage"
if ! tar xzf - -C "$stage"; then rm -rf "$stage"; echo "restore: the archive could not be extracted" >&2; exit 1; fi
cd /data
for f in * .[!.]* ..?*; do
  { [ -e "$f" ] || [ -L "$f" ]; } || continue
  [ "$f" = "$1" ] && continue
  rm -rf -- "$f"
done
cd "$stage"
for f in * .[!.]* ..?*; do
  { [ -e "$f" ] || [ -L "$f" ]; } || continue
  mv -- "$f" /data/
done
cd /data
rmdir "$stage"
echo "restore: done"
"""


class BackupError(ReconcileError):
    """A backup did not produce a usable archive (recorded, counted and alerted before this is raised)."""


class BackupRefused(BackupError, PermanentError):
    """A backup was not even started: no backup dir, too little free space, no data volume."""


class RestoreRefused(PermanentError):
    """A restore was refused before anything was touched (unknown backup, missing or corrupted archive)."""


@dataclass
class RestoreResult:
    operation_id: int
    backup: BackupRecord
    stopped: list[str]
    output: str


@dataclass
class BackupService:
    engine: Engine
    docker: DockerDriver
    naming: Naming
    config: OperationsConfig
    alert: Alert = log_alert
    metrics: OperationsMetrics | None = None
    # For tests: the free space of the backup dir (shutil.disk_usage otherwise).
    free_space: Callable[[Path], int] = field(default=lambda path: shutil.disk_usage(path).free)
    # One backup or restore per tenant at a time in this process (a scheduled backup next to a requested restore).
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def _tenant_lock(self, tenant: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(tenant, threading.Lock())

    # --- backup ------------------------------------------------------------------------------------------------

    def backup(
        self, tenant: str, trigger: str, *, keep: int | None = None, request_id: int | None = None
    ) -> BackupRecord:
        """Archive the tenant's data volume; with ``keep``, prune older archives once this one succeeded.

        Raises ``BackupRefused`` (nothing started) or ``BackupError`` (started and failed); both are recorded in
        ``backups`` and ``operations``, counted, and alerted.
        """
        with self._tenant_lock(tenant):
            return self._backup(tenant, trigger, keep=keep, request_id=request_id)

    def _backup(self, tenant: str, trigger: str, *, keep: int | None, request_id: int | None) -> BackupRecord:
        directory = self._tenant_dir(tenant)
        volume = self.naming.volume(tenant)
        refusal = self._refusal(tenant, volume)
        if refusal is not None:
            record = start_backup(self.engine, tenant, trigger, None, status="failed")
            finish_backup(self.engine, record.id, status="failed", error=refusal)
            record_operation(
                self.engine,
                tenant,
                "backup",
                "failed",
                trigger=trigger,
                backup_id=record.id,
                request_id=request_id,
                error=refusal,
            )
            self._count(trigger, "refused")
            self.alert(tenant, f"backup refused: {refusal}")
            log.error("tenant=%s backup refused: %s", tenant, refusal, extra={"tenant": tenant})
            raise BackupRefused(f"tenant {tenant!r}: backup refused: {refusal}", tenant=tenant)
        assert directory is not None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        record = start_backup(self.engine, tenant, trigger, None)
        file_name = f"{tenant}/{tenant}-{stamp}-{record.id}{ARCHIVE_SUFFIX}"
        operation_id = start_operation(
            self.engine, tenant, "backup", trigger=trigger, backup_id=record.id, request_id=request_id
        )
        started = time.monotonic()
        try:
            size, digest, output = self._archive(tenant, volume, directory, file_name, record.id)
        except (ReconcileError, OSError) as exc:
            error = f"archiving {volume} failed: {exc}"
            finish_backup(
                self.engine, record.id, status="failed", duration_seconds=time.monotonic() - started, error=error
            )
            finish_operation(self.engine, operation_id, "failed", error=error)
            self._count(trigger, "failed")
            self.alert(tenant, f"backup failed: {error}")
            log.error("tenant=%s backup %d failed: %s", tenant, record.id, error, extra={"tenant": tenant})
            raise BackupError(f"tenant {tenant!r}: backup {record.id} failed: {error}", tenant=tenant) from exc
        duration = time.monotonic() - started
        record = finish_backup(
            self.engine,
            record.id,
            status="succeeded",
            file_name=file_name,
            size_bytes=size,
            sha256=digest,
            duration_seconds=duration,
        )
        finish_operation(self.engine, operation_id, "succeeded", output=output or None)
        self._count(trigger, "succeeded")
        if self.metrics:
            self.metrics.backup_duration.observe(duration)
            self.metrics.backup_size.labels(tenant=tenant).set(size)
            self.metrics.backup_last_success.labels(tenant=tenant).set(time.time())
        log.info(
            "tenant=%s backup %d (%s) written: %s, %d bytes, sha256 %s, %.1fs",
            tenant,
            record.id,
            trigger,
            file_name,
            size,
            digest[:12],
            duration,
            extra={"tenant": tenant},
        )
        if keep is not None:
            self.prune(tenant, keep)
        return record

    def _tenant_dir(self, tenant: str) -> Path | None:
        if self.config.backup_dir is None:
            return None
        return self.config.backup_dir / tenant

    def _refusal(self, tenant: str, volume: str) -> str | None:
        """Why a backup cannot start, or None."""
        if self.config.backup_dir is None:
            return "no backup directory is configured (set RECONCILER_BACKUP_DIR)"
        try:
            self.config.backup_dir.mkdir(parents=True, exist_ok=True)
            free = self.free_space(self.config.backup_dir)
        except OSError as exc:
            return f"backup directory {self.config.backup_dir} is not usable: {exc}"
        if free < self.config.min_free_bytes:
            return (
                f"only {free // (1024 * 1024)} MiB free in {self.config.backup_dir}, below the threshold of "
                f"{self.config.min_free_bytes // (1024 * 1024)} MiB (RECONCILER_BACKUP_MIN_FREE_MIB); "
                "free some space or prune old backups"
            )
        if not any(v.name == volume for v in self.docker.observe(tenant).volumes):
            return f"the tenant has no data volume {volume} owned by {self.naming.owner!r}"
        return None

    def _archive(
        self, tenant: str, volume: str, directory: Path, file_name: str, backup_id: int
    ) -> tuple[int, str, str]:
        assert self.config.backup_dir is not None
        directory.mkdir(parents=True, exist_ok=True)
        target = self.config.backup_dir / file_name
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        try:
            with partial.open("wb") as out:

                def write(chunk: bytes) -> None:
                    nonlocal size
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)

                result = self.docker.run_helper(
                    self.config.helper_image,
                    ["tar", "czf", "-", "-C", "/data", "."],
                    name=helper_name(self.naming, tenant, "backup"),
                    volume=volume,
                    labels=helper_labels(self.naming, tenant, "backup"),
                    timeout=self.config.backup_timeout,
                    read_only=True,
                    stdout=write,
                )
                if not result.ok:
                    raise TransientError(f"tar exited with {result.exit_code}: {result.output.strip()}", tenant=tenant)
                out.flush()
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return size, digest.hexdigest(), result.output.strip()

    def _count(self, trigger: str, result: str) -> None:
        if self.metrics:
            self.metrics.backups.labels(trigger=trigger, result=result).inc()

    # --- retention ---------------------------------------------------------------------------------------------

    def prune(self, tenant: str, keep: int) -> list[int]:
        """Delete the archives beyond the ``keep`` newest succeeded ones (pinned pre-upgrade backups are kept)."""
        backups = list_backups(self.engine, tenant, statuses=("succeeded",))
        protected = frozenset(p.backup_id for p in read_pins(self.engine, tenant) if p.backup_id is not None)
        doomed = to_prune([BackupEntry(b.id, b.status, b.finished_at) for b in backups], keep, protected)
        by_id = {b.id: b for b in backups}
        for backup_id in doomed:
            path = self.archive_path(by_id[backup_id])
            if path is not None:
                path.unlink(missing_ok=True)
            log.info(
                "tenant=%s backup %d pruned (retention keeps %d)", tenant, backup_id, keep, extra={"tenant": tenant}
            )
        mark_pruned(self.engine, doomed)
        return doomed

    def archive_path(self, backup: BackupRecord) -> Path | None:
        if self.config.backup_dir is None or not backup.file_name:
            return None
        return self.config.backup_dir / backup.file_name

    # --- restore -----------------------------------------------------------------------------------------------

    def verify(self, tenant: str, backup_id: int) -> tuple[BackupRecord, Path]:
        """The backup row and its archive, after checking that the archive's SHA-256 is the recorded one."""
        backup = get_backup(self.engine, backup_id)
        if backup is None:
            raise RestoreRefused(f"backup {backup_id} does not exist", tenant=tenant)
        if backup.tenant != tenant:
            raise RestoreRefused(
                f"backup {backup_id} belongs to tenant {backup.tenant!r}, not {tenant!r}; restoring another "
                "tenant's data is not supported",
                tenant=tenant,
            )
        if backup.status != "succeeded" or not backup.sha256:
            raise RestoreRefused(
                f"backup {backup_id} is {backup.status}, only succeeded backups can be restored", tenant=tenant
            )
        path = self.archive_path(backup)
        if path is None or not path.is_file():
            raise RestoreRefused(f"archive of backup {backup_id} is missing: {path}", tenant=tenant)
        digest = hashlib.sha256()
        with path.open("rb") as archive:
            for chunk in iter(lambda: archive.read(_READ_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != backup.sha256:
            raise RestoreRefused(
                f"archive {path} is corrupted: its sha256 is {digest.hexdigest()}, the backup recorded "
                f"{backup.sha256}; nothing was restored",
                tenant=tenant,
            )
        return backup, path

    def restore(
        self,
        tenant: str,
        backup_id: int,
        *,
        trigger: str = "manual",
        request_id: int | None = None,
        before_release: Callable[[], None] | None = None,
    ) -> RestoreResult:
        """Verify, hold the tenant, stop its containers, restore the volume, release the hold.

        ``before_release`` runs after a successful restore while the tenant is still held (a rollback changes the
        desired image there, so no pass starts the new version on the restored data in between).
        The caller runs a pass for the tenant afterwards (the containers are started by the executor). Raises
        ``RestoreRefused`` before touching anything, or ``ReconcileError`` when the restore itself failed (the
        volume keeps its previous content whenever the archive could not be extracted).
        """
        with self._tenant_lock(tenant):
            return self._restore(
                tenant, backup_id, trigger=trigger, request_id=request_id, before_release=before_release
            )

    def _restore(
        self,
        tenant: str,
        backup_id: int,
        *,
        trigger: str,
        request_id: int | None,
        before_release: Callable[[], None] | None,
    ) -> RestoreResult:
        try:
            backup, path = self.verify(tenant, backup_id)
        except RestoreRefused as exc:
            record_operation(
                self.engine,
                tenant,
                "restore",
                "failed",
                trigger=trigger,
                backup_id=backup_id,
                request_id=request_id,
                error=str(exc),
            )
            if self.metrics:
                self.metrics.restores.labels(result="refused").inc()
            self.alert(tenant, f"restore of backup {backup_id} refused: {exc}")
            log.error("tenant=%s restore refused: %s", tenant, exc, extra={"tenant": tenant})
            raise
        # The running operation is the hold: from here on passes leave this tenant alone.
        operation_id = start_operation(
            self.engine, tenant, "restore", trigger=trigger, backup_id=backup_id, request_id=request_id
        )
        stopped: list[str] = []
        try:
            snapshot = self.docker.observe(tenant)
            volume = self.naming.volume(tenant)
            if not any(v.name == volume for v in snapshot.volumes):
                raise PermanentError(f"tenant {tenant!r} has no data volume {volume} to restore into", tenant=tenant)
            for container in snapshot.containers:
                if container.running:
                    self.docker.stop_container(container)
                    stopped.append(container.name)
                    log.info("tenant=%s stopped %s for the restore", tenant, container.name, extra={"tenant": tenant})
            with path.open("rb") as archive:
                result = self.docker.run_helper(
                    self.config.helper_image,
                    ["sh", "-c", _RESTORE_SCRIPT, "restore", f".restore-{operation_id}"],
                    name=helper_name(self.naming, tenant, "restore"),
                    volume=volume,
                    labels=helper_labels(self.naming, tenant, "restore"),
                    timeout=self.config.backup_timeout,
                    stdin=archive,
                )
            if not result.ok:
                raise TransientError(
                    f"restore helper exited with {result.exit_code}: {result.output.strip()}", tenant=tenant
                )
            if before_release is not None:
                before_release()
        except ReconcileError as exc:
            finish_operation(self.engine, operation_id, "failed", error=str(exc))
            if self.metrics:
                self.metrics.restores.labels(result="failed").inc()
            self.alert(tenant, f"restore of backup {backup_id} failed: {exc}")
            log.error("tenant=%s restore of backup %d failed: %s", tenant, backup_id, exc, extra={"tenant": tenant})
            raise
        reverted = revert_migrations(self.engine, tenant, backup.started_at or backup.created_at or datetime.now(UTC))
        output = result.output.strip()
        if reverted:
            output += f"\n{reverted} migration(s) recorded after this backup are undone and will run again"
        finish_operation(self.engine, operation_id, "succeeded", output=output)
        if self.metrics:
            self.metrics.restores.labels(result="succeeded").inc()
        log.info(
            "tenant=%s restored backup %d (%s); %d container(s) to start again",
            tenant,
            backup_id,
            backup.file_name,
            len(stopped),
            extra={"tenant": tenant},
        )
        return RestoreResult(operation_id=operation_id, backup=backup, stopped=stopped, output=output)
