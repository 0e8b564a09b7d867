"""DNS records as values, and the diff of desired records against observed zones (pure).

``renderers.dns`` builds the desired rrsets of each tenant; ``drivers.powerdns`` converts a zone it read into
the same ``RRset`` values; the runtime's ``PowerDnsPublisher`` calls ``diff_records`` once per pass over every
managed zone, filters the result with ``apply_policy`` and sends one PATCH per zone.

Ownership: an rrset is ours only if it carries our owner mark (an RRset comment
``tenant-reconciler owner=<owner id> tenant=<tenant>``). Unmarked rrsets, and rrsets marked by another owner
id, are never changed; when one of them occupies a tenant's name, that tenant gets a ``DnsConflict`` and no
change at all this pass.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

MARK_PREFIX = "tenant-reconciler"
_MARK_RE = re.compile(rf"^{MARK_PREFIX} owner=(?P<owner>\S+) tenant=(?P<tenant>\S+)$")

ChangeType = Literal["REPLACE", "DELETE"]
Policy = Literal["sync", "upsert-only"]


def normalise_name(name: str) -> str:
    """Owner names compare lowercased and fully qualified (the PowerDNS API wants the trailing dot)."""
    name = name.strip().lower()
    return name if name.endswith(".") else f"{name}."


@lru_cache(maxsize=4096)  # a fleet's records hold a few distinct contents; parsing addresses showed in profiles
def canonical_content(type_: str, content: str) -> str:
    """One spelling per record content, so an idle diff is empty whatever form the server echoes."""
    type_ = type_.upper()
    content = content.strip()
    if type_ in ("A", "AAAA"):
        try:
            return str(ipaddress.IPv4Address(content) if type_ == "A" else ipaddress.IPv6Address(content))
        except ValueError:
            return content  # the server validates contents; an odd one simply compares unequal
    if type_ in ("CNAME", "NS", "PTR"):
        return normalise_name(content)
    if type_ == "TXT":
        return content  # quoted strings: whitespace inside is significant
    return " ".join(content.split())


def types_conflict(a: str, b: str) -> bool:
    """Whether two rrsets cannot share a name: the same type, or a CNAME next to anything (RFC 1034 3.6.2)."""
    return a == b or a == "CNAME" or b == "CNAME"


@dataclass(frozen=True)
class OwnerMark:
    """Who made an rrset: our owner id (a setting) and the tenant it belongs to."""

    owner: str
    tenant: str

    def comment(self) -> str:
        return f"{MARK_PREFIX} owner={self.owner} tenant={self.tenant}"

    @classmethod
    def parse(cls, text: str) -> OwnerMark | None:
        match = _MARK_RE.match(text.strip())
        return cls(match["owner"], match["tenant"]) if match else None


@dataclass(frozen=True)
class RRset:
    """All records of one name and type; the same value for desired (renderer) and observed (driver) sides.

    Build with ``RRset.of`` so names and contents are normalised and records sorted."""

    name: str
    type: str
    ttl: int
    records: tuple[str, ...]
    owner: OwnerMark | None = None

    @classmethod
    def of(cls, name: str, type_: str, ttl: int, records: Iterable[str], owner: OwnerMark | None = None) -> RRset:
        type_ = type_.strip().upper()
        contents = sorted({canonical_content(type_, content) for content in records})
        return cls(normalise_name(name), type_, int(ttl), tuple(contents), owner)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.type)

    def describe(self) -> str:
        return f"{self.name} {self.type} {', '.join(self.records) or '(no records)'}"


@dataclass(frozen=True)
class RRsetChange:
    """One rrset change of a zone PATCH. REPLACE carries ``after`` (``before`` is None when it is new);
    DELETE carries ``before``."""

    changetype: ChangeType
    zone: str
    tenant: str
    reason: str
    before: RRset | None = None
    after: RRset | None = None

    @property
    def rrset(self) -> RRset:
        rrset = self.after or self.before
        assert rrset is not None, "a change has a before or an after"
        return rrset

    @property
    def symbol(self) -> str:
        if self.changetype == "DELETE":
            return "-"
        return "+" if self.before is None else "~"

    @property
    def sort_key(self) -> tuple[str, int, str, str]:
        # Within a zone DELETEs go first: PowerDNS checks CNAME exclusivity rrset by rrset in PATCH order.
        return (self.zone, 0 if self.changetype == "DELETE" else 1, self.rrset.name, self.rrset.type)

    def describe(self) -> str:
        return f"{self.symbol} dns {self.rrset.describe()} ({self.reason})"


@dataclass(frozen=True)
class DnsConflict:
    """A tenant's wanted rrset cannot be published because ``blocker`` holds its name."""

    tenant: str
    zone: str
    wanted: RRset
    blocker: RRset
    message: str


