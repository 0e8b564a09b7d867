"""Restoring a tenant's data volume from a backup archive (``BackupService.restore`` runs it).

The archive is first found (``operations.archives``: its name must be one we generate, confined to the tenant's
backup directory) and its SHA-256 checked against the row; a backup of another tenant uid (a former tenant of the
same name), or a volume holding another uid's data, is refused; a refusal touches nothing. Then the tenant is held (a
running ``restore`` operation: passes leave the tenant alone), its containers are stopped, the archive is
extracted by a helper container into a staging directory inside the volume and only then swapped in, and the
hold is released. The caller then runs a pass for the tenant, which starts the containers again. While the
tenant is held its routes can answer 503 with ``Retry-After`` (``on_hold``: ``operations.maintenance``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from desired_state.backups import BackupRecord, get_backup
from desired_state.identity import ensure_uid
from desired_state.operations import finish_operation, record_operation, revert_migrations, start_operation
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.runtime.operations.archives import ArchiveRefused, archive_path
from reconciler.runtime.operations.common import helper_labels, helper_name
from reconciler.runtime.operations.identity import foreign_data

if TYPE_CHECKING:
    from reconciler.runtime.operations.backups import BackupService

log = logging.getLogger("reconciler.backups")

READ_CHUNK = 1024 * 1024
# The staging directory's name inside the volume: generated from the operation id, never taken from input.
_STAGE_RE = re.compile(r"^\.restore-[1-9][0-9]*$")
# Extract into a staging directory inside the volume, then swap: a failed extraction leaves the data as it was.
# Globs that match nothing stay literal in sh, hence the existence tests.
RESTORE_SCRIPT = r"""
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


class RestoreRefused(PermanentError):
    """A restore was refused before anything was touched (unknown backup, missing or corrupted archive)."""


