"""The canary analysis's share of a plan: the weights it imposes on a tenant's two-version services.

Called by ``planning.pass_plan`` for every tenant with canaries (``PassContext.canaries``, read from
``tenant_canaries`` by the runtime, like pins). A canary applies only while the service's versions are still its
two images (stable first, canary second); after the operator changed them it is stale and ignored. The route is
then rendered from the weighted spec, so a back-out is an ordinary route change (the canary's Traefik service
leaves the weighted split, confirmed through Traefik's API by the routing stage) and the plan says why. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from desired_state.specs import ServiceSpec, TenantSpec
from reconciler.core.canary_steps import Canary, override_of


def _weighted(service: ServiceSpec, canaries: Sequence[Canary]) -> tuple[ServiceSpec, str | None]:
    if len(service.versions) != 2:
        return service, None
    stable, canary = service.versions
    for found in canaries:
        override = override_of(found)
        if found.service != service.name or override is None or not found.same_pair(stable.image, canary.image):
            continue
        if (stable.weight, canary.weight) == (override.stable_weight, override.canary_weight):
            return service, None
        versions = (
            stable.model_copy(update={"weight": override.stable_weight}),
            canary.model_copy(update={"weight": override.canary_weight}),
        )
        return service.model_copy(update={"versions": versions}), override.reason
    return service, None


def with_canary_weights(spec: TenantSpec, canaries: Sequence[Canary]) -> tuple[TenantSpec, tuple[str, ...]]:
    """The spec routing uses (the analysis's weights instead of the database's), and why, per changed service."""
    if not canaries:
        return spec, ()
    services: list[ServiceSpec] = []
    reasons: list[str] = []
    for service in spec.services:
        weighted, reason = _weighted(service, canaries)
        services.append(weighted)
        if reason is not None:
            reasons.append(reason)
    if not reasons:
        return spec, ()
    return spec.model_copy(update={"services": tuple(services)}), tuple(reasons)
