"""Backups proven restorable: the newest backup of each tenant is restored into a scratch volume and compared.

Run by the scheduler (``operations.backup_schedule``, cron ``RECONCILER_BACKUP_VERIFY_SCHEDULE``, only while this
instance leads) and by tests. For each tenant's newest succeeded backup:

1. the archive is found (``operations.archives``: confined, generated name only) and its SHA-256 and size are
   compared with the row;
2. a helper container extracts it into a fresh scratch volume (never the tenant's volume) and reports the number
   of regular files and their total bytes;
3. those are compared with the archive's own listing (read with ``tarfile``).

The outcome goes to ``backups.verified_at`` / ``verify_status`` / ``verify_error``. A failed verification alerts
once per backup (when its status turns ``failed``); the scratch volume is always removed.
"""

from __future__ import annotations

import logging
import secrets
import tarfile
from dataclasses import dataclass
from pathlib import Path

from desired_state.backups import BackupRecord, newest_succeeded, record_verification
from reconciler.core.errors import ReconcileError
from reconciler.core.resources import Volume
from reconciler.runtime.operations.archives import ArchiveRefused, archive_path
from reconciler.runtime.operations.backups import BackupService
from reconciler.runtime.operations.common import helper_labels, helper_name
from reconciler.runtime.operations.restore import sha256_of

log = logging.getLogger("reconciler.backups")

# Extract, then count what landed: regular files and their bytes (symbolic links are not followed).
_VERIFY_SCRIPT = r"""
set -e
tar xzf - -C /data
echo "files $(find /data -type f | wc -l)"
echo "bytes $(find /data -type f -exec cat {} + | wc -c)"
"""


class VerificationFailed(ReconcileError):
    """The archive could not be restored, or what it restored differs from what it holds."""


@dataclass(frozen=True)
class Verification:
    backup_id: int
    tenant: str
    ok: bool
    error: str | None
    files: int = 0
    size: int = 0


@dataclass
class BackupVerifier:
    backups: BackupService

    def verify_all(self) -> list[Verification]:
        """Verify each tenant's newest succeeded backup; one tenant's failure never stops the others."""
        return [self.verify(backup) for backup in newest_succeeded(self.backups.engine)]

    def verify(self, backup: BackupRecord) -> Verification:
        with self.backups.tenant_lock(backup.tenant):
            try:
                files, size = self._check(backup)
            except (ReconcileError, OSError, tarfile.TarError, EOFError) as exc:
                return self._failed(backup, str(exc))
        record_verification(self.backups.engine, backup.id, ok=True)
        log.info(
            "tenant=%s backup %d verified: restored %d files, %d bytes into a scratch volume",
            backup.tenant,
            backup.id,
            files,
            size,
            extra={"tenant": backup.tenant},
        )
        return Verification(backup.id, backup.tenant, True, None, files, size)

    def _failed(self, backup: BackupRecord, why: str) -> Verification:
        error = f"backup {backup.id} is not restorable: {why}"
        record_verification(self.backups.engine, backup.id, ok=False, error=error)
        log.error("tenant=%s %s", backup.tenant, error, extra={"tenant": backup.tenant})
        if backup.verify_status != "failed":  # once per backup, not at every scheduled run
            self.backups.alert(backup.tenant, error)
        return Verification(backup.id, backup.tenant, False, error)

    def _check(self, backup: BackupRecord) -> tuple[int, int]:
        config = self.backups.config
        if config.backup_dir is None:
            raise VerificationFailed("no backup directory is configured (RECONCILER_BACKUP_DIR)", tenant=backup.tenant)
        try:
            path = archive_path(config.backup_dir, backup)
        except ArchiveRefused as exc:
            raise VerificationFailed(str(exc), tenant=backup.tenant) from exc
        if not path.is_file():
            raise VerificationFailed(f"the archive {path} is missing", tenant=backup.tenant)
        if path.stat().st_size != backup.size_bytes or sha256_of(path) != backup.sha256:
            raise VerificationFailed(
                f"the archive {path} does not match its checksum or size as recorded (sha256 {backup.sha256})",
                tenant=backup.tenant,
            )
        restored = self._restore_into_scratch(backup.tenant, path)
        expected = listing(path)
        if restored != expected:
            raise VerificationFailed(
                f"restored {restored[0]} files / {restored[1]} bytes, the archive lists {expected[0]} / {expected[1]}",
                tenant=backup.tenant,
            )
        return restored

    def _restore_into_scratch(self, tenant: str, path: Path) -> tuple[int, int]:
        service = self.backups
        docker, naming = service.docker, service.naming
        scratch = f"{naming.prefix}-{tenant}-verify-{secrets.token_hex(4)}"
        labels = helper_labels(naming, tenant, "verify")
        docker.create_volume(Volume(name=scratch, tenant=tenant), labels)
        try:
            with path.open("rb") as archive:
                result = docker.run_helper(
                    service.config.helper_image,
                    ["sh", "-c", _VERIFY_SCRIPT],
                    name=helper_name(naming, tenant, "verify"),
                    volume=scratch,
                    labels=labels,
                    timeout=service.config.backup_timeout,
                    stdin=archive,
                )
        finally:
            docker.remove_volume(scratch, tenant)
        if not result.ok:
            raise VerificationFailed(
                f"restoring into a scratch volume failed (exit {result.exit_code}): {result.output.strip()[-500:]}",
                tenant=tenant,
            )
        counts = dict(
            line.split(" ", 1) for line in result.output.splitlines() if line.startswith(("files ", "bytes "))
        )
        try:
            return int(counts["files"]), int(counts["bytes"])
        except (KeyError, ValueError) as exc:
            raise VerificationFailed(f"unexpected helper output: {result.output[-300:]!r}", tenant=tenant) from exc


def listing(path: Path) -> tuple[int, int]:
    """(regular files, their bytes) as the archive lists them; a hard link is a file with its target's size."""
    sizes: dict[str, int] = {}
    files = size = 0
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if member.isreg():
                sizes[member.name] = member.size
                files, size = files + 1, size + member.size
            elif member.islnk():
                files, size = files + 1, size + sizes.get(member.linkname, 0)
    return files, size
