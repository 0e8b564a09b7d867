"""Execute one tenant's share of a plan against the drivers, in the order ARCHITECTURE.md fixes.

Called by ``runtime.passes.reconcile`` for every tenant of the pass with its share of the plan, which it carries
out and nothing else (a converged tenant costs no call). Creation goes network and volume → containers → the
plan's route change; a replacement is start new → ready → in routing → old out of routing → stop old; removal is
routes → containers → network (DNS records go before, and come after, in ``passes.dns_step``). Data volumes
are never removed here. Each action is logged as one line with tenant and reason. ``stop`` is checked between
actions so SIGTERM ends a pass cleanly.

A replacement an earlier process did not finish (``kill -9`` mid-change) comes back as a ``resume`` change: its
new container exists, so it is started if need be but never created again; the rest is the same choreography
(ready → old + new → new only → old removed). If the new container never gets ready it is removed and the old
one keeps serving, exactly as when a fresh replacement fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from desired_state.specs import TenantSpec
from reconciler.core.diff import SubnetPool
from reconciler.core.errors import ReconcileError, SubnetTaken, TransientError
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.resources import Container, Network, Snapshot, Volume
from reconciler.core.subnets import allocate_subnet
from reconciler.core.upgrades import Upgrade, upgrades_in
from reconciler.runtime.passes.engine import ContainerEngine
from reconciler.runtime.passes.readiness import wait_ready
from reconciler.runtime.passes.stages import Router, UpgradeGate
from renderers.containers import Naming

log = logging.getLogger("reconciler.apply")


# Concurrent network creation by others can take a subnet between snapshot and create; a few retries suffice.
NETWORK_CREATE_ATTEMPTS = 5
# Removal of a container by Docker takes well under a second; past this the create fails and is retried.
NAME_FREE_TIMEOUT = 10.0


class Interrupted(ReconcileError):
    """The process was asked to stop; the pass ended between two actions."""


@dataclass
class TenantOutcome:
    tenant: str
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    waiting: str | None = None  # why removal was held back (e.g. DNS record still published)

    @property
    def ok(self) -> bool:
        return not self.failed


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
                self.docker.create_network(network, labels)
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

    def _wait_ready(self, container: Container) -> tuple[Container | None, str]:
        return wait_ready(
            lambda: self.docker.container(container.name),
            port=container.port,
            health=container.health,
            timeout=self.ready_timeout,
            stop=self.stop,
        )

    def _before_upgrades(
        self, spec: TenantSpec | None, upgrades: Mapping[Upgrade, tuple[Change, ...]], outcome: TenantOutcome
    ) -> set[Change]:
        """Ask the gate; the replacements of refused upgrades are recorded as failed and not carried out."""
        if self.upgrades is None or spec is None or not upgrades:
            return set()
        tenant = spec.name
        self._check_stop()
        try:
            refused = dict(self.upgrades.before_upgrades(spec, list(upgrades)))
        except ReconcileError as exc:
            refused = {upgrade: str(exc) for upgrade in upgrades}
        held: set[Change] = set()
        for upgrade, why in refused.items():
            log.warning("tenant=%s upgrade %s held back: %s", tenant, upgrade.describe(), why)
            for change in upgrades.get(upgrade, ()):
                outcome.failed.append((change, why))
                held.add(change)
        return held

    def _after_upgrades(
        self,
        spec: TenantSpec | None,
        upgrades: Mapping[Upgrade, tuple[Change, ...]],
        held: set[Change],
        outcome: TenantOutcome,
        ready: dict[str, Container],
        replaced_ok: list[Change],
    ) -> None:
        """An upgrade is all replicas or none: if one new replica failed, the ready ones go too, before routing."""
        if self.upgrades is None or spec is None or not upgrades:
            return
        tenant = spec.name
        failures = {change: why for change, why in outcome.failed}
        results: dict[Upgrade, str | None] = {}
        for upgrade, changes in upgrades.items():
            if any(change in held for change in changes):
                continue
            why = next((failures[c] for c in changes if c in failures), None)
            results[upgrade] = why
            if why is None:
                continue
            for change in changes:
                if change not in replaced_ok or not isinstance(change.after, Container):
                    continue
                replaced_ok.remove(change)
                ready.pop(change.after.name, None)
                if change in outcome.applied:
                    outcome.applied.remove(change)
                outcome.failed.append((change, f"another replica of the upgrade failed: {why}"))
                self.docker.remove_container(replace(change.after, state="running"))
                log.warning("tenant=%s - container %s (upgrade rolled back: %s)", tenant, change.after.name, why)
        if results:
            self.upgrades.after_upgrades(spec, results)

    def _resume(
        self,
        tenant: str,
        resumes: list[Change],
        outcome: TenantOutcome,
        ready: dict[str, Container],
        replaced_ok: list[Change],
    ) -> set[str]:
        """Finish interrupted replacements up to readiness; the names of new halves that never got ready (removed)."""
        discarded: set[str] = set()
        for change in resumes:
            self._check_stop()
            new = change.after
            assert isinstance(new, Container)
            if not new.running:
                self.docker.start_container(new)
            started, why = self._wait_ready(new)
            if started is None:
                outcome.failed.append((change, why))
                discarded.add(new.name)
                # Never verified and never ready: it goes, and the old container keeps serving.
                self.docker.remove_container(replace(new, state="running"))
                log.warning(
                    "tenant=%s - container %s (interrupted replacement undone, not ready: %s)", tenant, new.name, why
                )
                continue
            ready[started.name] = started
            self._done(outcome, change, f"ready at {started.ip}")
            replaced_ok.append(change)
        return discarded

    def apply_tenant(
        self, tenant: str, plan: Plan, spec: TenantSpec | None, observed: Snapshot, *, hold_removal: str | None = None
    ) -> TenantOutcome:
        outcome = TenantOutcome(tenant)
        changes = plan.for_tenant(tenant).changes
        by = _Buckets(changes)

        # 1. Network and volume.
        for change in by.network_creates + by.volume_creates:
            self._check_stop()
            resource = change.after
            labels = self.naming.base_labels(tenant, getattr(resource, "uid", None))
            if isinstance(resource, Network):
                subnet = self._create_network(resource, labels)
                self._done(outcome, change, f"subnet {subnet}")
            elif isinstance(resource, Volume):
                self.docker.create_volume(resource, labels)
                self._done(outcome, change)

        # 1b. Limits changed behind our back (docker update): set back in place, the container keeps serving.
        for change in by.updates:
            self._check_stop()
            assert isinstance(change.after, Container)
            self.docker.update_container(change.after)
            self._done(outcome, change)

        # 2. New containers: creates, the new half of replacements, and restarts of stopped ones. Replacements that
        # change a service's image are upgrades: the gate backs up and migrates first, or keeps the old version.
        upgrades = upgrades_in(by.replaces) if self.upgrades is not None and spec is not None else {}
        held = self._before_upgrades(spec, upgrades, outcome)
        ready: dict[str, Container] = {}
        replaced_ok: list[Change] = []
        for change in by.creates + [c for c in by.replaces if c not in held] + by.starts:
            self._check_stop()
            new = change.after
            assert isinstance(new, Container)
            old = change.before if change.action is Action.REPLACE else None
            if isinstance(old, Container) and old.name == new.name:
                # Same name (e.g. its network vanished): the old one cannot serve anyway, so it goes first.
                self.docker.remove_container(old)
            if change.operation == "start":
                self.docker.start_container(new)
            else:
                self._await_name_free(new.name)
                self.docker.run_container(new)
            started, why = self._wait_ready(new)
            if started is None:
                outcome.failed.append((change, why))
                log.warning("tenant=%s container %s not ready: %s", tenant, new.name, why)
                if change.action is Action.REPLACE and not (isinstance(old, Container) and old.name == new.name):
                    # Keep the old version serving; the failed new container goes away.
                    self.docker.remove_container(replace(new, state="running"))
                continue
            ready[started.name] = started
            self._done(outcome, change, f"ready at {started.ip}")
            if change.action is Action.REPLACE:
                replaced_ok.append(change)

        self._after_upgrades(spec, upgrades, held, outcome, ready, replaced_ok)
        discarded = self._resume(tenant, by.resumes, outcome, ready, replaced_ok)

        leaving = [
            c.before
            for c in replaced_ok
            if isinstance(c.before, Container) and isinstance(c.after, Container) and c.before.name != c.after.name
        ]
        removing = {c.name for c in by.deletes} | {c.name for c in leaving} | {c.name for c in by.stops}

        # 3. Routing, as the plan says: new backends in (seen UP) before old ones out (confirmed gone), or the
        # route withdrawn before the containers behind it go.
        route = by.route
        if self.router is not None and route is not None:
            self._check_stop()
            if route.action is Action.DELETE:
                if hold_removal is None:
                    self.router.withdraw(tenant)
                    self._done(outcome, route)
            elif spec is not None and spec.state == "running":
                staying = [
                    c
                    for c in observed.containers
                    if c.running and c.ip and c.name not in removing and c.name not in ready and c.name not in discarded
                ]
                final = sorted([*staying, *ready.values()], key=lambda c: c.name)
                going = [c for c in observed.containers if c.name in removing and c.running and c.ip]
                if going and ready:
                    self.router.publish(spec, sorted([*final, *going], key=lambda c: c.name))
                self.router.publish(spec, final)
                self._done(outcome, route)

        # 4. Removal: stops, deletions, old halves of replacements, then the network.
        if hold_removal and (by.deletes or by.network_deletes):
            outcome.waiting = hold_removal
            return outcome
        for change in by.stops:
            self._check_stop()
            assert isinstance(change.before, Container)
            self.docker.stop_container(change.before)
            self._done(outcome, change)
        for old in leaving:
            self._check_stop()
            self.docker.remove_container(old)
            log.info("tenant=%s - container %s (replaced, out of routing)", tenant, old.name)
        for change in by.deletes:
            self._check_stop()
            assert isinstance(change.before, Container)
            self.docker.remove_container(change.before)
            self._done(outcome, change)
        for change in by.network_deletes:
            self._check_stop()
            assert isinstance(change.before, Network)
            self.docker.remove_network(change.before)
            self._done(outcome, change)
        if outcome.failed:
            reasons = "; ".join(f"{c.name}: {why}" for c, why in outcome.failed)
            raise TransientError(f"tenant {tenant!r}: {reasons}", tenant=tenant)
        return outcome


class _Buckets:
    def __init__(self, changes: tuple[Change, ...]) -> None:
        def pick(kind: str, action: Action, operation: str | None = None) -> list[Change]:
            return [
                c
                for c in changes
                if c.kind == kind and c.action is action and (operation is None or c.operation == operation)
            ]

        self.network_creates = pick("network", Action.CREATE)
        self.volume_creates = pick("volume", Action.CREATE)
        self.creates = pick("container", Action.CREATE)
        self.replaces = pick("container", Action.REPLACE, "replace")
        self.resumes = pick("container", Action.REPLACE, "resume")
        self.starts = pick("container", Action.UPDATE, "start")
        self.stops = pick("container", Action.UPDATE, "stop")
        self.updates = pick("container", Action.UPDATE, "update")
        self.deletes = pick("container", Action.DELETE)
        self.network_deletes = pick("network", Action.DELETE)
        routes = [c for c in changes if c.kind == "route"]
        self.route = routes[0] if routes else None
