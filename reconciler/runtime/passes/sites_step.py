"""The sites stage of a pass: load the sites → observe Nginx's site files → plan (pure) → test, write, reload →
status rows and metrics.

Called by ``Reconciler.run_pass`` for full passes (``reconciler apply``) and by ``Reconciler.sweep`` (every resync
of ``reconciler run``); ``reconciler plan`` calls ``compute`` only. Sites are not tenants: their changes form a
plan of their own (same ``Plan`` type, kind ``site``, keys ``site:<name>``) and their statuses go to
``site_statuses``, so the tenants' loop never sees them.

Nothing reaches Nginx untested: all changed files are tested together with ``nginx -t``; if that fails, each is
tested on its own (on top of those already accepted) so one bad site never holds back the others. Accepted files
are written and Nginx reloaded once; a rejected site keeps its previous file serving and gets
``ConfigLoaded=False`` with reason ``NginxRejected`` and Nginx's message.

With the DNS stage too, ``dns_hosts`` gives a full pass's planner the sites' hosts (their records are part of the
tenants' DNS plan, applied before this stage runs), a leaving site's file waits for its record to be gone, and
each site's status carries ``DNSReady`` (docs/dns.md "Sites").

WordPress sites: their containers come first (``wordpress_step``, when the runtime wired one), because their
file names the FPM container's address; a site whose containers failed gets ``ContainersFailed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Engine

from desired_state.model import Condition
from desired_state.site_load import DesiredSites, load_sites
from desired_state.site_status import SiteStatus, write_site_statuses
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.sites import SITE_KEY, SiteFile
from reconciler.drivers.nginx import NginxDriver
from reconciler.planning import SiteHosts
from reconciler.planning.sites import SitePlan, plan_sites
from reconciler.runtime.passes.removals import RemovalLedger
from reconciler.runtime.passes.stages import DnsPublisher
from reconciler.runtime.passes.wordpress_step import WordpressOutcome, WordpressStep
from reconciler.runtime.telemetry.metrics import Metrics
from renderers.dns import DnsTarget, zone_for
from renderers.nginx import NginxLayout, render_main

log = logging.getLogger("reconciler")


@dataclass(frozen=True)
class SitesPlanned:
    desired: DesiredSites
    observed: dict[str, SiteFile]
    planned: SitePlan
    # WordPress sites' Docker changes (applied before the files, by ``WordpressStep``).
    wordpress: tuple[Change, ...] = ()

    @property
    def shown(self) -> Plan:
        """The files' plan and the WordPress containers' changes, as ``reconciler plan`` shows them."""
        return self.planned.plan.merged(Plan.of(self.wordpress))


@dataclass
class SitesOutcome:
    planned: SitePlan
    applied: list[Change] = field(default_factory=list)
    wordpress: WordpressOutcome | None = None

    @property
    def every_applied(self) -> list[Change]:
        """The WordPress containers' changes, then the files' (what ``reconciler apply`` prints)."""
        return [*(self.wordpress.applied if self.wordpress is not None else []), *self.applied]

    # Site name → why its change was not carried out (rejected by nginx -t, a failed write or reload).
    errors: dict[str, str] = field(default_factory=dict)


class SiteMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.registry = metrics.registry
        self.actions = metrics.actions
        self.phases = Gauge("reconciler_sites", "Sites by phase (Ready, Failed).", ["phase"], registry=metrics.registry)
        self.rejected = Counter(
            "reconciler_site_rejections", "Site files nginx -t rejected (never loaded).", registry=metrics.registry
        )


@dataclass
class SitesStep:
    engine: Engine
    driver: NginxDriver
    layout: NginxLayout
    limits: MassDeleteLimits = field(default_factory=MassDeleteLimits)
    metrics: SiteMetrics | None = None
    # Site hosts get DNS records through the tenants' DNS plan when both are set (docs/dns.md "Sites"): the
    # address Nginx is reached at (``RECONCILER_NGINX_PUBLIC_ADDRESS``) and the DNS stage, for ``DNSReady``.
    public: DnsTarget | None = None
    dns: DnsPublisher | None = None
    wordpress: WordpressStep | None = None

    def __post_init__(self) -> None:
        self.removals = RemovalLedger(self.limits.window)
        # The outcome of the latest run (``reconciler apply`` prints it; None: no run, or Nginx was unusable).
        self.last: SitesOutcome | None = None

    def compute(
        self,
        *,
        allow_mass_delete: bool = False,
        desired: DesiredSites | None = None,
        wordpress: WordpressOutcome | None = None,
    ) -> SitesPlanned:
        """Plan the files; ``wordpress``: what the WordPress step just did (None: only plan its changes too)."""
        desired = desired if desired is not None else load_sites(self.engine)
        changes: tuple[Change, ...] = ()
        fpm: dict[str, str] = {}
        if wordpress is not None:
            fpm = wordpress.addresses
        elif self.wordpress is not None:
            planned_wordpress = self.wordpress.plan(desired)
            changes, fpm = planned_wordpress.changes, planned_wordpress.addresses
        observed = self.driver.observe()
        planned = plan_sites(
            desired,
            observed,
            self.layout,
            self.limits,
            allow_mass_delete=allow_mass_delete,
            recently=self.removals.recent(),
            fpm=fpm,
        )
        return SitesPlanned(desired, observed, planned, changes)

    def dns_hosts(self, *, allow_mass_delete: bool = False) -> SiteHosts | None:
        """The sites' hosts for a full pass's DNS plan (``planning.site_dns``), read before the tenants' plan.

        A site counts as loaded when Nginx runs and its file is ours and what the site renders to now (the sites'
        plan has nothing for it). A site whose change the sites' plan withholds (the mass-delete guard, another
        owner's file) keeps its records as they are, so a record never goes while its file stays. None (site
        records are left alone) when site DNS is off or the sites cannot be read."""
        if self.public is None or self.dns is None:
            return None
        try:
            computed = self.compute(allow_mass_delete=allow_mass_delete)
            running = self.driver.master_pid() is not None
        except Exception as exc:  # the sites' records then stay as they are; the tenants' pass goes on
            log.error("site DNS records left as they are: sites not readable: %s", exc)
            return None
        plan = computed.planned.plan
        busy = (
            {c.tenant for c in plan.changes}
            | {b.tenant for b in plan.blocked}
            | {r.change.tenant for r in plan.refused}
        )
        withheld = {_site(r.change) for r in plan.refused}
        loaded = {
            name
            for name in computed.desired.sites
            if running
            and (have := computed.observed.get(name)) is not None
            and have.owner == self.layout.owner
            and f"{SITE_KEY}{name}" not in busy
        }
        return SiteHosts(
            target=self.public,
            hosts={name: spec.host for name, spec in computed.desired.sites.items()},
            keep=frozenset(computed.desired.errors) | frozenset(withheld),
            loaded=frozenset(loaded),
        )

    def run_logged(self, allow_mass_delete: bool = False, scope: frozenset[str] | None = None) -> SitesOutcome | None:
        """``run`` for a full pass (``scope`` None; a pass over some tenants leaves the sites alone), with Nginx
        being down or unreadable logged: the tenants' pass stands, the sites wait."""
        if scope is not None:
            return None
        try:
            self.last = self.run(allow_mass_delete=allow_mass_delete)
        except ReconcileError as exc:
            log.error("sites not reconciled: %s", exc)
            self.last = None
        except Exception:  # a surprise in the sites stage is never the tenants' failure
            log.exception("sites not reconciled: unexpected error")
            self.last = None
        return self.last

    def run(self, *, allow_mass_delete: bool = False) -> SitesOutcome:
        self.driver.ensure_running(render_main(self.layout))
        desired = load_sites(self.engine)
        wordpress = self.wordpress.run(desired) if self.wordpress is not None else None
        computed = self.compute(allow_mass_delete=allow_mass_delete, desired=desired, wordpress=wordpress)
        outcome = SitesOutcome(computed.planned, wordpress=wordpress)
        for site, message in (wordpress.errors if wordpress is not None else {}).items():
            outcome.errors[site] = f"containers: {message}"
        accepted = self._accept(self._after_dns(computed.planned.plan.changes, outcome), outcome)
        if accepted:
            try:
                self.driver.write({c.name: _text(c) for c in accepted})
                outcome.applied = accepted
            except ReconcileError as exc:
                for change in accepted:
                    outcome.errors[_site(change)] = str(exc)
        if self.wordpress is not None and wordpress is not None:
            # A removed site's containers go once its file is gone: removed now, or never written. A file the
            # mass-delete guard kept keeps its containers too.
            removed = {_site(c) for c in outcome.applied if c.after is None}
            unserved = {_site(c) for c in wordpress.planned.changes if _site(c) not in computed.observed}
            self.wordpress.remove(wordpress, removed | unserved)
        for change in outcome.applied:
            log.info("site=%s %s %s (%s)", _site(change), change.action.value, change.name, change.reason)
            if self.metrics is not None:
                self.metrics.actions.labels(kind="site", action=change.action.name.lower()).inc()
        self.removals.record(outcome.applied)
        for message in computed.planned.plan.errors:
            log.error("%s", message)
        self._write_statuses(computed, outcome)
        return outcome

    def _after_dns(self, changes: tuple[Change, ...], outcome: SitesOutcome) -> tuple[Change, ...]:
        """A leaving site's file stays while its DNS record may still exist (its deletion failed, or PowerDNS could
        not be read), like a leaving tenant's containers (docs/dns.md "Sites")."""
        if self.public is None or self.dns is None:
            return changes
        kept: list[Change] = []
        for change in changes:
            if change.action is Action.DELETE and self.dns.published(change.tenant):
                outcome.errors[_site(change)] = DNS_HOLD
                log.info("site=%s %s kept: %s", _site(change), change.name, DNS_HOLD)
            else:
                kept.append(change)
        return tuple(kept)

    def _accept(self, changes: tuple[Change, ...], outcome: SitesOutcome) -> list[Change]:
        if not changes:
            return []
        problem = self.driver.test({c.name: _text(c) for c in changes})
        if problem is None:
            return list(changes)
        accepted: list[Change] = []
        for change in changes:
            trial = {c.name: _text(c) for c in (*accepted, change)}
            problem = self.driver.test(trial)
            if problem is None:
                accepted.append(change)
                continue
            outcome.errors[_site(change)] = problem
            log.error("site=%s not loaded: %s", _site(change), problem)
            if self.metrics is not None:
                self.metrics.rejected.inc()
        return accepted

    def _write_statuses(self, computed: SitesPlanned, outcome: SitesOutcome) -> None:
        statuses = [
            self._with_dns(_status(name, computed, outcome), computed.desired)
            for name in sorted(computed.desired.known | set(computed.observed))
        ]
        write_site_statuses(self.engine, statuses)
        if self.metrics is not None:
            for phase in ("Ready", "Failed", "Removed"):
                self.metrics.phases.labels(phase=phase).set(sum(1 for s in statuses if s.phase == phase))

    def _with_dns(self, status: SiteStatus, desired: DesiredSites) -> SiteStatus:
        """Adds ``DNSReady`` to a valid site whose host is under a managed zone; a DNS conflict fails the site."""
        spec = desired.sites.get(status.site)
        if self.public is None or self.dns is None or spec is None:
            return status
        if zone_for(spec.host, self.dns.settings.zones) is None:
            return status
        condition = self.dns.condition(f"{SITE_KEY}{status.site}")
        if condition.reason == "Pending":
            condition = replace(condition, message=_DNS_WAITING)
        status = replace(status, conditions=(*status.conditions, condition))
        if condition.reason == "Conflict":
            return replace(status, phase="Failed", last_error=status.last_error or condition.message)
        return status


