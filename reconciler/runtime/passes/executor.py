"""Execute one tenant's share of a plan against the drivers, in the order ARCHITECTURE.md fixes.

Called by ``runtime.passes.reconcile`` for every tenant of the pass with its share of the plan, which it carries
out and nothing else (a converged tenant costs no call). Creation goes network and volume → containers → the
plan's route change; a replacement is start new → ready → in routing → old out of routing → stop old; removal is
routes → containers → network (DNS records go before, and come after, in ``passes.dns_step``). Data volumes
are never removed here. Each action is logged as one line with tenant and reason. ``stop`` is checked before
every action so SIGTERM ends a pass cleanly: actions in flight finish, no new one starts.

Within a phase the actions are independent and run together (``passes.parallel``): networks and volumes; then
every new container (creates, new halves of replacements, starts, resumes), followed by one readiness wait for
all of them (``readiness.wait_all_ready``: one re-read of the tenant's containers per round, probes in
parallel); then routing once, with every ready backend; then, when checks are configured, the checks of what was
rolled out, through the route (``passes.check_step``: a failing one after an upgrade routes the old containers
back and removes the new ones); then stops, old halves and deletions; then the network.
Engine actions of every tenant the process applies at once share ``slots`` (``RECONCILER_APPLY_CONCURRENCY``).
Outcomes and log lines follow the plan's order, whatever order the actions finished in.

A replacement an earlier process did not finish (``kill -9`` mid-change) comes back as a ``resume`` change: its
new container exists, so it is started if need be but never created again; the rest is the same choreography
(ready → old + new → new only → old removed). If the new container never gets ready it is removed and the old
one keeps serving, exactly as when a fresh replacement fails.

The steps live beside this module, each on the executor's base ``passes.apply_actions.ApplyActions`` (its fields,
one engine action under a slot, outcomes in plan order): ``passes.resource_steps`` (networks, volumes, limits,
services), ``passes.container_steps`` (new containers and their readiness, resumed replacements) and
``passes.rollout_steps`` (the upgrade gate, checks after a rollout). Here: the order of the phases, and removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from desired_state.specs import TenantSpec
from reconciler.core.errors import TransientError
from reconciler.core.plan import Change, Plan
from reconciler.core.resources import Container, Network, Snapshot
from reconciler.core.services import Service
from reconciler.core.upgrades import upgrades_in
from reconciler.runtime.passes.apply_actions import DEFAULT_APPLY_CONCURRENCY, log
from reconciler.runtime.passes.container_steps import ContainerSteps, old_halves
from reconciler.runtime.passes.outcome import Buckets, Interrupted, TenantOutcome
from reconciler.runtime.passes.parallel import first_error
from reconciler.runtime.passes.resource_steps import ResourceSteps
from reconciler.runtime.passes.rollout_steps import RolloutSteps
from reconciler.runtime.passes.route_step import Backends, route_tenant
from reconciler.runtime.passes.service_step import settle_services

__all__ = ["DEFAULT_APPLY_CONCURRENCY", "Executor", "Interrupted", "TenantOutcome"]


class Executor(ContainerSteps, ResourceSteps, RolloutSteps):
    """Carries out one tenant's share of a plan; made by constructor with the fields of ``ApplyActions``."""

    def _take_down(self, tenant: str, by: Buckets, leaving: Sequence[Container], outcome: TenantOutcome) -> None:
        """Phase 4: stops, old halves of replacements and deletions together, then the network."""
        stops = [partial(self._act, partial(self.docker.stop_container, _before(c))) for c in by.stops]
        olds = [partial(self._act, partial(self.docker.remove_container, old)) for old in leaving]
        deletes = [partial(self._act, partial(self.docker.remove_container, _before(c))) for c in by.deletes]
        results = self._together([*stops, *olds, *deletes])
        stopped, gone, deleted = (
            results[: len(stops)],
            results[len(stops) : len(stops) + len(olds)],
            results[len(stops) + len(olds) :],
        )
        for change, result in zip(by.stops, stopped, strict=True):
            if result.error is None:
                self._done(outcome, change)
        for old, result in zip(leaving, gone, strict=True):
            if result.error is None:
                log.info("tenant=%s - container %s (replaced, out of routing)", tenant, old.name)
        for change, result in zip(by.deletes, deleted, strict=True):
            if result.error is None:
                self._done(outcome, change)
        self._raise_interrupted(results)
        error = first_error(results)
        if error is not None:
            raise error
        self._phase(outcome, by.service_deletes, self._remove_service)
        for change in by.network_deletes:
            self._check_stop()
            assert isinstance(change.before, Network)
            self._act(partial(self.docker.remove_network, change.before))
            self._done(outcome, change)

    def apply_tenant(
        self, tenant: str, plan: Plan, spec: TenantSpec | None, observed: Snapshot, *, hold_removal: str | None = None
    ) -> TenantOutcome:
        outcome = TenantOutcome(tenant)
        by = Buckets(plan.for_tenant(tenant).changes)

        # 1. Network and volume, together; then limits changed behind our back (docker update), set back in place.
        # (network_attaches: Swarm's router joined again to an overlay it lost, ``engine.RouterAttaching``.)
        firsts = by.network_creates + by.network_attaches + by.volume_creates
        self._phase(outcome, firsts, partial(self._network_or_volume, tenant))
        self._phase(outcome, by.updates, self._update)

        # 2. New containers together: creates, the new half of replacements, restarts of stopped ones, resumed
        # replacements. Replacements that change a service's image are upgrades: the gate backs up and migrates
        # first, or keeps the old version; an upgrade is all replicas or none.
        # Swarm services: created or updated together; the engine rolls their tasks start-first.
        self._phase(outcome, by.service_changes, self._service)
        settling = [c.after for c in by.service_changes if isinstance(c.after, Service)]

        upgrades = upgrades_in(by.replaces) if self.upgrades is not None and spec is not None else {}
        held = self._before_upgrades(spec, upgrades, outcome)
        ready, replaced_ok, resumed = self._bring_up(tenant, by, held, outcome)
        passed = self._after_upgrades(spec, upgrades, held, outcome, ready, replaced_ok)
        try:
            discarded = self._resume(tenant, resumed, outcome, ready, replaced_ok)
            leaving, removing = old_halves(by, replaced_ok)
            if settling:
                self._check_stop()
                tasks = settle_services(
                    self.docker, tenant, settling, timeout=self.ready_timeout, stop=self.stop, follow=self._follow(spec)
                )
                self._check_stop()
                # The tasks that run now, not those the pass began with (the engine replaced them meanwhile).
                observed = replace(observed, containers=tuple(tasks))

            # 3. Routing, once, with every ready backend; then the checks of what was rolled out (3b).
            if self.router is not None and by.route is not None:
                self._check_stop()
                backends = Backends(observed, ready, removing, discarded)
                if route_tenant(self.router, tenant, spec, by.route, backends, hold_removal):
                    self._done(outcome, by.route)
                    self._check_rollout(spec, by, backends, passed, outcome, replaced_ok, hold_removal)
                    leaving, removing = old_halves(by, replaced_ok)
        finally:
            # Whatever happened since, the upgrades that went ahead and were not taken back are done.
            if passed and self.upgrades is not None and spec is not None:
                self.upgrades.after_upgrades(spec, dict.fromkeys(passed))

        # 4. Removal: stops, deletions, old halves of replacements (together), then the network.
        if hold_removal and (by.deletes or by.network_deletes or by.service_deletes):
            outcome.waiting = hold_removal
            return outcome
        self._take_down(tenant, by, leaving, outcome)
        if outcome.failed:
            reasons = "; ".join(f"{c.name}: {why}" for c, why in outcome.failed)
            raise TransientError(f"tenant {tenant!r}: {reasons}", tenant=tenant)
        return outcome


def _before(change: Change) -> Container:
    assert isinstance(change.before, Container)
    return change.before
