"""The upgrade gate and the pass's other tenant-operation hooks (``runtime.passes.stages.TenantOperations``).

Wired into the reconcile pass (``Reconciler.operations``) and, through it, into the executor. For every service
whose image changes in a pass, before any new container starts:

1. a backup of the tenant's volume (trigger ``pre-upgrade``; once per tenant and pass). If it fails, the upgrade
   is postponed (the pass fails for the tenant and is retried with backoff); the backup failure alerted already.
2. the catalog's ``migrate`` command, once, in a one-off container of the NEW image on the tenant's network with
   its volume and the service's environment. "Once" is a ``migrate`` row in ``operations`` that succeeded for
   (tenant, service, target image): a retried pass finds it and skips the migration (and the backup).

The executor then starts the new containers, waits until they are healthy, routes them and retires the old ones.
If the migration, the health check or (with checks configured, ``runtime.checks``) a check through the route
fails, the old version keeps serving (the executor removed the new containers), the service is pinned to its old
image (``tenant_pins``, applied by ``core.policies.pinned`` until the desired image changes again) and exactly
one alert goes out: later passes see the pin and do not try again.
Every upgrade and migration is an ``operations`` row; so is each rollout of a new spec (``deploy``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from desired_state.backups import BackupRecord
from desired_state.model import DesiredState
from desired_state.operations import (
    finish_operation,
    holds,
    last_upgrade,
    migration_succeeded,
    record_operation,
    running_operation,
    start_operation,
)
from desired_state.pins import delete_pins, read_pins, write_pin
from desired_state.specs import ServiceSpec, TenantSpec
from reconciler.core.checks import CHECKS_FAILED_AFTER_UPGRADE
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.plan import Change
from reconciler.core.upgrades import Pin, Upgrade, split_pins
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations.backups import BackupError, BackupService
from reconciler.runtime.operations.common import (
    Alert,
    OperationsConfig,
    OperationsMetrics,
    helper_labels,
    helper_name,
    log_alert,
)
from reconciler.runtime.operations.migration_guard import refuse_concurrent_migration
from renderers.containers import Naming, container_env

log = logging.getLogger("reconciler.upgrades")

# Lines of a failed migration's output quoted in the pin reason and the alert (the whole output is in operations).
REASON_LINES = 5


@dataclass
class _Running:
    operation_id: int
    backup_id: int | None


@dataclass
class UpgradeGuard:
    engine: Engine
    docker: DockerDriver
    naming: Naming
    backups: BackupService
    config: OperationsConfig
    alert: Alert = log_alert
    metrics: OperationsMetrics | None = None
    _running: dict[tuple[str, Upgrade], _Running] = field(default_factory=dict)
    # Last deploy recorded per tenant (digest, failed?): a failing spec retried with backoff is recorded once.
    _deploys: dict[str, tuple[str, bool]] = field(default_factory=dict)
    _rollbacks: set[tuple[str, Upgrade]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the pass's hooks ------------------------------------------------------------------------------------

    def holds(self) -> Mapping[str, str]:
        return holds(self.engine, timedelta(seconds=self.config.hold_timeout))

    def pins(self, desired: DesiredState) -> Mapping[str, Sequence[Pin]]:
        records = read_pins(self.engine)
        if self.metrics:
            self.metrics.pins.set(len(records))
        if not records:
            return {}
        active, _stale = split_pins(
            [Pin(r.tenant, r.service, r.pinned_image, r.failed_image, r.reason) for r in records],
            desired_images(desired),
            keep_tenants=frozenset(desired.errors),
        )
        return active

    def clear_stale_pins(self, desired: DesiredState) -> int:
        """Delete pins whose failed image is no longer desired (run periodically, not in the pass)."""
        records = read_pins(self.engine)
        _, stale = split_pins(
            [Pin(r.tenant, r.service, r.pinned_image, r.failed_image, r.reason) for r in records],
            desired_images(desired),
            keep_tenants=frozenset(desired.errors),
        )
        keys = {(p.tenant, p.service, p.failed_image) for p in stale}
        doomed = [r for r in records if (r.tenant, r.service, r.failed_image) in keys]
        for record in doomed:
            log.info(
                "tenant=%s pin of %s on %s lifted: %s is no longer the desired image",
                record.tenant,
                record.service,
                record.pinned_image,
                record.failed_image,
                extra={"tenant": record.tenant},
            )
        delete_pins(self.engine, [r.id for r in doomed])
        return len(doomed)

    def deployed(self, tenant: str, digest: str, applied: Sequence[Change], error: str | None) -> None:
        with self._lock:
            if self._deploys.get(tenant) == (digest, error is not None):
                return
            self._deploys[tenant] = (digest, error is not None)
        output = "\n".join(change.describe() for change in applied) or None
        record_operation(
            self.engine,
            tenant,
            "deploy",
            "failed" if error is not None else "succeeded",
            trigger="reconcile",
            to_image=None,
            output=output,
            error=error,
        )

    # --- the executor's upgrade gate ---------------------------------------------------------------------------

    def before_upgrades(self, spec: TenantSpec, upgrades: Sequence[Upgrade]) -> Mapping[Upgrade, str]:
        tenant = spec.name
        rollbacks = [
            u
            for u in upgrades
            if running_operation(self.engine, tenant, "rollback", service=u.service, to_image=u.new_image)
        ]
        with self._lock:
            self._rollbacks.update((tenant, u) for u in rollbacks)
        # A rollback goes back to an image whose data the operator restored (or chose to keep): no backup, no migration.
        upgrades = [u for u in upgrades if u not in rollbacks]
        if not upgrades:
            return {}
        done = {u: migration_succeeded(self.engine, tenant, u.service, u.new_image) is not None for u in upgrades}
        backup = None
        if not all(done.values()):
            backup = self._pre_upgrade_backup(tenant, upgrades)
        refused: dict[Upgrade, str] = {}
        for upgrade in upgrades:
            backup_id = backup.id if backup is not None else self._earlier_backup(upgrade)
            operation_id = start_operation(
                self.engine,
                tenant,
                "upgrade",
                service=upgrade.service,
                from_image=upgrade.old_image,
                to_image=upgrade.new_image,
                trigger="reconcile",
                backup_id=backup_id,
            )
            with self._lock:
                self._running[(tenant, upgrade)] = _Running(operation_id, backup_id)
            service = spec.service(upgrade.service)
            if service is None or not service.migrate:
                continue
            if done[upgrade]:
                log.info("tenant=%s migration of %s already done, not run again", tenant, upgrade.describe())
                continue
            try:
                self._migrate(spec, service, upgrade)
            except _MigrationFailed as exc:
                refused[upgrade] = str(exc)
                self._fail(spec, upgrade, str(exc))
            except ReconcileError as exc:
                # The engine could not be asked (not the migration's fault): try again in a later pass.
                refused[upgrade] = f"migration could not be started: {exc}"
                self._postpone(tenant, upgrade, refused[upgrade])
        return refused

    def after_upgrades(self, spec: TenantSpec, results: Mapping[Upgrade, str | None]) -> None:
        for upgrade, why in results.items():
            with self._lock:
                rollback = (spec.name, upgrade) in self._rollbacks
                self._rollbacks.discard((spec.name, upgrade))
            if rollback:
                self._rolled_back(spec.name, upgrade, why)
            elif why is None:
                self._succeed(spec.name, upgrade)
            elif why.startswith(CHECKS_FAILED_AFTER_UPGRADE):
                self._fail(spec, upgrade, why)
            else:
                self._fail(spec, upgrade, f"new version did not become healthy: {why}")

    # --- steps -------------------------------------------------------------------------------------------------

    def _pre_upgrade_backup(self, tenant: str, upgrades: Sequence[Upgrade]) -> BackupRecord | None:
        if self.config.backup_dir is None:
            log.warning(
                "tenant=%s upgrading without a backup: no backup directory is configured (RECONCILER_BACKUP_DIR)",
                tenant,
                extra={"tenant": tenant},
            )
            return None
        try:
            return self.backups.backup(tenant, "pre-upgrade")
        except BackupError as exc:
            for upgrade in upgrades:
                record_operation(
                    self.engine,
                    tenant,
                    "upgrade",
                    "failed",
                    service=upgrade.service,
                    from_image=upgrade.old_image,
                    to_image=upgrade.new_image,
                    trigger="reconcile",
                    error=f"postponed: the pre-upgrade backup failed: {exc}",
                )
                if self.metrics:
                    self.metrics.upgrades.labels(result="postponed").inc()
            raise TransientError(
                f"tenant {tenant!r}: upgrade postponed, pre-upgrade backup failed: {exc}", tenant=tenant
            ) from exc

    def _earlier_backup(self, upgrade: Upgrade) -> int | None:
        """A retried upgrade whose migration already ran keeps pointing at the backup taken before it."""
        earlier = last_upgrade(self.engine, upgrade.tenant, upgrade.service)
        if earlier is not None and earlier.to_image == upgrade.new_image:
            return earlier.backup_id
        return None

    def _migrate(self, spec: TenantSpec, service: ServiceSpec, upgrade: Upgrade) -> None:
        tenant = spec.name
        assert service.migrate is not None
        command = list(service.migrate)
        refuse_concurrent_migration(self.engine, self.docker, self.naming, tenant, upgrade.service)
        operation_id = start_operation(
            self.engine,
            tenant,
            "migrate",
            service=upgrade.service,
            from_image=upgrade.old_image,
            to_image=upgrade.new_image,
            trigger="pre-upgrade",
        )
        log.info("tenant=%s migrating %s: %s", tenant, upgrade.describe(), " ".join(command), extra={"tenant": tenant})
        try:
            result = self.docker.run_helper(
                upgrade.new_image,
                command,
                name=helper_name(self.naming, tenant, f"{upgrade.service}-migrate"),
                volume=self.naming.volume(tenant),
                network=self.naming.network(tenant),
                env=dict(container_env(spec, service, 0)),
                labels=helper_labels(self.naming, tenant, "migrate"),
                timeout=self.config.migrate_timeout,
            )
        except TransientError as exc:
            finish_operation(self.engine, operation_id, "failed", error=str(exc))
            if "did not finish within" in str(exc):
                self._count_migration("failed")
                raise _MigrationFailed(f"migration {command} timed out: {exc}") from exc
            raise
        except PermanentError as exc:
            finish_operation(self.engine, operation_id, "failed", error=str(exc))
            self._count_migration("failed")
            raise _MigrationFailed(f"migration {command} could not run: {exc}") from exc
        if not result.ok:
            finish_operation(
                self.engine, operation_id, "failed", output=result.output, error=f"exit code {result.exit_code}"
            )
            self._count_migration("failed")
            tail = "\n".join(result.output.strip().splitlines()[-REASON_LINES:])
            raise _MigrationFailed(f"migration {command} exited with {result.exit_code}: {tail}")
        try:
            finish_operation(self.engine, operation_id, "succeeded", output=result.output)
        except IntegrityError:
            # Another reconciler recorded the same migration meanwhile (no leader lock?): keep theirs.
            finish_operation(
                self.engine, operation_id, "failed", output=result.output, error="duplicate of a recorded migration"
            )
        self._count_migration("succeeded")
        log.info("tenant=%s migration of %s succeeded", tenant, upgrade.describe(), extra={"tenant": tenant})

    def _count_migration(self, result: str) -> None:
        if self.metrics:
            self.metrics.migrations.labels(result=result).inc()

    def _take(self, tenant: str, upgrade: Upgrade) -> _Running | None:
        with self._lock:
            return self._running.pop((tenant, upgrade), None)

    def _succeed(self, tenant: str, upgrade: Upgrade) -> None:
        running = self._take(tenant, upgrade)
        if running is not None:
            finish_operation(self.engine, running.operation_id, "succeeded")
        delete_pins(self.engine, [p.id for p in read_pins(self.engine, tenant) if p.service == upgrade.service])
        if self.metrics:
            self.metrics.upgrades.labels(result="succeeded").inc()
        log.info("tenant=%s upgrade %s done", tenant, upgrade.describe(), extra={"tenant": tenant})

    def _rolled_back(self, tenant: str, upgrade: Upgrade, why: str | None) -> None:
        if why is None:
            delete_pins(self.engine, [p.id for p in read_pins(self.engine, tenant) if p.service == upgrade.service])
            log.info("tenant=%s rollback %s done", tenant, upgrade.describe(), extra={"tenant": tenant})
            return
        log.error("tenant=%s rollback %s failed: %s", tenant, upgrade.describe(), why, extra={"tenant": tenant})
        self.alert(tenant, f"rollback of {upgrade.service} to {upgrade.new_image} failed: {why}")

    def _postpone(self, tenant: str, upgrade: Upgrade, why: str) -> None:
        running = self._take(tenant, upgrade)
        if running is not None:
            finish_operation(self.engine, running.operation_id, "failed", error=f"postponed: {why}")
        if self.metrics:
            self.metrics.upgrades.labels(result="postponed").inc()

    def _fail(self, spec: TenantSpec, upgrade: Upgrade, why: str) -> None:
        tenant = spec.name
        running = self._take(tenant, upgrade)
        backup_id = running.backup_id if running is not None else None
        if running is not None:
            finish_operation(self.engine, running.operation_id, "failed", error=why)
        write_pin(
            self.engine,
            tenant,
            upgrade.service,
            pinned_image=upgrade.old_image,
            failed_image=upgrade.new_image,
            reason=why,
            backup_id=backup_id,
            operation_id=running.operation_id if running is not None else None,
        )
        if self.metrics:
            self.metrics.upgrades.labels(result="failed").inc()
        log.error(
            "tenant=%s upgrade %s failed, pinned to %s: %s",
            tenant,
            upgrade.describe(),
            upgrade.old_image,
            why,
            extra={"tenant": tenant},
        )
        self.alert(
            tenant,
            f"upgrade of {upgrade.service} to {upgrade.new_image} failed; {upgrade.old_image} keeps serving and "
            f"the service is pinned to it until the desired image changes (or `reconciler rollback {tenant}`). "
            f"Reason: {why}",
        )


class _MigrationFailed(ReconcileError):
    """The migration ran (or hung) and did not succeed: the upgrade is abandoned and the service pinned."""


def desired_images(desired: DesiredState) -> dict[tuple[str, str], frozenset[str]]:
    """(tenant, service) → the images the database asks for (one per version track)."""
    return {
        (name, service.name): frozenset(track.image for track in service.tracks())
        for name, spec in desired.tenants.items()
        for service in spec.services
    }
