"""The DNS stage: ``PowerDnsPublisher`` implements ``runtime.passes.stages.DnsPublisher`` over PowerDNS.

Built by ``runtime.wiring`` (``build_powerdns_publisher``) when ``powerdns_url`` is set; the reconcile pass calls
``sync`` once at its start, then reads ``condition`` (for tenant status) and ``published`` (removal of a leaving
tenant's routes and containers waits until its record is gone). One ``sync``:

render (``renderers.dns``) → one GET per managed zone (a missing zone is created when allowed) → diff
(``core.dns.diff_records``) → policies (ownership, upsert-only) → at most one PATCH per zone.

A PATCH is atomic on the server, so when PowerDNS rejects one rrset (422) the tenant it names is set aside and
the zone's other changes are sent again: one tenant's bad record never blocks the others. An unreachable
server or a rejected API key ends the sync with ``TransientError`` / ``UnauthorizedError`` after every tenant
got its ``DNSReady=False`` condition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from desired_state.model import Condition
from desired_state.specs import TenantSpec
from reconciler.core.dns import (
    DnsPlan,
    Policy,
    RRset,
    RRsetChange,
    apply_policy,
    canonical_content,
    diff_records,
)
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.drivers.powerdns import PowerDnsDriver, RejectedError, UnauthorizedError
from reconciler.runtime.settings import Settings
from renderers.containers import Naming
from renderers.dns import DnsTarget, OutsideZonesError, TenantRecords, normalise_zones, render_records

log = logging.getLogger("reconciler.dns")

DNS_READY = "DNSReady"
# A rejected PATCH is sent again without the tenants it names; past this many rejections in one zone the
# remaining changes wait for the next pass, so a bad setting cannot turn a pass into one PATCH per tenant.
MAX_REJECTIONS_PER_ZONE = 3
_WAITING = "not published: waiting for the route (or, without routing, a running container)"


def _ready(status: bool, reason: str, message: str = "") -> Condition:
    return Condition(DNS_READY, "True" if status else "False", reason, message)


@dataclass
class DnsPass:
    """What one ``sync`` (or ``plan``) found and decided; ``plan`` is after policies."""

    plan: DnsPlan = field(default_factory=DnsPlan)
    observed: dict[str, tuple[RRset, ...]] = field(default_factory=dict)
    rendered: dict[str, TenantRecords] = field(default_factory=dict)
    # Per-tenant problems found before or while applying, as DNSReady=False conditions.
    problems: dict[str, Condition] = field(default_factory=dict)
    applied: list[RRsetChange] = field(default_factory=list)
    # Zones the server says do not exist (and were not created): nothing of ours can be in them.
    missing: set[str] = field(default_factory=set)


class PowerDnsPublisher:
    def __init__(
        self,
        driver: PowerDnsDriver,
        *,
        owner: str,
        zones: Sequence[str],
        target: DnsTarget,
        policy: Policy = "sync",
        create_zones: bool = True,
    ) -> None:
        self.driver = driver
        self.owner = owner
        self.zones = normalise_zones(zones)
        self.target = target
        self.policy: Policy = policy
        self.create_zones = create_zones
        self._lock = threading.Lock()
        self._conditions: dict[str, Condition] = {}
        # Last known content of each zone (after our PATCH); a zone absent here was never read successfully.
        self._zones: dict[str, tuple[RRset, ...]] = {}

    # --- the DnsPublisher protocol --------------------------------------------------------------------------

    def sync(
        self,
        publish: Mapping[str, TenantSpec],
        retire: Sequence[str],
        scope: frozenset[str] | None,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        with self._lock:
            dns_pass = DnsPass()
            try:
                self._observe_and_diff(dns_pass, publish, retire, scope, keep)
                self._apply(dns_pass)
            except (TransientError, UnauthorizedError) as exc:
                self._server_failed(exc, publish, retire, keep)
                raise
            finally:
                self._remember(dns_pass)
            self._set_conditions(dns_pass, publish, retire, scope, keep)

    def condition(self, tenant: str) -> Condition:
        with self._lock:
            return self._conditions.get(tenant, _ready(False, "Pending", _WAITING))

    def published(self, tenant: str) -> bool:
        """Whether a record of ours for the tenant still exists and this publisher will remove it.

        With policy upsert-only nothing is ever removed, so removal never waits for DNS. A zone that was
        never been read (server down since start) may hold the tenant's record: assume they do."""
        if self.policy == "upsert-only":
            return False
        with self._lock:
            if not self._zones:
                return True
            return any(self._holds(tenant, rrsets) for rrsets in self._zones.values())

    # --- planning without effects (for ``reconciler plan``) ------------------------------------------------

    def plan(
        self,
        publish: Mapping[str, TenantSpec],
        retire: Sequence[str],
        scope: frozenset[str] | None,
        keep: frozenset[str] = frozenset(),
    ) -> DnsPass:
        """What ``sync`` would change now (reads every zone, writes nothing)."""
        with self._lock:
            dns_pass = DnsPass()
            self._observe_and_diff(dns_pass, publish, retire, scope, keep, create=False)
            return dns_pass

    def close(self) -> None:
        self.driver.close()

    # --- steps ---------------------------------------------------------------------------------------------

    def _holds(self, tenant: str, rrsets: tuple[RRset, ...]) -> bool:
        return any(r.owner is not None and r.owner.owner == self.owner and r.owner.tenant == tenant for r in rrsets)

    def _observe_and_diff(
        self,
        dns_pass: DnsPass,
        publish: Mapping[str, TenantSpec],
        retire: Sequence[str],
        scope: frozenset[str] | None,
        keep: frozenset[str],
        *,
        create: bool = True,
    ) -> None:
        for name, spec in sorted(publish.items()):
            if name in keep:
                continue
            try:
                dns_pass.rendered[name] = render_records(spec, self.target, self.zones, self.owner)
            except OutsideZonesError as exc:
                dns_pass.problems[name] = _ready(False, "OutsideZones", str(exc))

        unreadable: set[str] = set()
        for zone in self.zones:
            try:
                rrsets = self._read_zone(zone, create=create)
            except (TransientError, UnauthorizedError):
                raise  # the server as a whole: no zone can be trusted this pass
            except PermanentError as exc:
                log.error("dns zone %s: %s", zone, exc)
                unreadable.add(zone)
                self._zone_problem(dns_pass, zone, _ready(False, "ZoneUnavailable", str(exc)))
                continue
            if rrsets is None:
                unreadable.add(zone)
                dns_pass.missing.add(zone)
                if self.create_zones:
                    message = f"zone {zone} does not exist yet (created on the next sync)"
                else:
                    message = f"zone {zone} does not exist on the PowerDNS server and powerdns_create_zones is off"
                self._zone_problem(dns_pass, zone, _ready(False, "ZoneMissing", message))
                continue
            dns_pass.observed[zone] = rrsets

        # Tenants whose zone could not be read get no change anywhere this pass (their old records stay).
        held = keep | frozenset(t for t, records in dns_pass.rendered.items() if records.zone in unreadable)
        desired: dict[str, list[RRset]] = {zone: [] for zone in dns_pass.observed}
        for name, records in dns_pass.rendered.items():
            if name not in held:
                desired[records.zone].extend(records.rrsets)
        decided = None if scope is None else frozenset(scope) | frozenset(publish) | frozenset(retire)
        plan = diff_records(desired, dns_pass.observed, owner=self.owner, tenants=decided, keep=held)
        dns_pass.plan = apply_policy(plan, self.policy, self.owner)

    def _read_zone(self, zone: str, *, create: bool) -> tuple[RRset, ...] | None:
        rrsets = self.driver.observe_zone(zone)
        if rrsets is not None or not (create and self.create_zones):
            return rrsets
        created = self.driver.create_zone(zone)
        # 409: someone created it between our GET and POST; read what is there.
        return created if created is not None else self.driver.observe_zone(zone)

    def _zone_problem(self, dns_pass: DnsPass, zone: str, problem: Condition) -> None:
        for name, records in dns_pass.rendered.items():
            if records.zone == zone:
                dns_pass.problems.setdefault(name, problem)

    def _apply(self, dns_pass: DnsPass) -> None:
        for zone in dns_pass.plan.zones():
            changes = list(dns_pass.plan.for_zone(zone))
            rejections = 0
            while changes:
                try:
                    self.driver.patch_zone(zone, changes)
                except RejectedError as exc:
                    rejections += 1
                    culprits = rejected_tenants(changes, exc)
                    if rejections >= MAX_REJECTIONS_PER_ZONE:
                        culprits = {c.tenant for c in changes}
                    for tenant in sorted(culprits):
                        log.error("tenant=%s dns change rejected: %s", tenant, exc, extra={"tenant": tenant})
                        dns_pass.problems[tenant] = _ready(False, "Rejected", str(exc))
                    changes = [c for c in changes if c.tenant not in culprits]
                    continue
                except (TransientError, UnauthorizedError):
                    raise
                except PermanentError as exc:
                    for tenant in sorted({c.tenant for c in changes}):
                        log.error("tenant=%s dns update failed: %s", tenant, exc, extra={"tenant": tenant})
                        dns_pass.problems[tenant] = _ready(False, "Rejected", str(exc))
                    break
                for change in changes:
                    log.info(
                        "tenant=%s dns %s %s (%s)",
                        change.tenant,
                        change.symbol,
                        change.rrset.describe(),
                        change.reason,
                        extra={"tenant": change.tenant},
                    )
                dns_pass.applied.extend(changes)
                break

    def _remember(self, dns_pass: DnsPass) -> None:
        """Zone contents after this sync: what we read, with the changes the server accepted."""
        for zone, rrsets in dns_pass.observed.items():
            by_key = {r.key: r for r in rrsets}
            for change in dns_pass.applied:
                if change.zone != zone:
                    continue
                if change.after is None:
                    by_key.pop(change.rrset.key, None)
                else:
                    by_key[change.after.key] = change.after
            self._zones[zone] = tuple(by_key.values())
        for zone in dns_pass.missing:
            self._zones[zone] = ()

    def _server_failed(
        self, exc: ReconcileError, publish: Mapping[str, TenantSpec], retire: Sequence[str], keep: frozenset[str]
    ) -> None:
        # No log line here: the caller (the reconcile pass) logs the raised error once.
        reason = "Unauthorized" if isinstance(exc, UnauthorizedError) else "ServerUnavailable"
        for name in [*publish, *retire]:
            if name not in keep:
                self._conditions[name] = _ready(False, reason, str(exc))

    def _set_conditions(
        self,
        dns_pass: DnsPass,
        publish: Mapping[str, TenantSpec],
        retire: Sequence[str],
        scope: frozenset[str] | None,
        keep: frozenset[str],
    ) -> None:
        conflicts = {c.tenant: c for c in reversed(dns_pass.plan.conflicts)}
        refused = {r.change.tenant: r for r in dns_pass.plan.refused}
        for name in publish:
            if name in keep:
                continue
            if name in dns_pass.problems:
                self._conditions[name] = dns_pass.problems[name]
            elif name in conflicts:
                self._conditions[name] = _ready(False, "Conflict", conflicts[name].message)
            elif name in refused and refused[name].change.changetype == "REPLACE":
                self._conditions[name] = _ready(False, "Refused", refused[name].reason)
            else:
                self._conditions[name] = self._publication(dns_pass.rendered[name])
        for name in retire:
            if name in keep:
                continue
            if name in dns_pass.problems:
                self._conditions[name] = dns_pass.problems[name]
            elif not any(self._holds(name, rrsets) for rrsets in self._zones.values()):
                self._conditions[name] = _ready(False, "Unpublished", "the tenant's records were removed")
            elif self.policy == "upsert-only":
                self._conditions[name] = _ready(
                    False, "RetainedByPolicy", "policy upsert-only keeps the records of a tenant that goes away"
                )
            else:
                self._conditions[name] = _ready(False, "Removing", "the tenant's records are being removed")
        # Tenants of this pass that are neither published nor retired (e.g. running, route not ready yet).
        # After a full pass they hold no record of ours: forget them (``condition`` answers Pending anyway),
        # so tenants deleted long ago do not pile up here.
        others = set(self._conditions) if scope is None else set(scope)
        for name in others - set(publish) - set(retire) - keep:
            if scope is None:
                self._conditions.pop(name, None)
            else:
                self._conditions[name] = _ready(False, "Pending", _WAITING)

    def _publication(self, records: TenantRecords) -> Condition:
        present = set(self._zones.get(records.zone, ()))
        missing = [r for r in records.rrsets if r not in present]
        if missing:
            return _ready(False, "Pending", f"not yet published: {'; '.join(r.describe() for r in missing)}")
        return _ready(True, "Published", "; ".join(r.describe() for r in records.rrsets))


