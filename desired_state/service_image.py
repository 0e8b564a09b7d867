"""The one write into the desired state the reconciler makes: ``reconciler rollback`` points a tenant service
back at an image (``set_service_image``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select, update

from desired_state.tables import Tenant, TenantService


def set_service_image(engine: Engine, tenant: str, service: str, image: str) -> str | None:
    """Point a tenant service at ``image`` (an override in ``tenant_services``) and bump the tenant's generation.

    Returns the override it replaced (None: the service followed the catalog). Raises ``ValueError`` when the
    tenant or the service does not exist.
    """
    now = datetime.now(UTC)
    with engine.begin() as connection:
        tenant_id = connection.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar_one_or_none()
        if tenant_id is None:
            raise ValueError(f"tenant {tenant!r} is not in the tenants table")
        row = connection.execute(
            select(TenantService.id, TenantService.image).where(
                TenantService.tenant_id == tenant_id, TenantService.service == service
            )
        ).first()
        if row is None:
            raise ValueError(f"tenant {tenant!r} has no service {service!r}")
        connection.execute(update(TenantService).where(TenantService.id == row.id).values(image=image, updated_at=now))
        connection.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(generation=Tenant.generation + 1, updated_at=now)
        )
        previous: str | None = row.image
        return previous
