"""``plan_pass``: the one planning function, from (desired, observed, settings) to the plan a pass executes.

Called by the runtime for ``reconciler plan``, ``apply`` and every pass of ``reconciler run``, and by the
golden tests, so what is tested is what runs. Pure: render every tenant, diff every layer (networks and
volumes, containers, routes, DNS), after holding the tenants whose data volume is not theirs
(``planning.identity``), then the policies over the whole plan: ownership, pins, extra policies
(crash-loop holds), upsert-only DNS (inside the DNS layer) and last the mass-delete guard, which judges what the
desired state does to the whole fleet before the plan is narrowed to the pass's scope.

The canary analysis's weights (``PassContext.canaries``) shape the route layer only: a tenant's route is planned
from its spec with those weights (``planning.canary``), its route change says why, and ``PassPlan.routed`` hands
that spec to apply.

A tenant whose rendering or planning raises gets no change and a ``Blocked`` entry saying why; the others are
planned as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from desired_state.model import DesiredState, VolumeBinding
from desired_state.specs import TenantSpec
from reconciler.core.diff import diff
from reconciler.core.plan import Blocked, Change, Plan, Refusal
from reconciler.core.policies import mass_delete_guard, ownership, pinned
from reconciler.core.resources import DesiredTenant
from reconciler.planning.canary import with_canary_weights
from reconciler.planning.dns import plan_dns
from reconciler.planning.identity import check_identities
from reconciler.planning.inputs import Observed, PassContext, PlanSettings
from reconciler.planning.placement import place_tenants
from reconciler.planning.routes import plan_route, serving_containers
from renderers.containers import render_tenant
from renderers.traefik import RouteNaming

# Longest excerpt of an unexpected error kept in a tenant's status (it may quote input).
ERROR_EXCERPT = 300


@dataclass(frozen=True)
class PassPlan:
    plan: Plan
    rendered: dict[str, DesiredTenant] = field(default_factory=dict)
    # Tenants whose rendering or planning failed unexpectedly, with why (they get no change).
    failed: dict[str, str] = field(default_factory=dict)
    # Data-volume bindings for apply to record (``planning.identity``), of the tenants in scope.
    bindings: tuple[VolumeBinding, ...] = ()
    # Swarm only: data nodes chosen by this plan, (tenant, node), for apply to record (``planning.placement``).
    placements: tuple[tuple[str, str], ...] = ()
    # Specs whose routes carry the canary analysis's weights (``planning.canary``): apply routes these.
    routed: dict[str, TenantSpec] = field(default_factory=dict)


def _failure(tenant: str, stage: str, exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > ERROR_EXCERPT:
        text = text[: ERROR_EXCERPT - 1] + "…"
    return f"tenant {tenant!r}: {stage} failed: {text}"


def owned_counts(observed: Observed, owner: str) -> dict[str, int]:
    files = [f for f in (observed.routes or {}).values() if f.owner == owner]
    rrsets = [
        r
        for zone in (observed.zones or {}).values()
        for r in zone.rrsets
        if r.owner is not None and r.owner.owner == owner
    ]
    return {
        "containers": len(observed.snapshot.containers),
        "route files": len(files),
        "routers": sum(len(f.table.routers) for f in files),
        "DNS rrsets": len(rrsets),
    }


def plan_pass(
    desired: DesiredState, observed: Observed, settings: PlanSettings, context: PassContext | None = None
) -> PassPlan:
    context = context or PassContext()
    cache = context.cache
    naming = settings.naming
    failed: dict[str, str] = {}
    rendered: dict[str, DesiredTenant] = {}
    for name, spec in sorted(desired.tenants.items()):
        try:
            uid = desired.uids.get(name)
            if cache is None:
                rendered[name] = render_tenant(
                    spec, naming, healthcheck=settings.healthcheck, defaults=settings.container_defaults, uid=uid
                )
            else:
                rendered[name] = cache.tenant(
                    spec, naming, healthcheck=settings.healthcheck, defaults=settings.container_defaults, uid=uid
                )
        except Exception as exc:  # one tenant's surprise is its own error, never the pass's
            failed[name] = _failure(name, "rendering", exc)
    snapshot = observed.snapshot
    chosen: tuple[tuple[str, str], ...] = ()
    node_problems: list[Blocked] = []
    if settings.swarm is not None:
        placed = place_tenants(rendered, snapshot, context.placements, settings.swarm)
        rendered, chosen = placed.rendered, placed.chosen
        failed.update(placed.unplaced)
        node_problems = list(placed.problems)
    # A tenant whose data volume is another uid's, or lost, is held on every layer (its status says why).
    identity = check_identities(desired, snapshot, context.bindings, naming, frozenset(context.held) | set(failed))
    protected = frozenset(desired.errors) | frozenset(context.held) | frozenset(failed) | frozenset(identity.held)

    serving = serving_containers(snapshot, observed.routes, desired.tenants)  # interrupted replacements
    converged = cache.converged if cache is not None else None
    container_plan = diff(
        rendered,
        snapshot,
        protected=protected,
        pool=settings.pool,
        serving=serving,
        converged=converged,
        services=settings.swarm is not None,
    )
    if cache is not None:
        cache.trim()
    for block in container_plan.blocked:  # e.g. the subnet pool is exhausted: that tenant's error, not the pass's
        failed.setdefault(block.tenant, block.message)
    protected = protected | frozenset(failed)
    changes: list[Change] = [c for c in container_plan.changes if c.tenant not in failed]
    refused: list[Refusal] = []
    blocked: list[Blocked] = list(identity.held.values()) + node_problems
    routed: dict[str, TenantSpec] = {}

    if settings.routing is not None and observed.routes is not None:
        route_naming = RouteNaming(naming.prefix)
        by_tenant: dict[str, list[Change]] = {}
        for change in container_plan.changes:
            by_tenant.setdefault(change.tenant, []).append(change)
        candidates = set(desired.tenants) | set(observed.routes) | snapshot.tenants()
        known = desired.known  # a set built on every access: once per plan, not once per tenant
        for tenant in sorted(candidates - protected - set(desired.errors)):
            tenant_spec = desired.tenants.get(tenant)
            canary_reasons: tuple[str, ...] = ()
            if tenant_spec is not None and context.canaries.get(tenant):
                tenant_spec, canary_reasons = with_canary_weights(tenant_spec, context.canaries[tenant])
                if canary_reasons:
                    routed[tenant] = tenant_spec
            absent = "tenant absent" if tenant in known else "tenant no longer in the database"
            try:
                route_change = plan_route(
                    tenant,
                    tenant_spec,
                    snapshot,
                    by_tenant.get(tenant, []),
                    observed.routes.get(tenant),
                    naming=route_naming,
                    entrypoint=settings.routing.entrypoint,
                    owner=naming.owner,
                    absent_reason=absent,
                    cache=cache,
                )
            except Exception as exc:
                failed[tenant] = _failure(tenant, "route planning", exc)
                changes = [c for c in changes if c.tenant != tenant]
                continue
            if route_change is not None:
                if canary_reasons:
                    route_change = replace(route_change, reason=f"{route_change.reason}; {'; '.join(canary_reasons)}")
                changes.append(route_change)

    if settings.dns is not None and observed.zones is not None:
        specs = {n: s for n, s in desired.tenants.items() if n not in failed}
        keep = protected | frozenset(failed)
        try:
            dns_changes, dns_refused, dns_blocked = plan_dns(
                specs,
                observed.zones,
                settings.dns,
                owner=naming.owner,
                scope=None,
                keep=keep,
                sites=context.sites,
                cache=cache,
            )
        except Exception as exc:  # a DNS planning bug must not stop containers and routes
            dns_changes, dns_refused = [], []
            dns_blocked = [Blocked(t, "dns", "PlanFailed", _failure(t, "DNS planning", exc)) for t in sorted(specs)]
        changes.extend(dns_changes)
        refused.extend(dns_refused)
        blocked.extend(dns_blocked)

    blocked.extend(Blocked(t, "container", "PlanFailed", why) for t, why in sorted(failed.items()))
    plan = Plan.of([c for c in changes if c.tenant not in failed], tuple(refused), blocked=tuple(blocked))
    plan = ownership(plan, naming.owner)
    plan = pinned(plan, context.pins)
    for policy in context.policies:
        plan = policy(plan)
    plan = mass_delete_guard(
        plan,
        owned_counts(observed, naming.owner),
        settings.limits,
        allow=context.allow_mass_delete,
        recently=context.removed_recently,
        scope=context.scope,
    )
    bindings = tuple(b for b in identity.bind if context.scope is None or b.tenant in context.scope)
    placements = tuple((t, n) for t, n in chosen if t not in failed and (context.scope is None or t in context.scope))
    return PassPlan(
        plan=plan, rendered=rendered, failed=failed, bindings=bindings, routed=routed, placements=placements
    )
