"""Resource usage write-back: the latest memory and CPU figures per tenant service, for the web UI.

Written by the usage collector (``reconciler.runtime.telemetry.usage``) after each collection, off the reconcile path;
read by the UI (``tenant_usages``, docs/schema.md) and by ``read_usages``. Each write replaces the whole table in
one transaction, so a reader sees one collection, never half of two, and services that stopped drop out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select

from desired_state.tables import TenantUsageRow


@dataclass(frozen=True)
class TenantUsage:
    tenant: str
    service: str
    memory_bytes: int
    memory_limit_bytes: int | None
    cpu_cores: float | None
    containers: int
    collected_at: datetime


def write_usages(engine: Engine, usages: Iterable[TenantUsage]) -> int:
    """Replace every row with ``usages``; returns the number of rows written."""
    rows = [
        {
            "tenant": u.tenant,
            "service": u.service,
            "memory_bytes": u.memory_bytes,
            "memory_limit_bytes": u.memory_limit_bytes,
            "cpu_cores": u.cpu_cores,
            "containers": u.containers,
            "collected_at": u.collected_at,
        }
        for u in usages
    ]
    with engine.begin() as connection:
        connection.execute(delete(TenantUsageRow))
        if rows:
            connection.execute(insert(TenantUsageRow), rows)
    return len(rows)


def read_usages(engine: Engine, tenant: str | None = None) -> list[TenantUsage]:
    """The stored rows (of one tenant, or all), sorted by tenant and service."""
    query = select(TenantUsageRow).order_by(TenantUsageRow.tenant, TenantUsageRow.service)
    if tenant is not None:
        query = query.where(TenantUsageRow.tenant == tenant)
    with engine.connect() as connection:
        return [
            TenantUsage(
                tenant=row["tenant"],
                service=row["service"],
                memory_bytes=row["memory_bytes"],
                memory_limit_bytes=row["memory_limit_bytes"],
                cpu_cores=row["cpu_cores"],
                containers=row["containers"],
                collected_at=row["collected_at"],
            )
            for row in connection.execute(query).mappings()
        ]
