"""The Nginx sites' share of the DNS layer: one owned rrset set per site host, planned with the tenants' (pure).

Called by ``planning.dns.plan_dns`` after the tenants' records are rendered, so the sites' and the tenants' records
are one diff of each zone: the tenants' full pass would otherwise delete site records as records of no tenant.
A site's records carry the owner mark with ``tenant=site:<name>`` (the plan's key for a site), so tenants' marks
keep their format and a site name can never be mistaken for a tenant's (tenant names hold no ``:``).

Only hosts under a managed zone get records (a site may live in a zone the platform does not serve). A host that
is both a site's and a tenant's is given to the one that holds the record now; when neither does, to the tenant
(Traefik's routes are the platform's own). The other gets a ``Conflict`` naming who keeps the host and no DNS
change at all this pass, like two tenants wanting one name (``core.dns``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.core.dns import OwnerMark, RRset, normalise_name
from reconciler.core.plan import Blocked
from reconciler.core.sites import SITE_KEY
from reconciler.planning.inputs import SiteHosts, ZoneState
from reconciler.planning.sites import site_key
from renderers.dns import host_rrsets, zone_for


@dataclass
class SiteRecords:
    """What the sites add to a DNS plan: desired rrsets by zone, owners to hold (no change) and why they wait."""

    by_zone: dict[str, list[RRset]] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    blocked: list[Blocked] = field(default_factory=list)


def observed_site_owners(zones: Mapping[str, ZoneState], owner: str) -> set[str]:
    """Keys (``site:<name>``) of every site that has a record of ours in the zones read."""
    return {
        r.owner.tenant
        for state in zones.values()
        for r in state.rrsets
        if r.owner is not None and r.owner.owner == owner and r.owner.tenant.startswith(SITE_KEY)
    }


def _holders(state: ZoneState, name: str, owner: str) -> set[str]:
    return {r.owner.tenant for r in state.rrsets if r.name == name and r.owner is not None and r.owner.owner == owner}


def plan_site_records(
    sites: SiteHosts,
    zones: Mapping[str, ZoneState],
    tenant_records: Mapping[str, Iterable[RRset]],
    owner: str,
) -> SiteRecords:
    """The sites' desired rrsets, given the tenants' (``tenant_records``: zone → rrsets), and the conflicts."""
    result = SiteRecords()
    result.held.update(site_key(name) for name in sites.keep)
    wanted_by: dict[tuple[str, str], set[str]] = {}
    for tenant_zone, rrsets in tenant_records.items():
        for rrset in rrsets:
            if rrset.owner is not None:
                wanted_by.setdefault((tenant_zone, rrset.name), set()).add(rrset.owner.tenant)
    for name, host in sorted(sites.hosts.items()):
        key = site_key(name)
        if name in sites.keep:
            continue
        zone = zone_for(host, zones)
        if zone is None:
            continue  # not a managed zone's name: published elsewhere, if at all
        state = zones[zone]
        if not state.readable:
            result.held.add(key)
            continue
        fqdn = normalise_name(host)
        tenants = sorted(wanted_by.get((zone, fqdn), set()))
        if tenants:
            if key in _holders(state, fqdn, owner):
                for tenant in tenants:
                    result.held.add(tenant)
                    message = (
                        f"tenant {tenant!r}: host {fqdn.rstrip('.')} is served by site {name!r} (Nginx), which "
                        "claimed it first; give the route another host or remove the site"
                    )
                    result.blocked.append(Blocked(tenant, "dns", "Conflict", message))
            else:
                result.held.add(key)
                message = (
                    f"site {name!r}: host = {fqdn.rstrip('.')!r} is a route host of tenant {tenants[0]!r}, which "
                    "claimed it first; give the site another host or remove the tenant's route"
                )
                result.blocked.append(Blocked(key, "dns", "Conflict", message))
                continue
        rrsets = host_rrsets(fqdn, sites.target, OwnerMark(owner, key))
        result.by_zone.setdefault(zone, []).extend(rrsets)
    return result
