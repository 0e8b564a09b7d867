"""Tenant status after a pass: phase and conditions from the plan, what was applied, and the stages' verdicts.

Called by ``passes.reconcile`` for every tenant the pass looked at; written back by ``desired_state.status``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from desired_state.canaries import CanaryRecord
from desired_state.model import Condition, DesiredState, Phase, TenantStatus
from desired_state.specs import TenantSpec
from reconciler.core.errors import PermanentError, ReconcileError
from reconciler.core.plan import Plan
from reconciler.core.resources import DesiredTenant
from reconciler.runtime.passes.canary_status import canary_conditions
from reconciler.runtime.passes.executor import TenantOutcome
from reconciler.runtime.passes.stages import DnsPublisher, Router

ExtraConditions = Callable[[str, DesiredTenant | None, TenantStatus | None], list[Condition]]


class ChecksVerdict(Protocol):
    def condition(self, tenant: str, spec: TenantSpec) -> Condition | None:
        """``ChecksPassing`` from the latest result of each check (``runtime.checks.runner``); None: none ran."""


def spec_digest(spec: TenantSpec) -> str:
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def error_reason(error: ReconcileError) -> str:
    """The condition reason of a failed pass: permanent errors wait for a change, the others are retried."""
    return "PermanentError" if isinstance(error, PermanentError) else "ApplyFailed"


@dataclass
class StatusBuilder:
    router: Router | None = None
    dns: DnsPublisher | None = None
    extra_conditions: ExtraConditions | None = None
    # The canary analysis's state rows by tenant (``tenant_canaries``): the ``Canary`` condition.
    canaries: Mapping[str, Sequence[CanaryRecord]] = field(default_factory=dict)
    checks: ChecksVerdict | None = None

    def invalid(self, tenant: str, desired: DesiredState, previous: TenantStatus | None) -> TenantStatus:
        error = desired.errors[tenant]
        return TenantStatus(
            tenant=tenant,
            phase="Invalid",
            conditions=(Condition("Valid", "False", "InvalidSpec", str(error)),),
            observed_generation=desired.generations.get(tenant),
            applied_hash=previous.applied_hash if previous else None,
            last_error=str(error),
            last_reconciled_at=datetime.now(UTC),
        )

    def tenant(
        self,
        tenant: str,
        spec: TenantSpec | None,
        desired: DesiredState,
        plan: Plan,
        rendered: DesiredTenant | None,
        outcome: TenantOutcome | None,
        error: ReconcileError | str | None,
        previous: TenantStatus | None,
    ) -> TenantStatus:
        conditions = [Condition("Valid", "True", "SpecValid")]
        phase: Phase
        if error is not None:
            phase = "Failed"
            reason = error_reason(error) if isinstance(error, ReconcileError) else "PlanFailed"
            conditions.append(Condition("ContainersReady", "False", reason, str(error)))
        elif spec is None or spec.state == "absent":
            phase = "Absent" if outcome is None or not outcome.waiting else "Progressing"
        elif spec.state == "stopped":
            phase = "Stopped"
            conditions.append(Condition("ContainersReady", "False", "TenantStopped"))
        else:
            phase = "Ready"
            conditions.append(Condition("ContainersReady", "True", "AllReplicasRunning"))
        if self.router is not None and spec is not None and spec.state == "running":
            route = self.router.ready(tenant)
            conditions.append(route)
            if phase == "Ready" and route.status != "True":
                phase = "Progressing"
        if self.dns is not None and spec is not None and spec.state == "running":
            conditions.append(self.dns.condition(tenant))
        if outcome is not None and outcome.waiting:
            conditions.append(Condition("Removal", "False", "Waiting", outcome.waiting))
        data = next((b for b in plan.blocked if b.tenant == tenant and b.kind == "volume"), None)
        if data is not None and error is None and spec is not None:
            # Held by ``planning.identity``: nothing of the tenant was touched until an operator decides.
            conditions = [c for c in conditions if c.type != "ContainersReady"]
            conditions.append(Condition("ContainersReady", "False", "Held", "held until the Data condition clears"))
            conditions.append(Condition("Data", "False", data.reason, data.message))
            phase = "Failed"
        node = next((b for b in plan.blocked if b.tenant == tenant and b.kind == "service"), None)
        if node is not None and spec is not None and spec.state == "running":
            # Swarm: the tenant's data node is drained, down or gone; moving the data is the operator's decision.
            conditions.append(Condition("Placement", "False", node.reason, node.message))
            if phase in ("Ready", "Progressing"):
                phase = "Degraded"
        guarded = [r.reason for r in plan.refused if r.policy == "mass-delete" and r.change.tenant == tenant]
        if guarded:
            # Nothing of it was removed: the plan was refused, so the tenant is neither Absent nor converged.
            conditions.append(Condition("Removal", "False", "MassDeleteRefused", guarded[0]))
            phase = "Failed"
        pins = [r.reason for r in plan.refused if r.policy == "pinned" and r.change.tenant == tenant]
        if pins and spec is not None:
            # Not a "Degraded" condition: the failed upgrade already sent its one alert.
            conditions.append(Condition("Pinned", "True", "UpgradeFailed", pins[0]))
            if phase in ("Ready", "Progressing"):
                phase = "Degraded"
        if spec is not None and spec.state == "running" and self.canaries.get(tenant):
            canary = canary_conditions(spec, self.canaries[tenant])
            conditions.extend(canary)
            if phase in ("Ready", "Progressing") and any(c.reason == "BackedOut" for c in canary):
                phase = "Degraded"
        checked = self.checks.condition(tenant, spec) if self.checks is not None and spec is not None else None
        if checked is not None and spec is not None and spec.state == "running":
            # Not an alert here: the runner alerted once when the check started failing.
            conditions.append(checked)
            if phase in ("Ready", "Progressing") and checked.status == "False":
                phase = "Degraded"
        if self.extra_conditions is not None and spec is not None:
            extra = self.extra_conditions(tenant, rendered, previous)
            conditions.extend(extra)
            if phase in ("Ready", "Progressing") and any(c.type == "Degraded" and c.status == "True" for c in extra):
                phase = "Degraded"
        return TenantStatus(
            tenant=tenant,
            phase=phase,
            conditions=tuple(conditions),
            observed_generation=desired.generations.get(tenant),
            applied_hash=spec_digest(spec)
            if spec is not None and error is None and not guarded and data is None
            else (previous.applied_hash if previous else None),
            last_error=str(error) if error is not None else None,
            last_reconciled_at=datetime.now(UTC),
        )
