"""Policies: small pure filters from plan to plan, applied after the diff and before execution.

- ``ownership``: never touch an object that does not carry our managed and owner labels (defence in depth:
  the Docker driver only observes labelled objects, but a plan may be built from any snapshot).
- ``mass_delete_guard``: refuse a plan that would remove more than a share of what we own on any layer
  (containers, route files, routers, DNS rrsets), whatever the cause: a tenants table that reads empty by mistake,
  every tenant set absent, every service deleted or scaled to 0 must not take the platform down.
- ``pinned``: a tenant service pinned to its old image after a failed upgrade is not replaced by the image
  that failed; a new desired image lifts the pin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler.core.dns import RRset
from reconciler.core.plan import Action, Change, Plan, Refusal
from reconciler.core.resources import LABEL_IMAGE, LABEL_MANAGED, LABEL_OWNER, Container
from reconciler.core.routes import RouteFile
from reconciler.core.sites import SiteFile
from reconciler.core.upgrades import Pin, pin_for


@dataclass(frozen=True)
class MassDeleteLimits:
    # Refuse when a plan removes more than this share of what is owned on a layer ...
    max_share: float = 0.5
    # ... and more than this many objects of it (so removing one small tenant of three is never refused).
    min_count: int = 3
    # Under ``reconciler run``: removals within this many seconds count together.
    window: float = 600.0


def _owned(change: Change, owner: str) -> bool:
    before = change.before
    if isinstance(before, RouteFile | SiteFile):
        # A file without our header (a hand edit took it) is rewritten; one of another owner is never touched.
        return before.owner is None or before.owner == owner
    if isinstance(before, RRset):
        return before.owner is not None and before.owner.owner == owner
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
            refused.append(Refusal(change, "ownership", f"{name} does not carry our owner mark {owner!r}"))
    return plan.with_changes(kept, refused)


LAYERS = ("containers", "route files", "routers", "DNS rrsets", "site files")


def removals(plan: Plan) -> dict[str, int]:
    """What a plan takes away, by layer, whatever the cause (tenant gone, absent, services or replicas removed)."""
    counts = dict.fromkeys(LAYERS, 0)
    for change in plan.changes:
        for layer, count in change.removes.items():
            counts[layer] += count
    return counts


def _over(removing: int, owned: int, limits: MassDeleteLimits) -> bool:
    if removing <= 0 or owned <= 0:
        return False
    share = removing / owned
    # Removing everything of a layer is refused whatever the size; a few removals never are.
    return share > limits.max_share and (removing > limits.min_count or removing >= owned)


def mass_delete_guard(
    plan: Plan,
    owned: Mapping[str, int],
    limits: MassDeleteLimits,
    *,
    allow: bool,
    recently: Mapping[str, int] | None = None,
    scope: frozenset[str] | None = None,
) -> Plan:
    """Refuse a plan that would remove more than ``limits.max_share`` of what we own on any layer.

    ``plan`` is the plan of every tenant (so a pass of one tenant sees what the desired state does to the whole
    fleet); ``owned`` counts what we own now, by layer (see ``LAYERS``); ``recently`` what this process removed
    within the guard's time window, which counts as if it were still to be removed, so many small passes cannot
    together do what one may not. Over the limit, a pass over every tenant (``scope`` None) is refused whole:
    no change of any layer is made. A pass over some tenants refuses every change of those of them that remove
    something; the others' changes (a heal, a new tenant) go ahead. The error names the counts.
    """
    recent = recently or {}
    removing = removals(plan)
    over = [
        layer
        for layer in LAYERS
        if _over(removing[layer] + recent.get(layer, 0), owned.get(layer, 0) + recent.get(layer, 0), limits)
    ]
    if allow or not over:
        return plan if scope is None else plan.for_tenants(scope)
    totals = {
        layer: (removing[layer] + recent.get(layer, 0), owned.get(layer, 0) + recent.get(layer, 0)) for layer in LAYERS
    }
    figures = ", ".join(f"{count} of {total} {layer}" for layer, (count, total) in totals.items() if count)
    window = " (including what was removed within the guard's window)" if any(recent.values()) else ""
    message = (
        f"mass delete refused: the desired state would remove {figures}{window}, more than "
        f"{limits.max_share:.0%} of what is owned on {', '.join(over)}; nothing was removed. If intended, run with "
        "--allow-mass-delete (reconciler run: --allow-mass-delete or RECONCILER_ALLOW_MASS_DELETE=true)"
    )
    if scope is None:
        refused = [*plan.refused, *(Refusal(c, "mass-delete", message) for c in plan.changes)]
        return Plan(refused=tuple(refused), errors=(*plan.errors, message), blocked=plan.blocked)
    scoped = plan.for_tenants(scope)
    removing_tenants = {c.tenant for c in scoped.changes if c.removal}
    if not removing_tenants:
        return scoped
    kept = [c for c in scoped.changes if c.tenant not in removing_tenants]
    refused = [
        *scoped.refused,
        *(Refusal(c, "mass-delete", message) for c in scoped.changes if c.tenant in removing_tenants),
    ]
    return Plan(tuple(kept), tuple(refused), (*scoped.errors, message), scoped.blocked)


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
    return plan.with_changes(kept, refused)
