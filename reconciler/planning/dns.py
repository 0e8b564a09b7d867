"""The DNS layer of a plan: every host a running tenant is reached at gets its records; ours of anyone else go.

Desired records do not wait for readiness: the plan shows a new tenant's records at once, and the executor
publishes them only once the tenant's route is ready (a record that points at nothing makes resolvers cache a
failure). Records of invalid or held tenants are kept as they are; so are those in zones that could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from desired_state.specs import TenantSpec
from reconciler.core.dns import RRset, RRsetChange, apply_policy, diff_records
from reconciler.core.plan import Action, Blocked, Change, Refusal
from reconciler.core.sites import SITE_KEY
from reconciler.planning.inputs import DnsSettings, SiteHosts, ZoneState
from reconciler.planning.render_cache import RenderCache
from reconciler.planning.site_dns import observed_site_owners, plan_site_records
from renderers.dns import render_host_records


def to_change(change: RRsetChange) -> Change:
    rrset = change.rrset
    name = f"{rrset.name} {rrset.type}"
    if change.tenant.startswith(SITE_KEY):  # the diff's reasons say "tenant site:x"; a site is not a tenant
        site = change.tenant.removeprefix(SITE_KEY)
        change = replace(change, reason=change.reason.replace(f"tenant {change.tenant}", f"site {site}"))
    if change.changetype == "DELETE":
        return Change(
            Action.DELETE,
            "dns",
            change.tenant,
            name,
            change.reason,
            before=change.before,
            operation="delete",
            zone=change.zone,
        )
    action = Action.CREATE if change.before is None else Action.UPDATE
    return Change(
        action,
        "dns",
        change.tenant,
        name,
        change.reason,
        before=change.before,
        after=change.after,
        operation="create" if change.before is None else "update",
        zone=change.zone,
    )


def to_rrset_change(change: Change) -> RRsetChange:
    """Back to the PowerDNS driver's value (the executor sends these)."""
    if change.action is Action.DELETE:
        assert isinstance(change.before, RRset)
        return RRsetChange("DELETE", change.zone, change.tenant, change.reason, before=change.before)
    assert isinstance(change.after, RRset)
    before = change.before if isinstance(change.before, RRset) else None
    return RRsetChange("REPLACE", change.zone, change.tenant, change.reason, before, change.after)


def plan_dns(
    specs: Mapping[str, TenantSpec],
    zones: Mapping[str, ZoneState],
    settings: DnsSettings,
    *,
    owner: str,
    scope: frozenset[str] | None,
    keep: frozenset[str],
    sites: SiteHosts | None = None,
    cache: RenderCache | None = None,
) -> tuple[list[Change], list[Refusal], list[Blocked]]:
    """DNS changes for the tenants in ``scope`` (None: all, and our records of unknown tenants go), and for the
    Nginx sites in ``sites`` (``planning.site_dns``; None: site records are left as they are)."""
    blocked: list[Blocked] = []
    desired: dict[str, list[RRset]] = {zone: [] for zone, state in zones.items() if state.readable}
    held = set(keep)
    for name, spec in sorted(specs.items()):
        if spec.state != "running" or name in keep or (scope is not None and name not in scope):
            continue
        if cache is None:
            records = render_host_records(spec, settings.target, settings.zones, owner)
        else:
            records = cache.host_records(spec, settings.target, tuple(settings.zones), owner)
        if records.outside:
            managed = ", ".join(settings.zones) or "(none configured)"
            hosts = ", ".join(h.rstrip(".") for h in records.outside)
            blocked.append(
                Blocked(
                    name, "dns", "OutsideZones", f"tenant {name!r}: {hosts} outside every managed DNS zone ({managed})"
                )
            )
        unreadable = [z for z in records.by_zone if not zones.get(z, ZoneState(missing=True)).readable]
        if unreadable:
            state = zones.get(unreadable[0], ZoneState(missing=True))
            reason = "ZoneUnavailable" if state.error else "ZoneMissing"
            why = state.error or f"zone {unreadable[0]} does not exist on the PowerDNS server"
            blocked.append(Blocked(name, "dns", reason, why))
            held.add(name)
            continue
        for zone, rrsets in records.by_zone.items():
            desired[zone].extend(rrsets)
    if sites is None:
        held |= observed_site_owners(zones, owner)
    else:
        site_records = plan_site_records(sites, zones, desired, owner)
        held |= site_records.held
        blocked.extend(site_records.blocked)
        for site_zone, site_rrsets in site_records.by_zone.items():
            desired[site_zone].extend(site_rrsets)
    observed = {zone: state.rrsets for zone, state in zones.items() if state.readable}
    dns_plan = diff_records(desired, observed, owner=owner, tenants=scope, keep=frozenset(held))
    dns_plan = apply_policy(dns_plan, settings.policy, owner)
    changes = [to_change(c) for c in dns_plan.changes]
    refused = [Refusal(to_change(r.change), r.policy, r.reason) for r in dns_plan.refused]
    blocked.extend(Blocked(c.tenant, "dns", "Conflict", c.message) for c in dns_plan.conflicts)
    return changes, refused, blocked
