"""Read and write tenants' Swarm data nodes (``tenant_placements``).

Called by the pass (``runtime.passes.reconcile``: read before planning, the plan's new choices recorded after it,
like the data-volume bindings) and by ``reconciler swarm move-data`` (the explicit, logged move). A choice is
recorded once and only a move changes it, so the data volume is found again after the reconciler restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from desired_state.placement_tables import TenantPlacement

log = logging.getLogger("reconciler.placement")


def read_placements(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(select(TenantPlacement.tenant, TenantPlacement.node)).all()
    return {str(tenant): str(node) for tenant, node in rows}


def record_placements(engine: Engine, chosen: Iterable[tuple[str, str]], volume_of: dict[str, str]) -> None:
    """Record new choices; a tenant placed meanwhile by another pass keeps that placement (first writer wins)."""
    now = datetime.now(UTC)
    for tenant, node in chosen:
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(TenantPlacement).values(
                        tenant=tenant,
                        node=node,
                        volume=volume_of.get(tenant, ""),
                        note="chosen",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            continue
        log.info("tenant=%s data placed on node %s", tenant, node, extra={"tenant": tenant})


def move_placement(engine: Engine, tenant: str, node: str) -> str | None:
    """Point the tenant's data at ``node`` (after its data was restored there); the old node, or None."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        old = connection.execute(select(TenantPlacement.node).where(TenantPlacement.tenant == tenant)).scalar()
        if old is None:
            return None
        connection.execute(
            update(TenantPlacement)
            .where(TenantPlacement.tenant == tenant)
            .values(node=node, note=f"moved from {old}", updated_at=now)
        )
    log.warning("tenant=%s data node moved %s -> %s", tenant, old, node, extra={"tenant": tenant})
    return str(old)