@dataclass
class RestoreResult:
    operation_id: int
    backup: BackupRecord
    stopped: list[str]
    output: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive:
        for chunk in iter(lambda: archive.read(READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checked_archive(service: BackupService, tenant: str, backup_id: int) -> tuple[BackupRecord, Path]:
    """The backup row and its archive, after checking that the archive's SHA-256 is the recorded one."""
    backup = get_backup(service.engine, backup_id)
    if backup is None:
        raise RestoreRefused(f"backup {backup_id} does not exist", tenant=tenant)
    if backup.tenant != tenant:
        raise RestoreRefused(
            f"backup {backup_id} belongs to tenant {backup.tenant!r}, not {tenant!r}; restoring another "
            "tenant's data is not supported",
            tenant=tenant,
        )
    identity = ensure_uid(service.engine, tenant)
    if identity.exists and backup.tenant_uid != identity.uid:
        raise RestoreRefused(
            f"backup {backup_id} belongs to uid {backup.tenant_uid}, a former tenant named {tenant!r}, not to this "
            f"tenant (uid {identity.uid}); `reconciler tenants adopt {tenant} --yes` gives it that tenant's data",
            tenant=tenant,
        )
    foreign = foreign_data(service.engine, service.docker, service.naming, tenant, identity.uid)
    if foreign is not None:
        raise RestoreRefused(f"restoring would overwrite another tenant's data: {foreign}", tenant=tenant)
    if backup.status != "succeeded" or not backup.sha256:
        raise RestoreRefused(
            f"backup {backup_id} is {backup.status}, only succeeded backups can be restored", tenant=tenant
        )
    if service.config.backup_dir is None:
        raise RestoreRefused("no backup directory is configured (set RECONCILER_BACKUP_DIR)", tenant=tenant)
    try:
        path = archive_path(service.config.backup_dir, backup)
    except ArchiveRefused as exc:
        raise RestoreRefused(str(exc), tenant=tenant) from exc
    if not path.is_file():
        raise RestoreRefused(f"archive of backup {backup_id} is missing: {path}", tenant=tenant)
    found = sha256_of(path)
    if found != backup.sha256:
        raise RestoreRefused(
            f"archive {path} is corrupted: its sha256 is {found}, the backup recorded {backup.sha256}; "
            "nothing was restored",
            tenant=tenant,
        )
    return backup, path


def restore(
    service: BackupService,
    tenant: str,
    backup_id: int,
    *,
    trigger: str,
    request_id: int | None,
    before_release: Callable[[], None] | None,
    on_hold: Callable[[], bool] | None = None,
) -> RestoreResult:
    engine = service.engine
    try:
        backup, path = checked_archive(service, tenant, backup_id)
    except RestoreRefused as exc:
        record_operation(
            engine,
            tenant,
            "restore",
            "failed",
            trigger=trigger,
            backup_id=backup_id,
            request_id=request_id,
            error=str(exc),
        )
        if service.metrics:
            service.metrics.restores.labels(result="refused").inc()
        service.alert(tenant, f"restore of backup {backup_id} refused: {exc}")
        log.error("tenant=%s restore refused: %s", tenant, exc, extra={"tenant": tenant})
        raise
    # The running operation is the hold: from here on passes leave this tenant alone.
    operation_id = start_operation(
        engine, tenant, "restore", trigger=trigger, backup_id=backup_id, request_id=request_id
    )
    stopped: list[str] = []
    try:
        # True from ``on_hold``: the volume's users are already stopped (a swarm's services scaled to 0), and the
        # tenant's other containers do not touch the data, so none is stopped here.
        quiesced = on_hold() if on_hold is not None else False
        output = _swap_in(service, tenant, path, operation_id, stopped if not quiesced else None)
        if before_release is not None:
            before_release()
    except ReconcileError as exc:
        finish_operation(engine, operation_id, "failed", error=str(exc))
        if service.metrics:
            service.metrics.restores.labels(result="failed").inc()
        service.alert(tenant, f"restore of backup {backup_id} failed: {exc}")
        log.error("tenant=%s restore of backup %d failed: %s", tenant, backup_id, exc, extra={"tenant": tenant})
        raise
    reverted = revert_migrations(engine, tenant, backup.started_at or backup.created_at or datetime.now(UTC))
    if reverted:
        output += f"\n{reverted} migration(s) recorded after this backup are undone and will run again"
    finish_operation(engine, operation_id, "succeeded", output=output)
    if service.metrics:
        service.metrics.restores.labels(result="succeeded").inc()
    log.info(
        "tenant=%s restored backup %d (%s); %d container(s) to start again",
        tenant,
        backup_id,
        backup.file_name,
        len(stopped),
        extra={"tenant": tenant},
    )
    return RestoreResult(operation_id=operation_id, backup=backup, stopped=stopped, output=output)


def _swap_in(service: BackupService, tenant: str, path: Path, operation_id: int, stopped: list[str] | None) -> str:
    """Stop the tenant's containers (unless ``stopped`` is None) and replace the volume's content with the
    archive's; the helper's output."""
    docker, naming = service.docker, service.naming
    snapshot = docker.observe(tenant)
    volume = naming.volume(tenant)
    if not any(v.name == volume for v in snapshot.volumes):
        raise PermanentError(f"tenant {tenant!r} has no data volume {volume} to restore into", tenant=tenant)
    for container in snapshot.containers:
        if container.running and stopped is not None:
            docker.stop_container(container)
            stopped.append(container.name)
            log.info("tenant=%s stopped %s for the restore", tenant, container.name, extra={"tenant": tenant})
    stage = f".restore-{operation_id}"
    assert _STAGE_RE.match(stage), stage
    with path.open("rb") as archive:
        result = docker.run_helper(
            service.config.helper_image,
            ["sh", "-c", RESTORE_SCRIPT, "restore", stage],
            name=helper_name(naming, tenant, "restore"),
            volume=volume,
            labels=helper_labels(naming, tenant, "restore"),
            timeout=service.config.backup_timeout,
            stdin=archive,
        )
    if not result.ok:
        raise TransientError(f"restore helper exited with {result.exit_code}: {result.output.strip()}", tenant=tenant)
    return result.output.strip()
