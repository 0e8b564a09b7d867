"""Tenant operations as one object: built by ``runtime.wiring``, used by the CLI, the request processor and the
scheduler. It holds the backup service and the upgrade gate (which the reconcile pass calls), and carries out the
operations that span both: a restore followed by a pass that starts the tenant again, and a rollback.

Rollback (``reconciler rollback TENANT [--restore]``): the services to roll back are the tenant's pinned services
(back to the pinned image) or, without a pin, the services of its latest successful upgrade (back to the image
they came from). Their image is set in ``tenant_services`` (the generation is bumped), the pins are lifted, and a
pass for the tenant brings the old version back through the executor's normal replacement (no backup and no
migration while a rollback operation is running). With ``--restore`` the backup taken before that upgrade is
restored first, and the image is changed while the tenant is still held, so the new version never runs on the
restored data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from desired_state.backups import BackupRecord, read_policy
from desired_state.load import load_desired_state
from desired_state.operations import finish_operation, last_upgrade, latest_upgrades, start_operation
from desired_state.pins import delete_pins, read_pins
from desired_state.service_image import set_service_image
from reconciler.core.errors import PermanentError, ReconcileError
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations.backups import BackupService, RestoreResult
from reconciler.runtime.operations.common import OperationsConfig, OperationsMetrics, log
from reconciler.runtime.operations.maintenance import MaintenanceAnswer
from reconciler.runtime.operations.swarm_quiesce import is_swarm, quiesce_for_restore
from reconciler.runtime.operations.upgrades import UpgradeGuard
from reconciler.runtime.operations.verify import BackupVerifier
from reconciler.runtime.passes.reconcile import PassResult, Reconciler
from reconciler.runtime.settings import Settings
from renderers.containers import Naming

Notify = Callable[[str], None]


class AlertRelay:
    """Operations' alerts, sent through the alerts module once the runtime has one, else logged.

    ``target`` is the alerts module's ``notify`` (given by wiring); None logs the alert instead.
    """

    def __init__(self, target: Notify | None = None) -> None:
        self.target: Notify | None = target

    def __call__(self, tenant: str, message: str) -> None:
        text = f"⚠️ tenant {tenant}: {message}"
        if self.target is None:
            logging.getLogger("reconciler.operations").error("ALERT %s", text, extra={"tenant": tenant})
        else:
            self.target(text)


@dataclass(frozen=True)
class RollbackTarget:
    service: str
    from_image: str
    to_image: str
    backup_id: int | None


@dataclass
class RollbackResult:
    targets: list[RollbackTarget]
    restored: RestoreResult | None
    pass_result: PassResult | None
    operation_ids: list[int] = field(default_factory=list)


@dataclass
class TenantOps:
    engine: Engine
    docker: DockerDriver
    naming: Naming
    config: OperationsConfig
    backups: BackupService
    guard: UpgradeGuard
    relay: AlertRelay
    metrics: OperationsMetrics
    verifier: BackupVerifier
    # The reconciler whose passes follow a restore or rollback (it holds ``guard`` as its upgrade gate).
    reconciler: Reconciler

    # --- backup and restore --------------------------------------------------------------------------------------

    def backup(self, tenant: str, trigger: str = "manual", *, request_id: int | None = None) -> BackupRecord:
        """A backup now; when the tenant has a valid policy, retention runs after it succeeded (an invalid ``keep``
        is logged and prunes nothing: the backup itself is never refused for it)."""
        policy = read_policy(self.engine, tenant)
        problem = policy.keep_problem(self.config.keep_max) if policy is not None else None
        if problem is not None:
            log.error("%s; retention skipped", problem, extra={"tenant": tenant})
        keep = policy.keep if policy is not None and problem is None else None
        return self.backups.backup(tenant, trigger, keep=keep, request_id=request_id)

    def restore(
        self, tenant: str, backup_id: int, *, trigger: str = "manual", request_id: int | None = None
    ) -> tuple[RestoreResult, PassResult | None]:
        """Restore, then a pass for the tenant: it starts the stopped containers and routes them again.

        While the tenant is held its routes answer 503 with ``Retry-After`` (``operations.maintenance``, when
        routing is configured); the pass after the restore routes the containers again once they are ready, then
        the maintenance answer goes. A refused restore (unknown backup, corrupted archive) raises before anything
        was stopped; a failed one raises after the pass has started the containers again on the data the volume kept.
        """
        answer = self._maintenance()
        maintained: list[bool] = []

        def on_hold() -> bool:
            quiesced = self._quiesce(tenant)
            if answer is not None:
                desired = load_desired_state(self.engine, self.reconciler.base_domain, self.reconciler.input_limits)
                spec = desired.tenants.get(tenant)
                maintained.append(spec is not None and answer.begin(spec))
            return quiesced

        try:
            restored = self.backups.restore(tenant, backup_id, trigger=trigger, request_id=request_id, on_hold=on_hold)
        except PermanentError:
            if any(maintained):
                self._resume_after_maintenance(tenant)
            raise
        except ReconcileError:
            if any(maintained):
                self._resume_after_maintenance(tenant)
            else:
                self.resume(tenant)
            raise
        if not any(maintained):
            return restored, self.resume(tenant)
        return restored, self._resume_after_maintenance(tenant)

    def _quiesce(self, tenant: str) -> bool:
        """On a swarm a stopped task is restarted at once: the services mounting the data go to 0 replicas instead
        (the pass after the restore scales them back). True when that was done (the engine is a swarm)."""
        if not is_swarm(self.reconciler.docker):
            return False
        quiesce_for_restore(self.reconciler.docker, self.docker, tenant, self.naming.volume(tenant))
        return True

    def _maintenance(self) -> MaintenanceAnswer | None:
        # Here, not at module level: routing brings httpx (and click, rich, pygments), which a one-shot command
        # without routing never needs (docs/benchmarks.md, "CLI start").
        from reconciler.runtime.passes.routing import TraefikRouter

        router = self.reconciler.router
        if not isinstance(router, TraefikRouter):
            return None
        return MaintenanceAnswer(self.docker, self.naming, router, self.config.helper_image)

    def _resume_after_maintenance(self, tenant: str) -> PassResult | None:
        """The pass routes the restored containers as soon as they are ready; then the maintenance answer goes."""
        try:
            return self.resume(tenant)
        finally:
            answer = self._maintenance()
            if answer is not None:
                answer.end(tenant)

    def resume(self, tenant: str) -> PassResult | None:
        result = self.reconciler.run_pass({tenant}, trigger="operation")
        if tenant in result.errors:
            log.error("tenant=%s pass after the operation failed: %s", tenant, result.errors[tenant])
        return result

    # --- rollback --------------------------------------------------------------------------------------------

    def rollback_targets(self, tenant: str, service: str | None = None) -> list[RollbackTarget]:
        """Pinned services, or else the services of the latest successful upgrade (sharing its backup)."""
        pins = [p for p in read_pins(self.engine, tenant) if service is None or p.service == service]
        if pins:
            return [RollbackTarget(p.service, p.failed_image, p.pinned_image, p.backup_id) for p in pins]
        latest = last_upgrade(self.engine, tenant, service, status="succeeded")
        if latest is None or not latest.service or not latest.from_image or not latest.to_image:
            return []
        upgrades = [latest]
        if service is None and latest.backup_id is not None:
            # Services upgraded in the same pass share the pre-upgrade backup: they go back together.
            upgrades = [
                u
                for u in latest_upgrades(self.engine, tenant)
                if u.backup_id == latest.backup_id and u.service and u.from_image and u.to_image
            ]
        return [
            RollbackTarget(u.service or "", u.to_image or "", u.from_image or "", u.backup_id)
            for u in sorted(upgrades, key=lambda u: u.service or "")
        ]

    def rollback(
        self,
        tenant: str,
        *,
        restore: bool = False,
        service: str | None = None,
        trigger: str = "manual",
        request_id: int | None = None,
    ) -> RollbackResult:
        targets = self.rollback_targets(tenant, service)
        if not targets:
            what = f"service {service!r} of tenant {tenant!r}" if service else f"tenant {tenant!r}"
            raise PermanentError(
                f"nothing to roll back for {what}: no pinned service and no successful upgrade recorded", tenant=tenant
            )
        backup_id = next((t.backup_id for t in targets if t.backup_id is not None), None)
        if restore and backup_id is None:
            raise PermanentError(
                f"tenant {tenant!r}: no backup was taken before this upgrade (no backup dir configured then?); "
                "roll back without --restore, or restore a backup by id with `reconciler restore`",
                tenant=tenant,
            )
        operation_ids = [
            start_operation(
                self.engine,
                tenant,
                "rollback",
                service=t.service,
                from_image=t.from_image,
                to_image=t.to_image,
                trigger=trigger,
                backup_id=backup_id if restore else None,
                request_id=request_id,
            )
            for t in targets
        ]
        result = RollbackResult(targets=targets, restored=None, pass_result=None, operation_ids=operation_ids)
        try:
            if restore:
                assert backup_id is not None
                result.restored = self.backups.restore(
                    tenant,
                    backup_id,
                    trigger="rollback",
                    request_id=request_id,
                    before_release=lambda: self._point_back(tenant, targets),
                    on_hold=lambda: self._quiesce(tenant),
                )
            else:
                self._point_back(tenant, targets)
            result.pass_result = self.resume(tenant)
        except ReconcileError as exc:
            for operation_id in operation_ids:
                finish_operation(self.engine, operation_id, "failed", error=str(exc))
            self.relay(tenant, f"rollback failed: {exc}")
            if restore:
                self.resume(tenant)
            raise
        error = result.pass_result.errors.get(tenant) if result.pass_result is not None else None
        summary = ", ".join(f"{t.service}: {t.from_image} -> {t.to_image}" for t in targets)
        for operation_id in operation_ids:
            finish_operation(
                self.engine,
                operation_id,
                "failed" if error else "succeeded",
                output=summary + (f"; restored backup {backup_id}" if restore else ""),
                error=error,
            )
        if error:
            raise ReconcileError(
                f"tenant {tenant!r}: rolled back in the database, but the pass failed: {error}", tenant=tenant
            )
        log.info("tenant=%s rolled back (%s)", tenant, summary, extra={"tenant": tenant})
        return result

    def _point_back(self, tenant: str, targets: list[RollbackTarget]) -> None:
        try:
            for target in targets:
                set_service_image(self.engine, tenant, target.service, target.to_image)
        except ValueError as exc:
            raise PermanentError(f"rollback: {exc}", tenant=tenant) from exc
        services = {t.service for t in targets}
        delete_pins(self.engine, [p.id for p in read_pins(self.engine, tenant) if p.service in services])


@dataclass(frozen=True)
class OperationParts:
    """What the reconciler needs of tenant operations before it exists (its upgrade gate), and the rest."""

    config: OperationsConfig
    relay: AlertRelay
    backups: BackupService
    guard: UpgradeGuard
    verifier: BackupVerifier

    def tenant_ops(
        self, engine: Engine, docker: DockerDriver, naming: Naming, metrics: OperationsMetrics, reconciler: Reconciler
    ) -> TenantOps:
        return TenantOps(
            engine,
            docker,
            naming,
            self.config,
            self.backups,
            self.guard,
            self.relay,
            metrics,
            self.verifier,
            reconciler,
        )


def build_operation_parts(
    settings: Settings,
    engine: Engine,
    docker: DockerDriver,
    naming: Naming,
    metrics: OperationsMetrics,
    notify: Notify | None = None,
) -> OperationParts:
    config = OperationsConfig.from_settings(settings)
    relay = AlertRelay(notify)
    backups = BackupService(engine, docker, naming, config, alert=relay, metrics=metrics)
    guard = UpgradeGuard(engine, docker, naming, backups, config, alert=relay, metrics=metrics)
    return OperationParts(config, relay, backups, guard, BackupVerifier(backups))
