"""The DNS stage: ``PowerDnsPublisher`` observes the managed zones and applies the plan's DNS changes.

Built by ``runtime.wiring`` (``build_powerdns_publisher``) when ``powerdns_url`` is set. In a pass:
``observe`` reads every managed zone (one GET each) into ``ZoneState`` values for the planner; the pass applies
the plan's DNS deletions first (``apply``), then containers and routes, then the plan's new and changed records
of tenants whose route is ready (``apply`` again); ``settle`` turns the plan and what was applied into each
tenant's ``DNSReady`` condition, read with ``condition``. At most one PATCH per zone per ``apply``.

A PATCH is atomic on the server, so when PowerDNS rejects one rrset (422) the tenant it names is set aside and
the zone's other changes are sent again: one tenant's bad record never blocks the others. An unreachable
server or a rejected API key raises ``TransientError`` / ``UnauthorizedError`` from ``observe`` or ``apply``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence

from desired_state.model import Condition
from desired_state.specs import TenantSpec
from reconciler.core.dns import Policy, RRset, canonical_content
from reconciler.core.errors import PermanentError, ReconcileError, TransientError
from reconciler.core.plan import Action, Change, Plan
from reconciler.drivers.powerdns import PowerDnsDriver, RejectedError, UnauthorizedError
from reconciler.planning import DnsSettings, ZoneState
from reconciler.planning.dns import plan_dns, to_rrset_change
from reconciler.runtime.passes.stages import DnsOutcome
from reconciler.runtime.settings import Settings
from renderers.containers import Naming
from renderers.dns import DnsTarget, normalise_zones

log = logging.getLogger("reconciler.dns")

DNS_READY = "DNSReady"
# A rejected PATCH is sent again without the tenants it names; past this many rejections in one zone the
# remaining changes wait for the next pass, so a bad setting cannot turn a pass into one PATCH per tenant.
MAX_REJECTIONS_PER_ZONE = 3
_WAITING = "not published: waiting for the route (or, without routing, a running container)"


def _ready(status: bool, reason: str, message: str = "") -> Condition:
    return Condition(DNS_READY, "True" if status else "False", reason, message)


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
        # Last known content of each zone (after our PATCHes); a zone absent here was never read successfully.
        self._zones: dict[str, tuple[RRset, ...]] = {}
        self._missing: set[str] = set()

    @property
    def settings(self) -> DnsSettings:
        return DnsSettings(zones=self.zones, target=self.target, policy=self.policy)

    # --- observe --------------------------------------------------------------------------------------------

    def observe(self) -> dict[str, ZoneState]:
        """Every managed zone as the planner needs it; raises when the server as a whole cannot be used."""
        states: dict[str, ZoneState] = {}
        for zone in self.zones:
            try:
                rrsets = self.driver.observe_zone(zone)
            except (TransientError, UnauthorizedError):
                raise
            except PermanentError as exc:
                log.error("dns zone %s: %s", zone, exc)
                states[zone] = ZoneState(error=str(exc))
                continue
            with self._lock:
                if rrsets is None:
                    self._missing.add(zone)
                    self._zones[zone] = ()
                    states[zone] = ZoneState(missing=True, will_create=self.create_zones)
                else:
                    self._missing.discard(zone)
                    self._zones[zone] = rrsets
                    states[zone] = ZoneState(rrsets=rrsets)
        return states

    # --- apply ----------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> DnsOutcome:
        outcome = DnsOutcome()
        for zone in sorted({c.zone for c in changes}):
            self._ensure_zone(zone)
            self._patch(zone, [c for c in changes if c.zone == zone], outcome)
        return outcome

    def _ensure_zone(self, zone: str) -> None:
        with self._lock:
            missing = zone in self._missing
        if not missing:
            return
        created = self.driver.create_zone(zone)
        with self._lock:
            self._missing.discard(zone)
            self._zones[zone] = created or ()

    def _patch(self, zone: str, changes: list[Change], outcome: DnsOutcome) -> None:
        rejections = 0
        while changes:
            try:
                # Within a zone DELETEs go first: PowerDNS checks CNAME exclusivity rrset by rrset in PATCH order.
                self.driver.patch_zone(zone, sorted((to_rrset_change(c) for c in changes), key=lambda r: r.sort_key))
            except RejectedError as exc:
                rejections += 1
                culprits = rejected_tenants(changes, exc)
                if rejections >= MAX_REJECTIONS_PER_ZONE:
                    culprits = {c.tenant for c in changes}
                for tenant in sorted(culprits):
                    log.error("tenant=%s dns change rejected: %s", tenant, exc, extra={"tenant": tenant})
                    outcome.problems[tenant] = _ready(False, "Rejected", str(exc))
                changes = [c for c in changes if c.tenant not in culprits]
                continue
            except (TransientError, UnauthorizedError):
                raise
            except PermanentError as exc:
                for tenant in sorted({c.tenant for c in changes}):
                    log.error("tenant=%s dns update failed: %s", tenant, exc, extra={"tenant": tenant})
                    outcome.problems[tenant] = _ready(False, "Rejected", str(exc))
                return
            for change in changes:
                log.info(
                    "tenant=%s dns %s %s (%s)",
                    change.tenant,
                    change.action.value,
                    change.name,
                    change.reason,
                    extra={"tenant": change.tenant, "kind": "dns", "action": change.action.name.lower()},
                )
            outcome.applied.extend(changes)
            self._remember(zone, changes)
            return

    def _remember(self, zone: str, changes: Iterable[Change]) -> None:
        with self._lock:
            by_key = {r.key: r for r in self._zones.get(zone, ())}
            for change in changes:
                if change.action is Action.DELETE and isinstance(change.before, RRset):
                    by_key.pop(change.before.key, None)
                elif isinstance(change.after, RRset):
                    by_key[change.after.key] = change.after
            self._zones[zone] = tuple(by_key.values())

    def sync(
        self,
        publish: Mapping[str, TenantSpec],
        retire: Sequence[str],
        scope: frozenset[str] | None,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        """Observe, plan and apply in one go, outside a pass (tools and tests): publish the records of ``publish``,
        remove ours of ``retire`` and, when ``scope`` is None, ours of every tenant not in ``publish``."""
        try:
            zones = self.observe()
        except (TransientError, UnauthorizedError) as exc:
            self.settle([*publish, *retire], Plan(), [], failure=exc)
            raise
        if self.create_zones:
            for zone in sorted(z for z, state in zones.items() if state.missing):
                self._ensure_zone(zone)
        decided = None if scope is None else frozenset(scope) | frozenset(publish) | frozenset(retire)
        changes, refused, blocked = plan_dns(publish, zones, self.settings, owner=self.owner, scope=decided, keep=keep)
        plan = Plan.of(changes, tuple(refused), blocked=tuple(blocked))
        try:
            outcome = self.apply(plan.changes)
        except (TransientError, UnauthorizedError) as exc:
            self.settle([*publish, *retire], plan, [], failure=exc)
            raise
        self.settle([t for t in publish if t not in keep], plan, [outcome])
        self.settle_retired([t for t in retire if t not in keep], outcome)

    def settle_retired(self, tenants: Iterable[str], outcome: DnsOutcome) -> None:
        with self._lock:
            for tenant in tenants:
                if tenant in outcome.problems:
                    self._conditions[tenant] = outcome.problems[tenant]
                elif not any(self._holds(tenant, rrsets) for rrsets in self._zones.values()):
                    self._conditions[tenant] = _ready(False, "Unpublished", "the tenant's records were removed")
                elif self.policy == "upsert-only":
                    self._conditions[tenant] = _ready(
                        False, "RetainedByPolicy", "policy upsert-only keeps the records of a tenant that goes away"
                    )
                else:
                    self._conditions[tenant] = _ready(False, "Removing", "the tenant's records are being removed")

    # --- conditions -----------------------------------------------------------------------------------------

    def settle(
        self,
        tenants: Iterable[str],
        plan: Plan,
        outcomes: Sequence[DnsOutcome],
        *,
        deferred: frozenset[str] = frozenset(),
        failure: ReconcileError | None = None,
    ) -> None:
        """Each tenant's ``DNSReady`` after this pass: from the plan's blockers and refusals, what the server
        refused, what waits for the route, and what the zones now hold."""
        problems: dict[str, Condition] = {}
        for outcome in outcomes:
            problems.update(outcome.problems)
        blocked = {b.tenant: b for b in reversed(plan.blocked) if b.kind == "dns"}
        refused = {
            r.change.tenant: r for r in plan.refused if r.change.kind == "dns" and r.change.action is not Action.DELETE
        }
        pending = {c.tenant for c in plan.changes if c.kind == "dns"} - {
            c.tenant for outcome in outcomes for c in outcome.applied
        }
        with self._lock:
            for tenant in tenants:
                if failure is not None:
                    reason = "Unauthorized" if isinstance(failure, UnauthorizedError) else "ServerUnavailable"
                    self._conditions[tenant] = _ready(False, reason, str(failure))
                elif tenant in problems:
                    self._conditions[tenant] = problems[tenant]
                elif tenant in blocked:
                    self._conditions[tenant] = _ready(False, blocked[tenant].reason, blocked[tenant].message)
                elif tenant in refused:
                    self._conditions[tenant] = _ready(False, "Refused", refused[tenant].reason)
                elif tenant in deferred or tenant in pending:
                    self._conditions[tenant] = _ready(False, "Pending", _WAITING)
                else:
                    self._conditions[tenant] = self._publication(tenant)

    def condition(self, tenant: str) -> Condition:
        with self._lock:
            return self._conditions.get(tenant, _ready(False, "Pending", _WAITING))

    def published(self, tenant: str) -> bool:
        """Whether a record of ours for the tenant still exists (or may: a zone never read). With policy
        upsert-only nothing is ever removed, so removal never waits for DNS."""
        if self.policy == "upsert-only":
            return False
        with self._lock:
            if not self._zones:
                return True
            return any(self._holds(tenant, rrsets) for rrsets in self._zones.values())

    def close(self) -> None:
        self.driver.close()

    def _holds(self, tenant: str, rrsets: tuple[RRset, ...]) -> bool:
        return any(r.owner is not None and r.owner.owner == self.owner and r.owner.tenant == tenant for r in rrsets)

    def _publication(self, tenant: str) -> Condition:
        ours = [
            r
            for rrsets in self._zones.values()
            for r in rrsets
            if r.owner is not None and r.owner.owner == self.owner and r.owner.tenant == tenant
        ]
        if not ours:
            return _ready(False, "Pending", _WAITING)
        return _ready(True, "Published", "; ".join(r.describe() for r in sorted(ours, key=lambda r: r.key)))


def rejected_tenants(changes: Sequence[Change], exc: RejectedError) -> set[str]:
    """The tenants whose changes a 422 is about: the rrset it names, and every change carrying the record
    content it refused (a bad target would fail for each tenant in turn). Unattributable: all of them."""
    culprits = {c.tenant for c in changes if _key(c) == (exc.name, exc.type)}
    if exc.content is not None:
        culprits |= {
            c.tenant
            for c in changes
            if isinstance(c.after, RRset)
            and c.after.type == exc.type
            and canonical_content(exc.type, exc.content) in c.after.records
        }
    return culprits or {c.tenant for c in changes}


def _key(change: Change) -> tuple[str, str] | None:
    rrset = change.after if isinstance(change.after, RRset) else change.before
    return rrset.key if isinstance(rrset, RRset) else None


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
