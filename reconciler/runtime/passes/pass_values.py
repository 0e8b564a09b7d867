"""The values one pass works with: its inputs (desired state, observation, plan) and its result.

Built by ``passes.reconcile`` (``Reconciler.compute`` and ``_apply``) and read by the service's loop, the CLI,
tenant operations and the pass metrics; re-exported by ``passes.reconcile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from desired_state.canaries import CanaryRecord
from desired_state.model import DesiredState
from desired_state.specs import TenantSpec
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Change, Plan
from reconciler.core.resources import DesiredTenant, Snapshot
from reconciler.planning import Observed, SiteHosts
from reconciler.runtime.passes.outcome import TenantOutcome


@dataclass(frozen=True)
class PassInputs:
    desired: DesiredState
    snapshot: Snapshot
    rendered: dict[str, DesiredTenant]
    plan: Plan
    # Tenants the pass acts on: the requested scope minus tenants the database no longer has (None: all).
    scope: frozenset[str] | None = None
    # Tenants left alone by this pass because an operation (a restore) is working on them, with why.
    held: dict[str, str] = field(default_factory=dict)
    observed: Observed | None = None
    # The DNS server could not be read this pass: no DNS change is planned and leaving tenants wait.
    dns_failure: ReconcileError | None = None
    # Tenants whose rendering or planning raised, with why.
    failed: dict[str, str] = field(default_factory=dict)
    # The Nginx sites' hosts the DNS plan covers (full passes with sites and DNS; None: site records left alone).
    sites: SiteHosts | None = None
    # The canary analysis's state rows by tenant, and the specs whose routes carry its weights (apply routes these).
    canaries: dict[str, tuple[CanaryRecord, ...]] = field(default_factory=dict)
    routed: dict[str, TenantSpec] = field(default_factory=dict)


@dataclass
class PassResult:
    plan: Plan
    outcomes: dict[str, TenantOutcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # The error behind each entry of ``errors``: the loop retries transient ones and parks permanent ones.
    failures: dict[str, ReconcileError] = field(default_factory=dict)
    # Changes that restored a spec already applied and unchanged since: the world drifted, we healed it.
    heals: list[Change] = field(default_factory=list)
    duration: float = 0.0
    # After a sweep: every tenant it saw (database, engine, routes, DNS) except those it removed itself.
    tenants: list[str] = field(default_factory=list)
    # DNS changes the server accepted in this pass (the executor's outcomes hold the other layers).
    dns_applied: list[Change] = field(default_factory=list)

    @property
    def applied(self) -> list[Change]:
        """Every change carried out, in the order of the plan's layers (DNS removals first)."""
        changes = [c for outcome in self.outcomes.values() for c in outcome.applied]
        removed = [c for c in self.dns_applied if c.removal]
        return removed + changes + [c for c in self.dns_applied if not c.removal]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.plan.errors

    @property
    def failed_tenants(self) -> list[str]:
        return sorted(self.errors)
