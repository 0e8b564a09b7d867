"""Render a tenant's DNS records from its spec and the platform's ingress target (pure).

Called by the runtime's ``PowerDnsPublisher`` for every tenant it publishes. A tenant's domain gets A/AAAA
records pointing at the ingress addresses, or one CNAME to the ingress name, in the managed zone with the
longest matching suffix. Every rrset carries the owner mark, so the diff can tell ours from foreign ones.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from desired_state.specs import TenantSpec
from reconciler.core.dns import OwnerMark, RRset, normalise_name

_HOSTNAME_RE = re.compile(r"^([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?\.)+$")


class OutsideZonesError(ValueError):
    """The tenant's domain lies in none of the managed zones: nothing can be published for it."""

    def __init__(self, tenant: str, domain: str, zones: Sequence[str]) -> None:
        self.tenant = tenant
        self.domain = domain
        self.zones = tuple(zones)
        if zones:
            accepted = f"a name under one of the managed zones {', '.join(zones)}"
            message = f"tenant {tenant!r}: domain = {domain!r} is outside every managed DNS zone; use {accepted}"
        else:
            message = f"tenant {tenant!r}: domain = {domain!r} cannot be published: no DNS zones are configured"
        super().__init__(message)


@dataclass(frozen=True)
class DnsTarget:
    """Where tenant names point: ingress addresses (A/AAAA) or an ingress host name (CNAME), and the TTL."""

    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    cname: str | None = None
    ttl: int = 60

    def __post_init__(self) -> None:
        for address in self.a:
            if not _is_ip(address, 4):
                raise ValueError(f"dns_target_a = {address!r} is not an IPv4 address such as 127.0.0.1")
        for address in self.aaaa:
            if not _is_ip(address, 6):
                raise ValueError(f"dns_target_aaaa = {address!r} is not an IPv6 address such as ::1")
        if self.cname is not None:
            name = normalise_name(self.cname)
            if len(name) > 254 or not _HOSTNAME_RE.match(name):
                raise ValueError(f"dns_target_cname = {self.cname!r} is not a host name such as ingress.example.com")
            if self.a or self.aaaa:
                raise ValueError("a CNAME target cannot be combined with A/AAAA targets (a CNAME stands alone)")
        elif not self.a and not self.aaaa:
            raise ValueError("no DNS target: set dns_target_a, dns_target_aaaa or dns_target_cname")
        if self.ttl < 1:
            raise ValueError(f"dns_ttl = {self.ttl} must be a positive number of seconds")


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text.strip()).version == version
    except ValueError:
        return False


@dataclass(frozen=True)
class TenantRecords:
    tenant: str
    zone: str
    rrsets: tuple[RRset, ...]


def normalise_zones(zones: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({normalise_name(zone) for zone in zones if zone.strip()}))


def zone_for(domain: str, zones: Iterable[str]) -> str | None:
    """The managed zone a domain belongs to: the longest zone that equals it or is a whole-label suffix."""
    name = normalise_name(domain)
    matches = [zone for zone in normalise_zones(zones) if name == zone or name.endswith(f".{zone}")]
    return max(matches, key=len, default=None)


def render_records(spec: TenantSpec, target: DnsTarget, zones: Sequence[str], owner: str) -> TenantRecords:
    """The rrsets a tenant should have. Raises ``OutsideZonesError`` when its domain is in no managed zone."""
    managed = normalise_zones(zones)
    zone = zone_for(spec.domain, managed)
    if zone is None:
        raise OutsideZonesError(spec.name, spec.domain, managed)
    rrsets = host_rrsets(spec.domain, target, OwnerMark(owner, spec.name))
    return TenantRecords(tenant=spec.name, zone=zone, rrsets=rrsets)


def host_rrsets(host: str, target: DnsTarget, mark: OwnerMark) -> tuple[RRset, ...]:
    """One host's rrsets: a CNAME to the ingress name, or A/AAAA to its addresses."""
    if target.cname is not None:
        return (RRset.of(host, "CNAME", target.ttl, [target.cname], mark),)
    return tuple(
        RRset.of(host, type_, target.ttl, addresses, mark)
        for type_, addresses in (("A", target.a), ("AAAA", target.aaaa))
        if addresses
    )


def tenant_hosts(spec: TenantSpec) -> tuple[str, ...]:
    """Every host name the tenant is reached at: its domain and the host of every routed service."""
    hosts = {normalise_name(spec.domain)}
    hosts.update(normalise_name(s.route.host) for s in spec.services if s.route is not None)
    return tuple(sorted(hosts))


@dataclass(frozen=True)
class HostRecords:
    """A tenant's rrsets for every host it is reached at, by zone, and the hosts no managed zone holds."""

    tenant: str
    by_zone: dict[str, tuple[RRset, ...]]
    outside: tuple[str, ...] = ()


def render_host_records(spec: TenantSpec, target: DnsTarget, zones: Sequence[str], owner: str) -> HostRecords:
    """The rrsets a tenant should have: one set (A/AAAA, or one CNAME) per host in ``tenant_hosts``, in the
    managed zone with the longest matching suffix. Hosts outside every zone are listed in ``outside``."""
    managed = normalise_zones(zones)
    mark = OwnerMark(owner, spec.name)
    by_zone: dict[str, list[RRset]] = {}
    outside: list[str] = []
    for host in tenant_hosts(spec):
        zone = zone_for(host, managed)
        if zone is None:
            outside.append(host)
            continue
        rrsets = host_rrsets(host, target, mark)
        by_zone.setdefault(zone, []).extend(rrsets)
    return HostRecords(spec.name, {zone: tuple(rrsets) for zone, rrsets in by_zone.items()}, tuple(outside))
