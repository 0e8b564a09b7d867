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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypeVar

from desired_state.specs import TenantSpec
from reconciler.core.diff import SubnetPool
from reconciler.core.errors import SubnetTaken, TransientError
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.resources import Container, Network, Snapshot, Volume
from reconciler.core.services import Service
from reconciler.core.subnets import allocate_subnet
from reconciler.core.upgrades import Upgrade, upgrades_in
from reconciler.runtime.passes.check_step import RolloutChecks, rollout_targets, take_back, to_revert, triggers
from reconciler.runtime.passes.engine import ContainerEngine
from reconciler.runtime.passes.outcome import Buckets, Interrupted, TenantOutcome
from reconciler.runtime.passes.parallel import ActionSlots, Result, first_error, run_all
from reconciler.runtime.passes.readiness import Probe, probe_once, wait_all_ready
from reconciler.runtime.passes.route_step import Backends, route_tenant
from reconciler.runtime.passes.service_step import settle_services
from reconciler.runtime.passes.stages import Router, UpgradeGate
from reconciler.runtime.passes.upgrade_steps import ask_gate, judge_upgrades
from renderers.containers import Naming

log = logging.getLogger("reconciler.apply")


# Concurrent network creation by others can take a subnet between snapshot and create; a few retries suffice.
NETWORK_CREATE_ATTEMPTS = 5
# Removal of a container by Docker takes well under a second; past this the create fails and is retried.
NAME_FREE_TIMEOUT = 10.0
# Engine actions in flight across the process unless configured (RECONCILER_APPLY_CONCURRENCY): on 2 cores the
# engine's create throughput stops growing past about 4-8 parallel creates (docs/runtime.md).
DEFAULT_APPLY_CONCURRENCY = 6
# Readiness re-reads fewer waiting containers one by one (one list call each), more with one tenant listing.
LIST_TENANT_FROM = 3

T = TypeVar("T")

__all__ = ["Executor", "Interrupted", "TenantOutcome"]


