"""The planning half of a pass: load the desired state, observe every layer, plan; no effect unless applying.

Stages load → observe → plan → policies of the pipeline, for ``passes.reconcile.Reconciler`` (``run_pass`` and
``sweep`` call ``compute`` with ``applying=True``), for the CLI's ``plan`` and for the HTTP API's plan preview
(``compute`` without applying, with an ``edit``). The plan itself is ``planning.plan_pass``'s, the same pure
function the golden cases run; here are the inputs it is given: the desired state, what every layer holds now
(containers, route files, DNS zones), holds, pins, bindings, placements and the canary analysis's weights. Only when
applying are tenants given their uids and the bindings and placements the plan asks for recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from desired_state.canaries import CanaryRecord, read_canaries
from desired_state.identity import assign_uids, read_bindings, record_bindings
from desired_state.load import load_desired_state
from desired_state.model import DesiredState
from desired_state.placements import read_placements, record_placements
from reconciler.core.errors import ReconcileError
from reconciler.planning import Observed, PassContext, plan_pass
from reconciler.runtime.passes.pass_setup import PassSetup
from reconciler.runtime.passes.pass_values import PassInputs
from reconciler.runtime.passes.sites_step import SitesStep

log = logging.getLogger("reconciler")


class PassPlanning(PassSetup):
    """``observe`` and ``compute``: the inputs and the plan of a pass."""

    def observe(self, scope: frozenset[str] | None = None) -> tuple[Observed, ReconcileError | None]:
        """Every layer as it is now; the DNS server being unreachable is returned, not raised. Containers
        marked for inspection are inspected for the tenants in ``scope`` only (None: any)."""
        snapshot = self.docker.observe(scope=scope)
        routes = None
        if self.router is not None:
            try:
                routes = self.router.observe_files()
            except ReconcileError as exc:
                log.warning("route files not readable: %s", exc)
        zones, dns_failure = None, None
        if self.dns is not None:
            try:
                zones = self.dns.observe()
            except ReconcileError as exc:
                log.warning("DNS zones not readable: %s", exc)
                dns_failure = exc
        return Observed(snapshot=snapshot, routes=routes, zones=zones), dns_failure

    def compute(
        self,
        scope: Iterable[str] | None = None,
        *,
        allow_mass_delete: bool = False,
        applying: bool = False,
        edit: Callable[[DesiredState], DesiredState] | None = None,
    ) -> PassInputs:
        """The plan of a pass. ``applying`` (apply and run, never ``plan``): tenants get their uids first and the
        data-volume bindings the plan asks for are recorded (``desired_state.identity``). ``edit`` (never with
        ``applying``): a proposed change to the loaded desired state, planned without being written (the API's plan
        preview, ``reconciler.api.preview``)."""
        if applying:
            assign_uids(self.engine)
        desired = load_desired_state(self.engine, self.base_domain, self.input_limits)
        if edit is not None and not applying:
            desired = edit(desired)
        requested = frozenset(scope) if scope is not None else None
        # Containers marked for inspection (events, the round-robin) are inspected for the tenants in scope only.
        observed, dns_failure = self.observe(requested)
        # Removing tenants the database no longer has is left to full passes and the sweep.
        effective = requested & desired.known if requested is not None else None
        held = dict(self.operations.holds()) if self.operations is not None else {}
        # Site records are planned by full passes only (a scoped plan is narrowed to its tenants anyway).
        sites = None
        if requested is None and isinstance(self.sites, SitesStep):
            sites = self.sites.dns_hosts(allow_mass_delete=allow_mass_delete)
        canaries = self._canaries()
        context = PassContext(
            scope=effective,
            held=held,
            pins=self.operations.pins(desired) if self.operations is not None else {},
            policies=self.policies,
            removed_recently=self.removals.recent(),
            allow_mass_delete=allow_mass_delete,
            bindings=read_bindings(self.engine),
            sites=sites,
            canaries={t: tuple(r.canary for r in found) for t, found in canaries.items()},
            cache=self.render_cache,
            placements=read_placements(self.engine) if self.swarm is not None else {},
        )
        planned = plan_pass(desired, observed, self.plan_settings, context)
        if applying:
            record_bindings(self.engine, planned.bindings)
            if planned.placements:
                record_placements(
                    self.engine, planned.placements, {t: self.naming.volume(t) for t, _ in planned.placements}
                )
        return PassInputs(
            desired,
            observed.snapshot,
            dict(planned.rendered),
            planned.plan,
            effective,
            held,
            observed,
            dns_failure,
            planned.failed,
            sites,
            canaries,
            planned.routed,
        )

    def _canaries(self) -> dict[str, tuple[CanaryRecord, ...]]:
        """The canary analysis's state rows by tenant: the weights they impose are an input of the plan."""
        found: dict[str, list[CanaryRecord]] = {}
        for record in read_canaries(self.engine):
            found.setdefault(record.canary.tenant, []).append(record)
        return {tenant: tuple(records) for tenant, records in found.items()}
