"""The WordPress part of the sites stage: credentials → observe the sites' Docker objects → plan (pure) → apply,
and the FPM containers' addresses the Nginx files need.

Run by ``SitesStep`` (``reconciler.runtime.passes.sites_step``) before it plans the Nginx files, in every full
pass; ``reconciler plan`` calls ``plan`` only (no writes: a site without credentials yet is shown with
credentials made up for the plan, stored by the first apply). Each action is one log line
(``site=blog + container erp-site-blog-fpm (container missing)``); a failure stops that site's remaining actions
(its error goes to its status), never the other sites'. Credentials reach the containers' environment only:
Docker's errors are reported from its stderr, never its command line (``drivers.docker.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from desired_state.site_load import DesiredSites
from desired_state.site_secrets import ensure_site_secrets, generate, read_site_secrets
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Action, Change
from reconciler.core.resources import Container, Network, Volume
from reconciler.core.sites import SITE_KEY
from reconciler.core.wordpress import FPM_PORT, SiteObjectsSeen, SiteSecrets, WordpressImages
from reconciler.drivers.docker.driver import DockerDriver
from reconciler.drivers.docker.sites import observe_sites
from reconciler.planning.wordpress import plan_wordpress, site_labels

log = logging.getLogger("reconciler")


@dataclass(frozen=True)
class WordpressPlanned:
    changes: tuple[Change, ...]
    # Site name → "ip:9000" of its running FPM container.
    addresses: dict[str, str] = field(default_factory=dict)


@dataclass
class WordpressOutcome:
    planned: WordpressPlanned
    applied: list[Change] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)


def _site(change: Change) -> str:
    return change.tenant.removeprefix(SITE_KEY)


def fpm_addresses(seen: SiteObjectsSeen) -> dict[str, str]:
    return {
        seen.site_of(c): f"{c.ip}:{FPM_PORT}"
        for c in seen.containers
        if seen.role_of(c) == "fpm" and c.running and c.ip
    }


@dataclass
class WordpressStep:
    engine: Engine
    docker: DockerDriver
    prefix: str
    owner: str
    images: WordpressImages = field(default_factory=WordpressImages)

    def _wordpress_sites(self, desired: DesiredSites) -> list[str]:
        return sorted(name for name, spec in desired.sites.items() if spec.wordpress is not None)

    def _plan(self, desired: DesiredSites, secrets: dict[str, SiteSecrets]) -> WordpressPlanned:
        seen = observe_sites(self.docker)
        changes = plan_wordpress(
            desired.sites,
            desired.errors.keys(),
            secrets,
            seen,
            prefix=self.prefix,
            owner=self.owner,
            images=self.images,
        )
        return WordpressPlanned(changes, fpm_addresses(seen))

    def plan(self, desired: DesiredSites) -> WordpressPlanned:
        """What ``run`` and ``remove`` would do (for ``reconciler plan``): reads only."""
        names = self._wordpress_sites(desired)
        secrets = read_site_secrets(self.engine, names)
        secrets |= {name: SiteSecrets(name, generate()) for name in names if name not in secrets}
        return self._plan(desired, secrets)

    def run(self, desired: DesiredSites) -> WordpressOutcome:
        """Create, start and replace; removals wait for ``remove`` (after the sites' files were planned)."""
        names = self._wordpress_sites(desired)
        secrets = ensure_site_secrets(self.engine, names)
        try:
            planned = self._plan(desired, secrets)
        except ReconcileError as exc:  # Docker unreachable: the other kinds of sites go on without it
            log.error("wordpress sites not reconciled: %s", exc)
            return WordpressOutcome(WordpressPlanned(()), errors=dict.fromkeys(names, str(exc)))
        outcome = WordpressOutcome(planned, addresses=dict(planned.addresses))
        self._carry_out([c for c in planned.changes if c.action is not Action.DELETE], outcome)
        if outcome.applied:
            outcome.addresses = fpm_addresses(observe_sites(self.docker))
        return outcome

    def remove(self, outcome: WordpressOutcome, gone: Collection[str]) -> None:
        """Remove the containers and network of the sites in ``gone`` (no file any more: removed in this pass, or
        never written). A site whose file stays (the mass-delete guard refused its removal) keeps them too."""
        removals = outcome.planned.changes
        self._carry_out([c for c in removals if c.action is Action.DELETE and _site(c) in gone], outcome)

    def _carry_out(self, changes: list[Change], outcome: WordpressOutcome) -> None:
        for change in changes:
            site = _site(change)
            if site in outcome.errors:
                continue
            try:
                self._apply(change, site)
            except ReconcileError as exc:
                outcome.errors[site] = f"{change.action.value} {change.kind} {change.name}: {exc}"
                log.error("site=%s %s", site, outcome.errors[site])
                continue
            outcome.applied.append(change)
            log.info("site=%s %s %s %s (%s)", site, change.action.value, change.kind, change.name, change.reason)

    def _apply(self, change: Change, site: str) -> None:
        labels = site_labels(self.owner, site)
        before, after = change.before, change.after
        if change.kind == "network":
            if change.action is Action.DELETE and isinstance(before, Network):
                self.docker.remove_network(before)
            elif isinstance(after, Network):
                self.docker.create_network(after, labels)
        elif change.kind == "volume" and isinstance(after, Volume):
            self.docker.create_volume(after, labels)  # volumes are only ever created here
        elif change.kind == "container":
            if isinstance(before, Container) and change.operation in ("replace", "delete"):
                self.docker.remove_container(before)
            if isinstance(before, Container) and change.operation == "start":
                self.docker.start_container(before)
            elif isinstance(after, Container) and change.operation in ("create", "replace"):
                self.docker.run_container(after)