@dataclass(frozen=True)
class DnsRefusal:
    change: RRsetChange
    policy: str
    reason: str


@dataclass(frozen=True)
class DnsPlan:
    changes: tuple[RRsetChange, ...] = ()
    conflicts: tuple[DnsConflict, ...] = ()
    refused: tuple[DnsRefusal, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.changes

    def zones(self) -> list[str]:
        return sorted({c.zone for c in self.changes})

    def for_zone(self, zone: str) -> tuple[RRsetChange, ...]:
        return tuple(c for c in self.changes if c.zone == zone)

    def for_tenant(self, tenant: str) -> DnsPlan:
        return DnsPlan(
            changes=tuple(c for c in self.changes if c.tenant == tenant),
            conflicts=tuple(c for c in self.conflicts if c.tenant == tenant),
            refused=tuple(r for r in self.refused if r.change.tenant == tenant),
        )


def _holder(rrset: RRset, owner: str) -> str:
    """Who holds an rrset, for conflict messages."""
    if rrset.owner is None:
        return f"it is not ours (no owner mark '{MARK_PREFIX} owner={owner}')"
    if rrset.owner.owner != owner:
        return f"it belongs to another reconciler (owner id {rrset.owner.owner!r})"
    return f"it is held by tenant {rrset.owner.tenant}"


def _replace_reason(want: RRset, have: RRset | None) -> str:
    if have is None:
        return "record missing"
    reasons = []
    if have.owner != want.owner and have.owner is not None:
        reasons.append(f"taken over from tenant {have.owner.tenant}")
    if have.records != want.records:
        reasons.append(f"records {', '.join(have.records) or '(none)'} -> {', '.join(want.records)}")
    if have.ttl != want.ttl:
        reasons.append(f"ttl {have.ttl} -> {want.ttl}")
    return "; ".join(reasons) or "owner mark restored"


@dataclass(frozen=True)
class _Scope:
    owner: str
    tenants: frozenset[str] | None  # None: a full pass decides every tenant's records
    keep: frozenset[str]
    blocked: frozenset[str] = frozenset()  # tenants with a conflict: none of their records change

    def mutable(self, rrset: RRset) -> bool:
        """Ours, and its tenant's records are decided by this diff (so we may replace or delete it)."""
        mark = rrset.owner
        if mark is None or mark.owner != self.owner or mark.tenant in self.keep or mark.tenant in self.blocked:
            return False
        return self.tenants is None or mark.tenant in self.tenants

    def blocks(self, want: RRset, have: RRset) -> bool:
        """Whether ``have`` stays where ``want`` should go, and cannot share the name with it."""
        if not types_conflict(want.type, have.type) or self.mutable(have):
            return False
        # A tenant's own records never block it (they are replaced or deleted together).
        return not (have.owner is not None and have.owner.owner == self.owner and have.owner == want.owner)


def _contention(
    zone: str, wanted: list[RRset], observed: list[RRset], scope: _Scope
) -> tuple[list[RRset], list[DnsConflict]]:
    """Several tenants wanting one name: the one that holds it now wins, else the first by name."""
    by_tenant: dict[str, list[RRset]] = defaultdict(list)
    for rrset in wanted:
        assert rrset.owner is not None
        by_tenant[rrset.owner.tenant].append(rrset)
    if len(by_tenant) == 1:
        return wanted, []
    holders = {o.owner.tenant for o in observed if o.owner is not None and o.owner.owner == scope.owner}
    winner = min(by_tenant, key=lambda t: (t not in holders, t))
    conflicts = [
        DnsConflict(
            tenant,
            zone,
            rrsets[0],
            by_tenant[winner][0],
            f"{rrsets[0].name} is also wanted by tenant {winner}, which keeps it; give one of them another domain",
        )
        for tenant, rrsets in sorted(by_tenant.items())
        if tenant != winner
    ]
    return by_tenant[winner], conflicts


def _zone_conflicts(
    zone: str, desired: list[RRset], observed: list[RRset], scope: _Scope
) -> tuple[list[RRset], list[DnsConflict]]:
    """Split a zone's desired rrsets into publishable ones and conflicts with rrsets we may not change."""
    wanted_by_name: dict[str, list[RRset]] = defaultdict(list)
    for rrset in desired:
        wanted_by_name[rrset.name].append(rrset)
    observed_by_name: dict[str, list[RRset]] = defaultdict(list)
    for rrset in observed:
        observed_by_name[rrset.name].append(rrset)

    publishable: list[RRset] = []
    conflicts: list[DnsConflict] = []
    for name in sorted(wanted_by_name):
        present = observed_by_name.get(name, [])
        winners, lost = _contention(zone, wanted_by_name[name], present, scope)
        conflicts.extend(lost)
        for want in winners:
            blockers = [o for o in present if scope.blocks(want, o)]
            if blockers:
                blocker = blockers[0]
                message = (
                    f"{blocker.describe()} already exists and {_holder(blocker, scope.owner)}; "
                    f"nothing was overwritten (remove it or give the tenant another domain)"
                )
                assert want.owner is not None
                conflicts.append(DnsConflict(want.owner.tenant, zone, want, blocker, message))
            else:
                publishable.append(want)
    return publishable, conflicts


def diff_records(
    desired: Mapping[str, Iterable[RRset]],
    observed: Mapping[str, Iterable[RRset]],
    *,
    owner: str,
    tenants: frozenset[str] | None,
    keep: frozenset[str] = frozenset(),
) -> DnsPlan:
    """Changes that make the observed zones carry exactly the desired records of the decided tenants.

    ``desired`` and ``observed`` map zone names to rrsets; every desired rrset carries our owner mark.
    ``tenants`` are the tenants whose complete desired records are given (their other records of ours go);
    None means every tenant (a full pass), so our records of tenants without desired records are deleted.
    Tenants in ``keep`` (present in the database but invalid) get no change at all.
    """
    unknown = sorted(set(desired) - set(observed))
    if unknown:
        raise ValueError(f"desired records for zones that were not observed: {', '.join(unknown)}")
    desired_lists = {zone: list(rrsets) for zone, rrsets in desired.items()}
    for zone, rrsets in desired_lists.items():
        for rrset in rrsets:
            if rrset.owner is None or rrset.owner.owner != owner:
                raise ValueError(f"desired rrset {rrset.describe()} in {zone} lacks our owner mark (owner {owner!r})")
    wanting = frozenset(r.owner.tenant for rrsets in desired_lists.values() for r in rrsets if r.owner is not None)
    observed_lists = {zone: list(rrsets) for zone, rrsets in observed.items()}

    # A conflicted tenant gets no change anywhere this pass (not even removal of its old name), so its records
    # stay and may in turn block others: repeat until the set of blocked tenants stops growing.
    blocked: frozenset[str] = frozenset()
    while True:
        scope = _Scope(owner, None if tenants is None else tenants | wanting, keep, blocked)
        publishable: dict[str, list[RRset]] = {}
        conflicts: list[DnsConflict] = []
        for zone, present in observed_lists.items():
            wanted = [r for r in desired_lists.get(zone, []) if r.owner is not None and r.owner.tenant not in keep]
            publishable[zone], zone_conflicts = _zone_conflicts(zone, wanted, present, scope)
            conflicts.extend(zone_conflicts)
        now_blocked = blocked | frozenset(c.tenant for c in conflicts)
        if now_blocked == blocked:
            break
        blocked = now_blocked

    changes: list[RRsetChange] = []
    for zone, present in observed_lists.items():
        wanted_keys = {r.key: r for r in publishable[zone] if r.owner is not None and r.owner.tenant not in blocked}
        by_key = {r.key: r for r in present}
        for key, want in wanted_keys.items():
            have = by_key.get(key)
            if have != want:
                assert want.owner is not None
                changes.append(RRsetChange("REPLACE", zone, want.owner.tenant, _replace_reason(want, have), have, want))
        for have in present:
            if have.key in wanted_keys or not scope.mutable(have):
                continue
            assert have.owner is not None
            tenant = have.owner.tenant
            if tenant in wanting:
                reason = f"no longer among tenant {tenant}'s records (its domain or the target changed)"
            else:
                reason = f"tenant {tenant} is not published"
            changes.append(RRsetChange("DELETE", zone, tenant, reason, before=have))
    return DnsPlan(
        changes=tuple(sorted(changes, key=lambda c: c.sort_key)),
        conflicts=tuple(sorted(conflicts, key=lambda c: (c.tenant, c.zone, c.wanted.key))),
    )


# ----------------------------------------------------------------------------- policies (plan -> plan filters)


def ownership(plan: DnsPlan, owner: str) -> DnsPlan:
    """Defence in depth: refuse any change to an existing rrset that does not carry our owner mark."""
    kept: list[RRsetChange] = []
    refused = list(plan.refused)
    for change in plan.changes:
        mark = change.before.owner if change.before is not None else None
        if change.before is None or (mark is not None and mark.owner == owner):
            kept.append(change)
        else:
            reason = f"{change.before.describe()} does not carry owner mark {owner!r}"
            refused.append(DnsRefusal(change, "ownership", reason))
    return DnsPlan(changes=tuple(kept), conflicts=plan.conflicts, refused=tuple(refused))


def upsert_only(plan: DnsPlan) -> DnsPlan:
    """Never delete. A REPLACE that could only succeed after a withheld DELETE at its name (CNAME next to
    another type) is withheld too, so the PATCH is not rejected."""
    deletes = [c for c in plan.changes if c.changetype == "DELETE"]
    refused = list(plan.refused)
    refused.extend(DnsRefusal(c, "upsert-only", "policy upsert-only never deletes records") for c in deletes)
    kept: list[RRsetChange] = []
    for change in plan.changes:
        if change.changetype == "DELETE":
            continue
        clash = next(
            (
                d
                for d in deletes
                if d.zone == change.zone
                and d.rrset.name == change.rrset.name
                and types_conflict(d.rrset.type, change.rrset.type)
            ),
            None,
        )
        if clash is None:
            kept.append(change)
        else:
            reason = (
                f"{change.rrset.name} {change.rrset.type} cannot coexist with {clash.rrset.type}, "
                "which policy upsert-only does not delete"
            )
            refused.append(DnsRefusal(change, "upsert-only", reason))
    return DnsPlan(changes=tuple(kept), conflicts=plan.conflicts, refused=tuple(refused))


def apply_policy(plan: DnsPlan, policy: Policy, owner: str) -> DnsPlan:
    plan = ownership(plan, owner)
    return upsert_only(plan) if policy == "upsert-only" else plan
