"""What the loader hands the reconciler, and what the reconciler writes back for the web UI.

``DesiredState`` is the result of one load: the valid tenants as frozen specs, and for each invalid tenant
the error that keeps it out of the pass (its running resources are left exactly as they are).
``TenantStatus`` is the row the reconciler writes back per tenant. ``VolumeBinding``: which tenant uid a data
volume belongs to. Plain values, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from desired_state.inputs import CatalogEntry
from desired_state.specs import SpecError, TenantSpec

Phase = Literal["Pending", "Ready", "Progressing", "Stopped", "Absent", "Failed", "Degraded", "Invalid"]
ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class DesiredState:
    catalog: dict[str, CatalogEntry]
    tenants: dict[str, TenantSpec]
    errors: dict[str, SpecError]
    # Generation the web UI bumps on every edit of a tenant, for status.observed_generation.
    generations: dict[str, int] = field(default_factory=dict)
    # Each tenant's stable uid (``tenants.uid``); a tenant whose row has none yet is missing (``reconciler plan``
    # plans it as a new uid, which matches no existing data).
    uids: dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> frozenset[str]:
        """Every tenant name present in the database, valid or not: only others may be removed."""
        return frozenset(self.tenants) | frozenset(self.errors)


BindingState = Literal["pending", "bound", "retired"]


@dataclass(frozen=True)
class VolumeBinding:
    """A data volume bound to the uid of the tenant it belongs to (a ``data_volumes`` row, ``desired_state.identity``).

    ``pending``: the pass that wrote it creates the volume; ``bound``: the volume was seen in Docker. ``legacy``
    (only on a binding to write): the volume predates uids and is bound to the tenant of its name, once.
    """

    volume: str
    tenant: str
    uid: str
    state: BindingState = "bound"
    created_at: datetime | None = None
    legacy: bool = False


@dataclass(frozen=True)
class Condition:
    type: str  # e.g. Ready, ContainersReady, RouteReady, DNSReady, Degraded, Valid
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition: datetime | None = None


@dataclass(frozen=True)
class TenantStatus:
    tenant: str
    phase: Phase
    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None
    applied_hash: str | None = None
    last_error: str | None = None
    last_reconciled_at: datetime | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