_DNS_WAITING = "not published: waiting for Nginx to load the site's file"
DNS_HOLD = "waiting for the site's DNS record to be removed first"


class NoSites:
    """The sites stage when none is configured (``RECONCILER_NGINX_STATE_DIR`` unset): does nothing."""

    last: SitesOutcome | None = None

    def run_logged(self, allow_mass_delete: bool = False, scope: frozenset[str] | None = None) -> None:
        return None


def _site(change: Change) -> str:
    return change.tenant.removeprefix(SITE_KEY)


def _text(change: Change) -> str | None:
    return change.after.text if isinstance(change.after, SiteFile) else None


def _status(name: str, computed: SitesPlanned, outcome: SitesOutcome) -> SiteStatus:
    desired, plan = computed.desired, computed.planned.plan
    generation = desired.generations.get(name)
    serving = name in computed.observed
    previous = Condition("ConfigLoaded", "True" if serving else "False", "PreviousServing" if serving else "NotWritten")
    if name in desired.errors:
        error = str(desired.errors[name])
        conditions = (Condition("Valid", "False", "Invalid", error), previous)
        return SiteStatus(name, "Failed", conditions, generation, error)
    valid = Condition("Valid", "True", "Valid")
    if name in outcome.errors:
        error = outcome.errors[name]
        reason = "NginxRejected" if "nginx rejected" in error else "ApplyFailed"
        reason = "ContainersFailed" if error.startswith("containers: ") else reason
        if error == DNS_HOLD:
            return SiteStatus(
                name, "Failed", (Condition("ConfigLoaded", "True", "WaitingForDns", error),), generation, error
            )
        return SiteStatus(name, "Failed", (valid, Condition("ConfigLoaded", "False", reason, error)), generation, error)
    failed = [b for b in plan.blocked if b.tenant.removeprefix(SITE_KEY) == name]
    if failed:
        error = failed[0].message
        return SiteStatus(
            name, "Failed", (valid, Condition("ConfigLoaded", "False", failed[0].reason, error)), generation, error
        )
    refused = [r for r in plan.refused if _site(r.change) == name]
    if refused:
        reason = "MassDeleteRefused" if refused[0].policy == "mass-delete" else "NotOwned"
        error = refused[0].reason
        return SiteStatus(name, "Failed", (valid, Condition("ConfigLoaded", "False", reason, error)), generation, error)
    if name not in desired.sites:
        return SiteStatus(name, "Removed", (Condition("ConfigLoaded", "False", "Removed"),), generation)
    return SiteStatus(name, "Ready", (valid, Condition("ConfigLoaded", "True", "Loaded")), generation)
