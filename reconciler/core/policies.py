"""Policies: small pure filters from plan to plan, applied after the diff and before execution.

- ``ownership``: never touch an object that does not carry our managed and owner labels (defence in depth:
  the Docker driver only observes labelled objects, but a plan may be built from any snapshot).
- ``mass_delete_guard``: refuse the removals of a pass that would delete more than a share of the owned
  containers (a tenants table that reads empty by mistake must not wipe the platform).
- ``pinned``: a tenant service pinned to its old image after a failed upgrade is not replaced by the image
  that failed; a new desired image lifts the pin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler.core.plan import Action, Change, Plan, Refusal
from reconciler.core.resources import LABEL_IMAGE, LABEL_MANAGED, LABEL_OWNER, Container
from reconciler.core.upgrades import Pin, pin_for


@dataclass(frozen=True)
class MassDeleteLimits:
    # Refuse when a pass deletes more than this share of owned containers ...
    max_share: float = 0.5
    # ... and more than this many of them (so removing one small tenant of three is never refused).
    min_count: int = 3


def _owned(change: Change, owner: str) -> bool:
    before = change.before
    if not isinstance(before, Container):
        return True
    labels = dict(before.labels)
    return labels.get(LABEL_MANAGED) == "true" and labels.get(LABEL_OWNER) == owner


def ownership(plan: Plan, owner: str) -> Plan:
    kept: list[Change] = []
    refused = list(plan.refused)
    for change in plan.changes:
        if _owned(change, owner):
            kept.append(change)
        else:
            name = change.before.name if change.before is not None else change.name
            refused.append(Refusal(change, "ownership", f"{name} does not carry our owner label {owner!r}"))
    return Plan(changes=tuple(kept), refused=tuple(refused), errors=plan.errors)


def mass_delete_guard(
    plan: Plan, owned_containers: int, limits: MassDeleteLimits, *, vanished: frozenset[str], allow: bool
) -> Plan:
    """Refuse removals of tenants that vanished from the database when they are too many at once.

    ``vanished`` are tenants we run that the database no longer lists at all: a table read empty by mistake,
    the wrong database, a bad import. Explicit ``state: absent`` and scale-downs are instructions, not counted.
    A pass that would remove everything we own is refused whatever its size.
    """
    deletes = [c for c in plan.changes if c.action is Action.DELETE and c.kind == "container" and c.tenant in vanished]
    if allow or not deletes or owned_containers == 0:
        return plan
    share = len(deletes) / owned_containers
    if share <= limits.max_share or (len(deletes) <= limits.min_count and len(deletes) < owned_containers):
        return plan
    message = (
        f"mass delete refused: this pass would remove {len(deletes)} of {owned_containers} owned containers "
        f"({share:.0%} > {limits.max_share:.0%}) of {len({c.tenant for c in deletes})} tenants no longer in the "
        "database; if intended, run with --allow-mass-delete"
    )
    removal_tenants = {c.tenant for c in deletes}
    refused = list(plan.refused)
    kept: list[Change] = []
    for change in plan.changes:
        # Every removal of the affected tenants is withheld, networks included, so nothing is half-removed.
        if change.action is Action.DELETE and change.tenant in removal_tenants:
            refused.append(Refusal(change, "mass-delete", message))
        else:
            kept.append(change)
    return Plan(changes=tuple(kept), refused=tuple(refused), errors=(*plan.errors, message))


def pinned(plan: Plan, pins: Mapping[str, Sequence[Pin]]) -> Plan:
    """Hold pinned tenant services on their old image (tenant -> active pins, see ``core.upgrades.split_pins``).

    A replacement that would bring the failed image back is withheld. A container that must be created anyway
    (a replica was removed by hand, its old container crashed and was deleted) is created from the pinned image
    instead, keeping the desired name and spec hash so the next pass sees nothing to do while the pin holds.
    Changes of other services, and of the pinned service towards any other image, pass unchanged.
    """
    if not pins:
        return plan
    kept: list[Change] = []
    refused = list(plan.refused)
    for change in plan.changes:
        after = change.after
        pin = pin_for(pins.get(change.tenant, ()), after) if isinstance(after, Container) else None
        if pin is None or not isinstance(after, Container):
            kept.append(change)
        elif change.action is Action.REPLACE:
            refused.append(Refusal(change, "pinned", f"{pin.service} pinned to {pin.pinned_image}: {pin.reason}"))
        elif change.action is Action.CREATE:
            labels = {**dict(after.labels), LABEL_IMAGE: pin.pinned_image}
            held = replace(after, image=pin.pinned_image, labels=tuple(sorted(labels.items())))
            kept.append(replace(change, after=held, reason=f"{change.reason} (pinned to {pin.pinned_image})"))
        else:
            kept.append(change)
    return Plan(changes=tuple(kept), refused=tuple(refused), errors=plan.errors)
