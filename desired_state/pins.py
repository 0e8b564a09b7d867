"""Version pins: a tenant service held on its old image after a failed upgrade (``tenant_pins``), read by every
pass and written by ``reconciler.runtime.operations.upgrades``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from desired_state.operations import clip
from desired_state.tables import TenantPin


@dataclass(frozen=True)
class PinRecord:
    id: int
    tenant: str
    service: str
    pinned_image: str
    failed_image: str
    reason: str
    backup_id: int | None
    operation_id: int | None
    created_at: datetime | None


def _pin(row: Any) -> PinRecord:
    return PinRecord(
        id=row.id,
        tenant=row.tenant,
        service=row.service,
        pinned_image=row.pinned_image,
        failed_image=row.failed_image,
        reason=row.reason,
        backup_id=row.backup_id,
        operation_id=row.operation_id,
        created_at=row.created_at,
    )


def read_pins(engine: Engine, tenant: str | None = None) -> list[PinRecord]:
    query = select(TenantPin).order_by(TenantPin.tenant, TenantPin.service)
    if tenant is not None:
        query = query.where(TenantPin.tenant == tenant)
    with engine.connect() as connection:
        return [_pin(row) for row in connection.execute(query)]


def write_pin(
    engine: Engine,
    tenant: str,
    service: str,
    *,
    pinned_image: str,
    failed_image: str,
    reason: str,
    backup_id: int | None,
    operation_id: int | None,
) -> None:
    """Create or replace the pin of a tenant service."""
    now = datetime.now(UTC)
    values = {
        "tenant": tenant,
        "service": service,
        "pinned_image": pinned_image,
        "failed_image": failed_image,
        "reason": clip(reason),
        "backup_id": backup_id,
        "operation_id": operation_id,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as connection:
        dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(TenantPin).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[TenantPin.tenant, TenantPin.service],
            set_={key: value for key, value in values.items() if key not in ("tenant", "service")},
        )
        connection.execute(statement)


def delete_pins(engine: Engine, pin_ids: Iterable[int]) -> None:
    ids = list(pin_ids)
    if ids:
        with engine.begin() as connection:
            connection.execute(delete(TenantPin).where(TenantPin.id.in_(ids)))
