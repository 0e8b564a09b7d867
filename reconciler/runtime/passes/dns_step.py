"""The DNS share of one pass, in the order the plan needs: removals first, publications last.

``remove_first`` sends the plan's DNS deletions before any container or route is touched, so a name stops
resolving before its backends go; ``hold`` tells the executor to keep a leaving tenant's containers and route
while its records may still exist (the deletion failed, or the server could not be read this pass);
``publish_ready`` sends new and changed records of tenants whose route is ready and defers the others to a later
pass; ``settle`` sets every running tenant's ``DNSReady``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from desired_state.specs import TenantSpec
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Action, Change, Plan
from reconciler.runtime.passes.stages import DnsOutcome, DnsPublisher

log = logging.getLogger("reconciler.dns")

HOLD = "waiting for the DNS record to be removed first"


class DnsStep:
    def __init__(
        self, dns: DnsPublisher | None, plan: Plan, failure: ReconcileError | None, stop: threading.Event
    ) -> None:
        self.dns = dns
        self.plan = plan
        self.failure = failure
        self.stop = stop
        self.outcomes: list[DnsOutcome] = []
        self.deferred: frozenset[str] = frozenset()
        changes = plan.of_kind("dns")
        self._deletes = [c for c in changes if c.action is Action.DELETE]
        self._publications = [c for c in changes if c.action is not Action.DELETE]
        self._undeleted: set[str] = set()

    def _send(self, changes: list[Change]) -> DnsOutcome | None:
        assert self.dns is not None
        try:
            outcome = self.dns.apply(changes)
        except ReconcileError as exc:
            log.warning("DNS update failed: %s", exc)
            self.failure = exc
            return None
        self.outcomes.append(outcome)
        return outcome

    def remove_first(self) -> None:
        if self.dns is None or not self._deletes or self.stop.is_set():
            return
        outcome = self._send(self._deletes)
        applied = set(outcome.applied) if outcome is not None else set()
        self._undeleted = {c.tenant for c in self._deletes if c not in applied}

    def hold(self, tenant: str, spec: TenantSpec | None) -> str | None:
        """Why the tenant's removals must wait for DNS, or None."""
        if self.dns is None or (spec is not None and spec.state == "running"):
            return None
        if tenant in self._undeleted:
            return HOLD
        if self.failure is not None and self.dns.published(tenant):
            return HOLD
        return None

    def publish_ready(self, ready: Callable[[str], bool]) -> None:
        if self.dns is None or not self._publications or self.failure is not None:
            return
        tenants = {c.tenant for c in self._publications}
        now = {t for t in tenants if ready(t)}
        self.deferred = frozenset(tenants - now)
        changes = [c for c in self._publications if c.tenant in now]
        if changes:
            self._send(changes)

    def applied_removals(self) -> list[Change]:
        return [c for outcome in self.outcomes for c in outcome.applied if c.action is Action.DELETE]

    def settle(self, tenants: Iterable[str]) -> None:
        if self.dns is not None:
            self.dns.settle(tenants, self.plan, self.outcomes, deferred=self.deferred, failure=self.failure)
