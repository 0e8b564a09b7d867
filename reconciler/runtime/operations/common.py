"""Shared pieces of tenant operations (backups, restores, upgrades, rollbacks): settings, metrics, alerts, names.

The operations modules (``operations.backups``, ``operations.upgrades``, ``runtime.rollback``, ``operations.requests``,
``operations.backup_schedule``) are built once by ``runtime.wiring`` from these; nothing here does I/O at import.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reconciler.core.resources import LABEL_OWNER, LABEL_PREFIX, LABEL_TENANT
from reconciler.runtime.settings import Settings
from renderers.containers import Naming

log = logging.getLogger("reconciler.operations")

# Marks helper containers (backup, restore, migration) for `docker ps`; they never carry the managed label, so the
# snapshot does not see them, but they do carry the owner label, so an owner's cleanup removes leftovers.
LABEL_ROLE = f"{LABEL_PREFIX}.role"

# Sends one operator alert: (tenant, message). Wiring passes the alerts module's sender when there is one.
Alert = Callable[[str, str], None]


def log_alert(tenant: str, message: str) -> None:
    """The fallback alert: one ERROR line (log shippers and `reconciler run`'s output carry it)."""
    log.error("ALERT tenant=%s %s", tenant, message, extra={"tenant": tenant, "alert": True})


@dataclass(frozen=True)
class OperationsConfig:
    """The settings tenant operations use, as one value (built from ``Settings`` in wiring)."""

    backup_dir: Path | None = None
    min_free_bytes: int = 1024 * 1024 * 1024
    helper_image: str = "erp/busybox:local"
    backup_timeout: float = 3600.0
    migrate_timeout: float = 600.0
    # A restore whose process died is considered abandoned after this long, and its tenant reconciled again.
    hold_timeout: float = 3600.0
    request_poll_interval: float = 5.0
    # Requests of different tenants carried out at once, and how long a shutdown waits for the running ones.
    request_concurrency: int = 2
    request_shutdown_grace: float = 20.0
    policy_refresh_interval: float = 30.0
    # Bounds of backup policies (``operations.backup_schedule``): shortest schedule interval, most archives kept.
    min_backup_interval: float = 300.0
    keep_max: int = 1000
    # Cron of the backup verification (``operations.verify``); None → not scheduled.
    verify_schedule: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OperationsConfig:
        return cls(
            backup_dir=Path(settings.backup_dir) if settings.backup_dir else None,
            min_free_bytes=settings.backup_min_free_mib * 1024 * 1024,
            helper_image=settings.backup_helper_image,
            backup_timeout=settings.backup_timeout,
            migrate_timeout=settings.migrate_timeout,
            hold_timeout=settings.operation_hold_timeout,
            request_poll_interval=settings.operation_poll_interval,
            request_concurrency=settings.operation_concurrency,
            request_shutdown_grace=settings.operation_shutdown_grace,
            policy_refresh_interval=settings.backup_policy_refresh,
            min_backup_interval=settings.backup_min_interval,
            keep_max=settings.backup_keep_max,
            verify_schedule=settings.backup_verify_schedule or None,
        )


def helper_name(naming: Naming, tenant: str, role: str) -> str:
    """A unique container name per run: a leftover of a crashed run must never block the next one."""
    return f"{naming.prefix}-{tenant}-{role}-{secrets.token_hex(4)}"


def helper_labels(naming: Naming, tenant: str, role: str) -> dict[str, str]:
    return {LABEL_OWNER: naming.owner, LABEL_TENANT: tenant, LABEL_ROLE: role}


class OperationsMetrics:
    """Counters for backups, restores, migrations and upgrades, on the runtime's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.backups = Counter(
            "reconciler_backups",
            "Backups by trigger and result (succeeded, failed, refused).",
            ["trigger", "result"],
            registry=r,
        )
        self.backup_duration = Histogram(
            "reconciler_backup_duration_seconds",
            "Duration of successful backups.",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.backup_size = Gauge(
            "reconciler_backup_last_size_bytes", "Size of the tenant's last successful backup.", ["tenant"], registry=r
        )
        self.backup_last_success = Gauge(
            "reconciler_backup_last_success_timestamp_seconds",
            "Unix time of the tenant's last successful backup.",
            ["tenant"],
            registry=r,
        )
        self.restores = Counter("reconciler_restores", "Restores by result.", ["result"], registry=r)
        self.migrations = Counter("reconciler_migrations", "Migrations run, by result.", ["result"], registry=r)
        self.upgrades = Counter(
            "reconciler_upgrades", "Service upgrades by result (succeeded, failed, postponed).", ["result"], registry=r
        )
        self.pins = Gauge("reconciler_pinned_services", "Tenant services pinned after a failed upgrade.", registry=r)
        for result in ("succeeded", "failed", "refused"):
            self.restores.labels(result=result)
        for result in ("succeeded", "failed"):
            self.migrations.labels(result=result)
        for result in ("succeeded", "failed", "postponed"):
            self.upgrades.labels(result=result)
