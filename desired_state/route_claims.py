"""Cross-tenant route check: a host and path belong to one tenant only (pure).

Called by the loader (``desired_state.load``) after every tenant was validated on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from desired_state.specs import RouteSpec, SpecError, TenantSpec


def route_conflicts(tenants: Mapping[str, TenantSpec], claim_order: Mapping[str, int]) -> dict[str, SpecError]:
    """Tenants whose route overlaps a route another tenant claimed first, each with its error.

    When two tenants' routes overlap, the tenant whose claim is newer (higher ``claim_order``, e.g. the row id)
    gets the error and the older keeps serving. Absent tenants claim nothing.
    """
    owners: list[tuple[RouteSpec, str]] = []
    errors: dict[str, SpecError] = {}
    for name in sorted(tenants, key=lambda n: (claim_order.get(n, 0), n)):
        spec = tenants[name]
        if spec.state == "absent":
            continue
        claimed: list[tuple[RouteSpec, str]] = []
        for service in spec.services:
            route = service.route
            if route is None:
                continue
            holder = next((owner for owned, owner in owners if owned.overlaps(route)), None)
            if holder is not None:
                errors[name] = SpecError(
                    name,
                    f"services.{service.name}.route",
                    route.address,
                    f"overlaps a route of tenant {holder!r}, which claimed it first; choose another host or path",
                )
                break
            claimed.append((route, name))
        if name not in errors:
            owners.extend(claimed)
    return errors