def rejected_tenants(changes: Sequence[RRsetChange], exc: RejectedError) -> set[str]:
    """The tenants whose changes a 422 is about: the rrset it names, and every change carrying the record
    content it refused (a bad target would fail for each tenant in turn). Unattributable: all of them."""
    culprits = {c.tenant for c in changes if c.rrset.key == (exc.name, exc.type)}
    if exc.content is not None:
        culprits |= {
            c.tenant
            for c in changes
            if c.after is not None
            and c.after.type == exc.type
            and canonical_content(exc.type, exc.content) in c.after.records
        }
    return culprits or {c.tenant for c in changes}


def build_powerdns_publisher(settings: Settings, naming: Naming) -> PowerDnsPublisher:
    """The DNS stage from settings (called by ``runtime.wiring`` when ``powerdns_url`` is set)."""
    if settings.powerdns_url is None:
        raise ValueError("powerdns_url is not set")
    if settings.powerdns_api_key is None:
        raise ValueError("powerdns_api_key is not set (RECONCILER_POWERDNS_API_KEY); PowerDNS needs the API key")
    zones = settings.powerdns_zones or ([settings.base_domain] if settings.base_domain else [])
    if not zones:
        raise ValueError("powerdns_zones is empty: name the zones tenant records go in (or set base_domain)")
    cname = settings.dns_target_cname
    target = DnsTarget(
        a=() if cname else tuple(settings.dns_target_a),
        aaaa=() if cname else tuple(settings.dns_target_aaaa),
        cname=cname,
        ttl=settings.dns_ttl,
    )
    driver = PowerDnsDriver(
        settings.powerdns_url, settings.powerdns_api_key.get_secret_value(), settings.powerdns_server_id
    )
    policy: Policy = "upsert-only" if settings.powerdns_policy == "upsert-only" else "sync"
    return PowerDnsPublisher(
        driver,
        owner=naming.owner,
        zones=zones,
        target=target,
        policy=policy,
        create_zones=settings.powerdns_create_zones,
    )
