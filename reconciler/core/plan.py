"""The plan: an immutable, sorted list of changes. Computed by ``core.diff``, filtered by ``core.policies``,
printed by ``core.render_plan`` and executed, exactly, by the runtime's executor.

Sorting encodes the ordering rule: for creation network and volume, then containers (routes and DNS come after
in the executor); for removal the reverse. Replacement is one change (-/+) that the executor carries out as
start new → ready → in routing → old out of routing → stop old.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from reconciler.core.resources import Container, Network, Volume

Resource = Container | Network | Volume
Kind = Literal["network", "volume", "container"]


class Action(Enum):
    CREATE = "+"
    UPDATE = "~"
    REPLACE = "-/+"
    DELETE = "-"


# An update names the operation the executor performs in place.
Operation = Literal["create", "start", "stop", "update", "replace", "delete"]

# Creation phases run in ascending order; deletions in descending order after them.
_KIND_RANK: dict[str, int] = {"network": 0, "volume": 1, "container": 2}


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    tenant: str
    name: str
    reason: str
    before: Resource | None = None
    after: Resource | None = None
    operation: Operation = "create"

    @property
    def sort_key(self) -> tuple[int, int, str, str, str, int, str]:
        rank = _KIND_RANK[self.kind]
        resource = self.before or self.after
        service, track, replica = (
            (resource.service, resource.track, resource.replica) if isinstance(resource, Container) else ("", "", 0)
        )
        if self.action is Action.DELETE:
            # Removal in reverse kind order, highest replica index first.
            return (1, -rank, self.tenant, service, track, -replica, self.name)
        return (0, rank, self.tenant, service, track, replica, self.name)

    def describe(self) -> str:
        return f"{self.action.value} {self.kind} {self.name} ({self.reason})"


@dataclass(frozen=True)
class Refusal:
    """A change a policy withheld, with why; shown by ``plan`` and counted in metrics."""

    change: Change
    policy: str
    reason: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()
    refused: tuple[Refusal, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    @staticmethod
    def of(changes: list[Change] | tuple[Change, ...], refused: tuple[Refusal, ...] = ()) -> Plan:
        return Plan(changes=tuple(sorted(changes, key=lambda c: c.sort_key)), refused=refused)

    @property
    def empty(self) -> bool:
        return not self.changes

    def for_tenant(self, tenant: str) -> Plan:
        return Plan(
            changes=tuple(c for c in self.changes if c.tenant == tenant),
            refused=tuple(r for r in self.refused if r.change.tenant == tenant),
        )

    def tenants(self) -> list[str]:
        return sorted({c.tenant for c in self.changes} | {r.change.tenant for r in self.refused})

    def counts(self) -> dict[str, int]:
        result = {action.name.lower(): 0 for action in Action}
        for change in self.changes:
            result[change.action.name.lower()] += 1
        return result