@dataclass
class Executor:
    docker: ContainerEngine
    naming: Naming
    router: Router | None = None
    pool: SubnetPool = field(default_factory=SubnetPool)
    ready_timeout: float = 60.0
    stop: threading.Event = field(default_factory=threading.Event)
    # Called after every applied change (metrics); kept as a hook so the executor needs no metrics import.
    on_applied: Callable[[Change], None] | None = None
    # Backup and migration before an image change, pin after a failed one; None: image changes are plain replacements.
    upgrades: UpgradeGate | None = None
    # Engine actions in flight, shared by every tenant the process applies at once (``passes.parallel``).
    slots: ActionSlots = field(default_factory=lambda: ActionSlots(DEFAULT_APPLY_CONCURRENCY))
    # How readiness asks a container's health path (an HTTP GET; unit tests of ordering give their own).
    probe: Probe = probe_once
    # Checks through the route after a rollout, before replaced containers go (``passes.check_step``); None: none.
    checks: RolloutChecks | None = None

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted("stopping: pass interrupted between actions")

    def _done(self, outcome: TenantOutcome, change: Change, detail: str = "") -> None:
        outcome.applied.append(change)
        log.info(
            "tenant=%s %s %s %s (%s)%s",
            change.tenant,
            change.action.value,
            change.kind,
            change.name,
            change.reason,
            f" {detail}" if detail else "",
            extra={
                "tenant": change.tenant,
                # Containers (and routes) belong to one service; networks and volumes to the whole tenant.
                "service": getattr(change.before or change.after, "service", None),
                "kind": change.kind,
                "action": change.action.name.lower(),
                "reason": change.reason,
            },
        )
        if self.on_applied:
            self.on_applied(change)

    def _create_network(self, network: Network, labels: dict[str, str]) -> str | None:
        """Create the network; if its subnet was taken since the snapshot, pick another from a fresh list."""
        for attempt in range(NETWORK_CREATE_ATTEMPTS):
            try:
                self._act(partial(self.docker.create_network, network, labels))
                return network.subnet
            except SubnetTaken:
                if attempt == NETWORK_CREATE_ATTEMPTS - 1:
                    raise
                used = self.docker.used_subnets()
                subnet = allocate_subnet(f"{network.name}#{attempt}", self.pool.pool, self.pool.prefixlen, used)
                network = replace(network, subnet=subnet)
        return network.subnet

    def _await_name_free(self, name: str) -> None:
        """A container of this name that Docker is still removing (``docker rm -f`` just now) frees it shortly."""
        deadline = time.monotonic() + NAME_FREE_TIMEOUT
        while time.monotonic() < deadline and not self.stop.is_set():
            current = self.docker.container(name)
            if current is None or current.state != "removing":
                return
            time.sleep(0.05)

    def _act(self, action: Callable[[], None], *, undo: bool = False) -> None:
        """One engine action, once a slot is free; a pass told to stop starts no new one, except to ``undo``
        (remove a new container that failed) what it already began, so the old version keeps serving."""
        with self.slots.hold():
            if not undo:
                self._check_stop()
            action()

    def _together(self, tasks: Sequence[Callable[[], None]]) -> list[Result[None]]:
        return run_all(tasks, self.stop)

    @staticmethod
    def _raise_interrupted(results: Sequence[Result[T]]) -> None:
        if any(isinstance(r.error, Interrupted) for r in results):
            raise Interrupted("stopping: pass interrupted between actions (actions in flight finished)")

    def _phase(self, outcome: TenantOutcome, changes: Sequence[Change], action: Callable[[Change], str]) -> None:
        """Carry out independent changes together; log those done in plan order, then raise what failed."""
        results = run_all([partial(action, c) for c in changes], self.stop)
        for change, result in zip(changes, results, strict=True):
            if result.error is None:
                self._done(outcome, change, result.value or "")
        self._raise_interrupted(results)
        error = first_error(results)
        if error is not None:
            raise error

    def _refresh(self, tenant: str, names: Sequence[str]) -> dict[str, Container | None]:
        """Re-read the containers waiting for readiness: one list call each, or one tenant listing for many."""
        if len(names) < LIST_TENANT_FROM:
            return {name: self.docker.container(name) for name in names}
        # An empty scope: the listing inspects nothing (inspections belong to the pass's observation).
        seen = {c.name: c for c in self.docker.observe(tenant, scope=frozenset()).containers}
        return {name: seen.get(name) for name in names}

    def _await_ready(self, tenant: str, containers: Sequence[Container]) -> dict[str, tuple[Container | None, str]]:
        if not containers:
            return {}
        verdicts = wait_all_ready(
            lambda names: self._refresh(tenant, names),
            {c.name: (c.port, c.health) for c in containers},
            timeout=self.ready_timeout,
            stop=self.stop,
            probe=self.probe,
        )
        # Stopped while waiting: the new containers stay as they are; the next pass routes them or resumes the
        # replacement (``core.diff``), as after a crash, rather than this pass removing them in a hurry.
        self._check_stop()
        return verdicts

    def _remove(self, doomed: Sequence[tuple[Container, str | None]], tenant: str) -> None:
        """Remove containers together (failed new halves, rolled-back upgrades); the old ones keep serving."""
        removals = [partial(self._act, partial(self.docker.remove_container, c), undo=True) for c, _ in doomed]
        results = self._together(removals)
        for (container, message), result in zip(doomed, results, strict=True):
            if result.error is None and message:
                log.warning("tenant=%s - container %s (%s)", tenant, container.name, message)
        self._raise_interrupted(results)
        error = first_error(results)
        if error is not None:
            raise error

    def _launch(self, change: Change) -> None:
        """Bring up one new container: create it (or start it), after its same-named predecessor went."""
        new = change.after
        assert isinstance(new, Container)
        if change.operation == "resume":
            if not new.running:
                self._act(partial(self.docker.start_container, new))
            return
        old = change.before if change.action is Action.REPLACE else None
        if isinstance(old, Container) and old.name == new.name:
            # Same name (e.g. its network vanished): the old one cannot serve anyway, so it goes first.
            self._act(partial(self.docker.remove_container, old))
        if change.operation == "start":
            self._act(partial(self.docker.start_container, new))
        else:
            self._await_name_free(new.name)
            self._act(partial(self.docker.run_container, new))

    def _before_upgrades(
        self, spec: TenantSpec | None, upgrades: Mapping[Upgrade, tuple[Change, ...]], outcome: TenantOutcome
    ) -> set[Change]:
        """Ask the gate; the replacements of refused upgrades are recorded as failed and not carried out."""
        if self.upgrades is None or spec is None or not upgrades:
            return set()
        self._check_stop()
        return ask_gate(self.upgrades, spec, upgrades, outcome)

    def _after_upgrades(
        self,
        spec: TenantSpec | None,
        upgrades: Mapping[Upgrade, tuple[Change, ...]],
        held: set[Change],
        outcome: TenantOutcome,
        ready: dict[str, Container],
        replaced_ok: list[Change],
    ) -> dict[Upgrade, tuple[Change, ...]]:
        """An upgrade is all replicas or none: if one new replica failed, the ready ones go too, before routing.

        Without checks every upgrade is reported to the gate now. With checks the failed ones are, and the ones
        that went ahead are returned, to be reported once their checks ran (``_check_rollout``)."""
        if self.upgrades is None or spec is None or not upgrades:
            return {}
        results, doomed = judge_upgrades(upgrades, held, outcome, ready, replaced_ok)
        self._remove(doomed, spec.name)
        if self.checks is None:
            if results:
                self.upgrades.after_upgrades(spec, results)
            return {}
        failed = {upgrade: why for upgrade, why in results.items() if why is not None}
        if failed:
            self.upgrades.after_upgrades(spec, failed)
        return {upgrade: upgrades[upgrade] for upgrade, why in results.items() if why is None}

    def _check_rollout(
        self,
        spec: TenantSpec | None,
        by: Buckets,
        backends: Backends,
        passed: dict[Upgrade, tuple[Change, ...]],
        outcome: TenantOutcome,
        replaced_ok: list[Change],
        hold_removal: str | None,
    ) -> None:
        """3b. Checks of what the pass rolled out; a failing one after an upgrade takes it back (``check_step``).

        A reverted upgrade leaves ``passed``, its changes leave ``replaced_ok`` and are recorded as failed."""
        if self.checks is None or self.router is None or by.route is None or spec is None or spec.state != "running":
            return
        self._check_stop()
        ready = dict(backends.ready)
        targets = rollout_targets(spec, ready, backends.final())
        if not targets:
            return
        results = self.checks.run(spec, targets, triggers(targets, passed))
        reverts = to_revert(spec, passed, results, self.checks)
        if reverts:
            doomed = take_back(reverts, passed, ready, replaced_ok, outcome)
            # The gate hears it first (operation failed, pin, the one alert), whatever the way back meets.
            if self.upgrades is not None:
                self.upgrades.after_upgrades(spec, reverts)
            for upgrade in reverts:
                self.checks.rolled_back(upgrade)
            # The old containers are still running: the route goes back to them, then the new ones go.
            _, removing = _leaving(by, replaced_ok)
            back = Backends(backends.observed, ready, removing, backends.discarded)
            route_tenant(self.router, spec.name, spec, by.route, back, hold_removal)
            self._remove(doomed, spec.name)
            again = rollout_targets(spec, {c.name: c for c in back.final()}, back.final())
            again = {name: image for name, image in again.items() if name in {u.service for u in reverts}}
            results.update(self.checks.run(spec, again, dict.fromkeys(again, "rollback")))
        self.checks.settle(spec.name, results, handed={u.service for u in reverts})

    def _bring_up(
        self, tenant: str, by: Buckets, held: set[Change], outcome: TenantOutcome
    ) -> tuple[dict[str, Container], list[Change], dict[Change, tuple[Container | None, str]]]:
        """Phase 2: every new container of the tenant started together, then one wait for all to be ready.

        Returns the ready ones by name, the fresh replacements that succeeded, and the verdicts of resumed ones.
        A failed new half of a replacement is removed (the old keeps serving); an engine error is raised once
        every other action has ended and the containers that did start were waited for.
        """
        fresh = by.creates + [c for c in by.replaces if c not in held] + by.starts
        launching = fresh + by.resumes
        if launching:
            self._check_stop()
        launched = self._together([partial(self._launch, c) for c in launching])
        self._raise_interrupted(launched)
        up = [c for c, r in zip(launching, launched, strict=True) if r.error is None]
        verdicts = self._await_ready(tenant, [c.after for c in up if isinstance(c.after, Container)])
        ready: dict[str, Container] = {}
        replaced_ok: list[Change] = []
        doomed: list[tuple[Container, str | None]] = []
        for change in (c for c in fresh if c in up):
            new, old = change.after, change.before
            assert isinstance(new, Container)
            started, why = verdicts[new.name]
            if started is None:
                outcome.failed.append((change, why))
                log.warning("tenant=%s container %s not ready: %s", tenant, new.name, why)
                if change.action is Action.REPLACE and not (isinstance(old, Container) and old.name == new.name):
                    # Keep the old version serving; the failed new container goes away.
                    doomed.append((replace(new, state="running"), None))
                continue
            ready[started.name] = started
            self._done(outcome, change, f"ready at {started.ip}")
            if change.action is Action.REPLACE:
                replaced_ok.append(change)
        self._remove(doomed, tenant)
        error = first_error(launched)
        if error is not None:
            raise error
        resumed = {c: verdicts[c.after.name] for c in by.resumes if isinstance(c.after, Container)}
        return ready, replaced_ok, resumed

    def _resume(
        self,
        tenant: str,
        resumed: Mapping[Change, tuple[Container | None, str]],
        outcome: TenantOutcome,
        ready: dict[str, Container],
        replaced_ok: list[Change],
    ) -> set[str]:
        """Interrupted replacements, up to readiness; the names of new halves that never got ready (removed)."""
        discarded: set[str] = set()
        doomed: list[tuple[Container, str | None]] = []
        for change, (started, why) in resumed.items():
            new = change.after
            assert isinstance(new, Container)
            if started is None:
                outcome.failed.append((change, why))
                discarded.add(new.name)
                # Never verified and never ready: it goes, and the old container keeps serving.
                doomed.append((replace(new, state="running"), f"interrupted replacement undone, not ready: {why}"))
                continue
            ready[started.name] = started
            self._done(outcome, change, f"ready at {started.ip}")
            replaced_ok.append(change)
        self._remove(doomed, tenant)
        return discarded

    def _network_or_volume(self, tenant: str, change: Change) -> str:
        resource = change.after
        labels = self.naming.base_labels(tenant, getattr(resource, "uid", None))
        if isinstance(resource, Network):
            return f"subnet {self._create_network(resource, labels)}"
        assert isinstance(resource, Volume)
        self._act(partial(self.docker.create_volume, resource, labels))
        return ""

    def _remove_service(self, change: Change) -> str:
        assert isinstance(change.before, Service)
        self._act(partial(self.docker.remove_service, change.before))
        return ""

    def _update(self, change: Change) -> str:
        assert isinstance(change.after, Container)
        self._act(partial(self.docker.update_container, change.after))
        return ""

    def _service(self, change: Change) -> str:
        service = change.after
        assert isinstance(service, Service)
        if change.action is Action.CREATE:
            self._act(partial(self.docker.create_service, service))
        else:
            self._act(partial(self.docker.update_service, service))
        return f"{service.replicas} replica(s){f' on {service.node}' if service.node else ''}"

    def _follow(self, spec: TenantSpec | None) -> Callable[[list[Container]], None] | None:
        """Routing that follows a rolling service: its running tasks, published as they change."""
        router = self.router
        if router is None or spec is None or spec.state != "running":
            return None
        return lambda tasks: router.publish(spec, tasks)

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
        self._phase(outcome, by.network_creates + by.volume_creates, partial(self._network_or_volume, tenant))
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
            leaving, removing = _leaving(by, replaced_ok)
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
                    leaving, removing = _leaving(by, replaced_ok)
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


def _leaving(by: Buckets, replaced_ok: Sequence[Change]) -> tuple[list[Container], set[str]]:
    """The old halves of successful replacements (stopped after routing), and every container that goes."""
    leaving = [
        c.before
        for c in replaced_ok
        if isinstance(c.before, Container) and isinstance(c.after, Container) and c.before.name != c.after.name
    ]
    removing = {c.name for c in by.deletes} | {c.name for c in leaving} | {c.name for c in by.stops}
    return leaving, removing


def _before(change: Change) -> Container:
    assert isinstance(change.before, Container)
    return change.before
