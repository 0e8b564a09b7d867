"""The ``Canary`` condition of a tenant's status: what the canary analysis did to its two-version services.

Called by ``passes.status.StatusBuilder`` for every running tenant with a state row in ``tenant_canaries`` (read
by ``passes.reconcile`` with the pass's inputs). A row whose images are no longer the service's two versions is
stale (the operator moved on) and shows nothing. A back-out makes the tenant ``Degraded``; its one alert was sent
by the analysis job (``runtime.operations.canary``), not by the status.
"""

from __future__ import annotations

from collections.abc import Sequence

from desired_state.canaries import CanaryRecord
from desired_state.model import Condition
from desired_state.specs import TenantSpec


def _current(spec: TenantSpec, record: CanaryRecord) -> bool:
    service = spec.service(record.canary.service)
    if service is None or len(service.versions) != 2:
        return False
    return record.canary.same_pair(service.versions[0].image, service.versions[1].image)


def _condition(record: CanaryRecord) -> Condition:
    canary = record.canary
    name = f"canary {canary.canary_image} of {canary.service}"
    if canary.state == "backed-out":
        return Condition(
            "Canary",
            "False",
            "BackedOut",
            f"{name} backed out to weight 0 and pinned to {canary.stable_image}: {canary.reason}",
        )
    if canary.state == "promoted":
        finish = f"set {canary.service}'s image to {canary.canary_image} to finish the upgrade"
        return Condition("Canary", "True", "Promoted", f"{name} promoted to 100%; {finish}")
    last = canary.reason or "no window judged yet"
    if canary.state == "promoting":
        return Condition("Canary", "True", "Promoting", f"{name} at {canary.weight}%; last window: {last}")
    return Condition("Canary", "True", "Analysing", f"{name} under analysis; last window: {last}")


def canary_conditions(spec: TenantSpec, records: Sequence[CanaryRecord]) -> list[Condition]:
    """One condition for the tenant (the first service backed out wins, else the first canary), or none."""
    current = [r for r in records if _current(spec, r)]
    if not current:
        return []
    backed_out = [r for r in current if r.canary.state == "backed-out"]
    return [_condition(backed_out[0] if backed_out else current[0])]
