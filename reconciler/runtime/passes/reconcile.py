"""One reconcile pass: load → observe every layer → plan (``reconciler.planning.plan_pass``) → apply → status.

Level-based: whatever triggered it (resync, Docker event, nudge, CLI), a pass re-reads the desired state and
the world: containers, networks and volumes (3 Docker list calls), the tenants' Traefik files, the DNS zones
(one GET each). The plan covers every tenant, so the mass-delete guard judges what the desired state does to the
whole fleet; ``scope`` then narrows what the pass applies (an event or nudge for one tenant). ``None`` is a
full pass, the only kind that removes tenants the database no longer knows. Apply executes exactly the plan,
in the fixed order (DNS removals; per tenant networks and volumes, containers, routes, removals; DNS
publications of tenants whose route is ready); the tenants run side by side on up to ``apply_workers`` threads
(``passes.parallel``) and are recorded in tenant order. One tenant's failure, of any kind, is recorded in its
status and never stops the others. Called by the service's workers (``runtime.service.loop``) and the CLI.

The ``Reconciler`` is assembled from its halves, each on ``passes.pass_setup.PassSetup`` (its fields, the
executor, locks, metrics): ``passes.pass_planning`` (``observe``, ``compute``) and ``passes.pass_apply``
(``_apply``: tenants, DNS, statuses). Here: the two kinds of pass, ``run_pass`` and ``sweep``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace

from reconciler.core.sites import SITE_KEY
from reconciler.runtime.passes.pass_apply import PassApply
from reconciler.runtime.passes.pass_planning import PassPlanning
from reconciler.runtime.passes.pass_values import PassInputs, PassResult
from reconciler.runtime.passes.status import spec_digest

log = logging.getLogger("reconciler")

__all__ = ["PassInputs", "PassResult", "Reconciler", "spec_digest"]


class Reconciler(PassPlanning, PassApply):
    """One reconcile pass at a time per tenant; made by constructor with the fields of ``PassSetup``."""

    def run_pass(
        self, scope: Iterable[str] | None = None, *, allow_mass_delete: bool = False, trigger: str = "resync"
    ) -> PassResult:
        scope_set = frozenset(scope) if scope is not None else None
        with self.locks.hold(scope_set):
            started = time.monotonic()
            if self.metrics:
                self.metrics.reconciles.labels(trigger=trigger).inc()
            calls_before = dict(self.docker.calls)
            inputs = self.compute(scope_set, allow_mass_delete=allow_mass_delete, applying=True)
            result = self._apply(inputs, inputs.scope)
            self.sites.run_logged(allow_mass_delete, scope_set)
            result.duration = time.monotonic() - started
            self._record_metrics(inputs, result, scope_set, calls_before)
            return result

    def sweep(self, *, allow_mass_delete: bool = False, trigger: str = "resync") -> PassResult:
        """The pass-wide share of a resync, next to per-tenant passes (``runtime.service.loop`` runs it).

        Plans the whole world and applies the share of tenants the database no longer has (containers, routes,
        DNS records: under the mass-delete guard, which sees the whole plan). Tenants in the database are left
        to their own scoped passes: the result lists them (and every other tenant seen) in ``tenants``.
        """
        started = time.monotonic()
        if self.metrics:
            self.metrics.reconciles.labels(trigger=trigger).inc()
        calls_before = dict(self.docker.calls)
        inputs = self.compute(None, allow_mass_delete=allow_mass_delete, applying=True)
        present = self._present(inputs)
        vanished = frozenset(present - inputs.desired.known)
        # The sweep also carries out the sites' DNS changes (their files follow in the sites stage below).
        site_keys = frozenset(t for t in inputs.plan.tenants() if t.startswith(SITE_KEY))
        own = replace(inputs, plan=inputs.plan.for_tenants(vanished | site_keys), scope=vanished)
        result = PassResult(plan=own.plan)
        if vanished or site_keys:
            with self.locks.hold(vanished):
                result = self._apply(own, vanished)
        else:
            for error in own.plan.errors:
                log.error("%s", error)
        result.tenants = sorted((present | inputs.desired.known) - vanished)
        self.sites.run_logged(allow_mass_delete, None)
        result.duration = time.monotonic() - started
        self._record_metrics(own, result, None, calls_before)
        return result
