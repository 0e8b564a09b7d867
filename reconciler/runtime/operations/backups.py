"""Backups of a tenant's data volume through short-lived helper containers, retention, and the restore entry point.

Called by the CLI (``reconciler backup`` / ``restore``), the request processor (``runtime.operations.requests``), the
scheduler (``operations.backup_schedule``) and the upgrade gate (``operations.upgrades``, the pre-upgrade backup).

Backup: a helper container mounts the volume read-only and runs ``tar czf - -C /data .``; the archive is streamed
through the Docker CLI into ``<backup dir>/<tenant>/<tenant>-<time>-<id>.tar.gz`` (``operations.archives``: mode
0600, written as ``.partial`` and renamed when complete) while its SHA-256 and size are computed, so nothing
assumes where Docker keeps volumes on the host. The ``backups`` row records status, size, checksum and duration;
an ``operations`` row records the backup in the history. A backup carries the tenant's uid; a volume that holds
another uid's data (a former tenant of the same name, ``operations.identity``) is never archived for this one.
Retention runs right after a backup succeeded, never after a failure, and deletes only archives whose name is one
we generate, inside the tenant's directory.

Restore: ``operations.restore`` (checksum first, then hold, stop, extract into staging, swap, release).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from desired_state.backups import BackupRecord, finish_backup, list_backups, mark_pruned, start_backup
from desired_state.identity import ensure_uid, lookup
from desired_state.operations import finish_operation, record_operation, start_operation
from desired_state.pins import read_pins
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.retention import BackupEntry, to_prune
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations import restore as restoring
from reconciler.runtime.operations.archives import (
    STAMP_FORMAT,
    ArchiveRefused,
    archive_name,
    archive_path,
    create_private,
    make_private_directory,
    tenant_directory,
)
from reconciler.runtime.operations.common import (
    Alert,
    OperationsConfig,
    OperationsMetrics,
    helper_labels,
    helper_name,
    log_alert,
)
from reconciler.runtime.operations.identity import foreign_data
from reconciler.runtime.operations.restore import RestoreRefused, RestoreResult
from renderers.containers import Naming

log = logging.getLogger("reconciler.backups")


class BackupError(ReconcileError):
    """A backup did not produce a usable archive (recorded, counted and alerted before this is raised)."""


class BackupRefused(BackupError, PermanentError):
    """A backup was not even started: no backup dir, too little free space, no data volume."""


__all__ = ["BackupError", "BackupRefused", "BackupService", "RestoreRefused", "RestoreResult"]


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
    # Backup rows whose file name was refused (alerted once each).
    _refused: set[int] = field(default_factory=set)

    def tenant_lock(self, tenant: str) -> threading.Lock:
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
        with self.tenant_lock(tenant):
            return self._backup(tenant, trigger, keep=keep, request_id=request_id)

    def _backup(self, tenant: str, trigger: str, *, keep: int | None, request_id: int | None) -> BackupRecord:
        volume = self.naming.volume(tenant)
        uid = ensure_uid(self.engine, tenant).uid
        refusal = self._refusal(tenant, volume) or foreign_data(self.engine, self.docker, self.naming, tenant, uid)
        if refusal is not None:
            record = start_backup(self.engine, tenant, trigger, None, status="failed", tenant_uid=uid)
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
        stamp = datetime.now(UTC).strftime(STAMP_FORMAT)
        record = start_backup(self.engine, tenant, trigger, None, tenant_uid=uid)
        file_name = archive_name(tenant, stamp, record.id)
        operation_id = start_operation(
            self.engine, tenant, "backup", trigger=trigger, backup_id=record.id, request_id=request_id
        )
        started = time.monotonic()
        try:
            size, digest, output = self._archive(tenant, volume, file_name)
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

    def _refusal(self, tenant: str, volume: str) -> str | None:
        """Why a backup cannot start, or None."""
        if self.config.backup_dir is None:
            return "no backup directory is configured (set RECONCILER_BACKUP_DIR)"
        try:
            tenant_directory(self.config.backup_dir, tenant)
        except ArchiveRefused as exc:
            return str(exc)
        try:
            make_private_directory(self.config.backup_dir)
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

    def _archive(self, tenant: str, volume: str, file_name: str) -> tuple[int, str, str]:
        assert self.config.backup_dir is not None
        directory = tenant_directory(self.config.backup_dir, tenant)
        make_private_directory(directory)
        target = directory / Path(file_name).name
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        descriptor = create_private(partial)
        try:
            with os.fdopen(descriptor, "wb") as out:

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
                os.fsync(out.fileno())
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return size, digest.hexdigest(), result.output.strip()

    def _count(self, trigger: str, result: str) -> None:
        if self.metrics:
            self.metrics.backups.labels(trigger=trigger, result=result).inc()

    # --- retention ---------------------------------------------------------------------------------------------

    def prune(self, tenant: str, keep: int) -> list[int]:
        """Delete the archives beyond the ``keep`` newest succeeded ones (pinned pre-upgrade backups are kept).

        A row whose file name is not one we generate (or leaves the tenant's directory) is never deleted: it is
        reported (alerted once per row) and stays as it is. Returns the ids of the archives deleted.
        """
        if self.config.backup_dir is None:
            return []
        # Only this tenant's own backups count (a former tenant of the same name keeps its own).
        backups = list_backups(self.engine, tenant, statuses=("succeeded",), tenant_uid=lookup(self.engine, tenant).uid)
        protected = frozenset(p.backup_id for p in read_pins(self.engine, tenant) if p.backup_id is not None)
        doomed = to_prune([BackupEntry(b.id, b.status, b.finished_at) for b in backups], keep, protected)
        by_id = {b.id: b for b in backups}
        pruned: list[int] = []
        for backup_id in doomed:
            try:
                path = archive_path(self.config.backup_dir, by_id[backup_id])
            except ArchiveRefused as exc:
                self._report_refused(tenant, backup_id, f"retention left backup {backup_id} alone: {exc}")
                continue
            path.unlink(missing_ok=True)
            pruned.append(backup_id)
            log.info(
                "tenant=%s backup %d pruned (retention keeps %d)", tenant, backup_id, keep, extra={"tenant": tenant}
            )
        mark_pruned(self.engine, pruned)
        return pruned

    def _report_refused(self, tenant: str, backup_id: int, message: str) -> None:
        log.error("tenant=%s %s", tenant, message, extra={"tenant": tenant})
        with self._locks_guard:
            first = backup_id not in self._refused
            self._refused.add(backup_id)
        if first:
            self.alert(tenant, message)

    # --- restore -----------------------------------------------------------------------------------------------

    def verify(self, tenant: str, backup_id: int) -> tuple[BackupRecord, Path]:
        """The backup row and its confined archive, after checking its SHA-256 (``RestoreRefused`` otherwise)."""
        return restoring.checked_archive(self, tenant, backup_id)

    def restore(
        self,
        tenant: str,
        backup_id: int,
        *,
        trigger: str = "manual",
        request_id: int | None = None,
        before_release: Callable[[], None] | None = None,
        on_hold: Callable[[], bool] | None = None,
    ) -> RestoreResult:
        """Verify, hold the tenant, stop its containers, restore the volume, release the hold.

        ``on_hold`` runs once the tenant is held, before its containers stop (the maintenance answer goes up); it
        returns True when it stopped the volume's users itself (a swarm's services scaled to 0), and then no
        container is stopped here.

        ``before_release`` runs after a successful restore while the tenant is still held (a rollback changes the
        desired image there, so no pass starts the new version on the restored data in between).
        The caller runs a pass for the tenant afterwards (the containers are started by the executor). Raises
        ``RestoreRefused`` before touching anything, or ``ReconcileError`` when the restore itself failed (the
        volume keeps its previous content whenever the archive could not be extracted).
        """
        with self.tenant_lock(tenant):
            return restoring.restore(
                self,
                tenant,
                backup_id,
                trigger=trigger,
                request_id=request_id,
                before_release=before_release,
                on_hold=on_hold,
            )
